use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_core::{
    LlmRequest, QuotaSnapshot, RateLimitRejected, RejectReason, TargetId, TokenEstimate, Usage,
};
use tokio::time::{Instant, Sleep};

use super::config::{Limits, RateLimitConfig};
use super::state::{
    Capacity, InMemoryState, LimiterState, PendingReserve, Refused, Reserve, Weight,
};
use crate::failover::{SkipReason, TargetGate};

/// One target's rate limiter: a cheap handle to state shared by every clone.
///
/// Create one per target (provider + model + key) and give clones of it to the
/// [`RateLimitLayer`](super::RateLimitLayer) of that target and, as a
/// [`TargetGate`], to the failover router. Cloning the handle (or the layer) never creates
/// a new limiter.
///
/// Admission is lock-free while nobody waits (one compare-and-swap per limited dimension).
/// Calls that must wait join a FIFO queue, so a large call is not starved by a stream of
/// small ones; only the queue's head tries to reserve.
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    target: TargetId,
    config: RateLimitConfig,
    state: Arc<dyn LimiterState>,
    queue: Mutex<Queue>,
    waiting: AtomicUsize,
    stats: Stats,
    /// What the provider counts per estimated prompt token, learned from reported usage, in
    /// 1/65536ths: the estimator may be an upper bound, and the provider's own report is a
    /// ceiling that an overestimate would waste.
    prompt_scale: AtomicU32,
}

/// The scale of an estimate the provider has not corrected yet.
const SCALE_ONE: u32 = 1 << 16;

#[derive(Default)]
struct Queue {
    waiters: VecDeque<Waiter>,
    ahead: Weight,
    next_id: u64,
}

struct Waiter {
    id: u64,
    weight: Weight,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Stats {
    admitted: AtomicU64,
    tokens_reserved: AtomicU64,
    tokens_used: AtomicU64,
    in_flight: [AtomicU64; 4],
}

impl Stats {
    fn add_in_flight(&self, weight: &Weight) {
        for (counter, units) in self.in_flight.iter().zip(units(weight)) {
            counter.fetch_add(units, Ordering::Relaxed);
        }
    }

    fn remove_in_flight(&self, weight: &Weight) {
        for (counter, units) in self.in_flight.iter().zip(units(weight)) {
            // Saturating: a sync from another replica's view must never wrap the counter.
            let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
                Some(value.saturating_sub(units))
            });
        }
    }

    fn in_flight(&self) -> Weight {
        weight(self.in_flight.each_ref().map(|c| c.load(Ordering::Relaxed)))
    }
}

fn weight([requests, tokens, input_tokens, output_tokens]: [u64; 4]) -> Weight {
    Weight {
        requests,
        tokens,
        input_tokens,
        output_tokens,
    }
}

fn units(weight: &Weight) -> [u64; 4] {
    [
        weight.requests,
        weight.tokens,
        weight.input_tokens,
        weight.output_tokens,
    ]
}

/// What a limiter reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitSnapshot {
    /// The target.
    pub target: TargetId,
    /// Calls admitted since the limiter was created.
    pub requests_admitted: u64,
    /// Calls admitted whose usage is not reconciled yet.
    pub requests_in_flight: u64,
    /// Tokens reserved at admission (estimated prompt plus reserved output), in total.
    pub tokens_reserved: u64,
    /// Tokens the providers reported as used, in total.
    pub tokens_used: u64,
    /// Tokens reserved by calls still in flight.
    pub tokens_in_flight: u64,
    /// Calls waiting for admission.
    pub queue_len: usize,
    /// What is left in each dimension, and the time until all are full again.
    pub capacity: Capacity,
}

impl RateLimiter {
    /// A limiter for `target` with in-process state.
    pub fn new(target: impl Into<TargetId>, config: RateLimitConfig) -> Self {
        let state = Arc::new(
            InMemoryState::new(&config.limits).with_provider_refill(config.provider_refill),
        );
        Self::with_state(target, config, state)
    }

    /// A limiter for `target` whose counters live in `state` (for example a shared store).
    pub fn with_state(
        target: impl Into<TargetId>,
        config: RateLimitConfig,
        state: Arc<dyn LimiterState>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                target: target.into(),
                config,
                state,
                queue: Mutex::new(Queue::default()),
                waiting: AtomicUsize::new(0),
                stats: Stats::default(),
                prompt_scale: AtomicU32::new(SCALE_ONE),
            }),
        }
    }

    /// The target this limiter guards.
    pub fn target(&self) -> &TargetId {
        &self.shared.target
    }

    /// The configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }

    /// What `request` weighs: one request, its estimated prompt and its reserved output
    /// (the prompt counted once per call: see [`LlmRequest::estimate_once`]).
    pub fn weigh<R: LlmRequest + ?Sized>(&self, request: &R) -> TokenEstimate {
        let config = &self.shared.config;
        request.estimate_once(&*config.estimator, config.default_output_tokens)
    }

    /// Admits `estimate` now if it fits and nobody is waiting; never waits, not even for a
    /// shared store (use [`acquire_now`](Self::acquire_now) with one).
    ///
    /// # Errors
    ///
    /// [`RejectReason::NeverFits`], or [`RejectReason::WaitTooLong`] with the wait it
    /// would need (and a zero maximum), or [`RejectReason::StateUnavailable`] from a store
    /// that needs a round trip.
    pub fn try_acquire(&self, estimate: &TokenEstimate) -> Result<Reservation, RateLimitRejected> {
        let weight = self.weight_of(estimate);
        self.never_fits(&weight)?;
        let now = Instant::now();
        let wait = if self.shared.waiting.load(Ordering::Acquire) == 0 {
            match self.shared.state.try_reserve(now, &weight) {
                Reserve::Ready(Ok(())) => {
                    return Ok(self.admitted(weight, estimate.prompt, Duration::ZERO));
                }
                Reserve::Ready(Err(wait)) => wait,
                Reserve::Pending(_) => return Err(self.rejected(RejectReason::StateUnavailable)),
            }
        } else {
            let queue = self.lock();
            self.shared.state.wait_for(now, &queue.ahead, &weight)
        };
        Err(self.rejected(RejectReason::WaitTooLong {
            wait,
            max_wait: Duration::ZERO,
        }))
    }

    /// The wait `estimate` would need if it arrived at `now` (behind everyone queued),
    /// without reserving anything.
    ///
    /// # Errors
    ///
    /// The rejection a call would get: never fits, queue full, longer than the maximum
    /// wait, or past `remaining` (what is left of the caller's deadline).
    pub fn predict_wait(
        &self,
        now: Instant,
        estimate: &TokenEstimate,
        remaining: Option<Duration>,
    ) -> Result<Duration, RateLimitRejected> {
        let weight = self.weight_of(estimate);
        self.never_fits(&weight)?;
        let (wait, queued) = if self.shared.waiting.load(Ordering::Acquire) == 0 {
            (
                self.shared.state.wait_for(now, &Weight::default(), &weight),
                0,
            )
        } else {
            let queue = self.lock();
            (
                self.shared.state.wait_for(now, &queue.ahead, &weight),
                queue.waiters.len(),
            )
        };
        self.check_wait(queued, wait, remaining)?;
        Ok(wait)
    }

    /// Takes a provider's rate-limit report that came with no call of this limiter: what
    /// it says is left (less what this limiter has in flight) is a ceiling until its reset,
    /// if it leaves less room than the report the limiter holds. The limiter layer takes
    /// every response's and error's report itself.
    pub fn sync(&self, quota: &QuotaSnapshot) {
        self.shared
            .state
            .sync(Instant::now(), quota, &Weight::default());
        self.wake_head();
    }

    /// What the limiter reports now.
    pub fn snapshot(&self) -> RateLimitSnapshot {
        let stats = &self.shared.stats;
        let in_flight = stats.in_flight();
        RateLimitSnapshot {
            target: self.shared.target.clone(),
            requests_admitted: stats.admitted.load(Ordering::Relaxed),
            requests_in_flight: in_flight.requests,
            tokens_reserved: stats.tokens_reserved.load(Ordering::Relaxed),
            tokens_used: stats.tokens_used.load(Ordering::Relaxed),
            tokens_in_flight: in_flight.tokens,
            queue_len: self.shared.waiting.load(Ordering::Acquire),
            capacity: self.shared.state.capacity(Instant::now()),
        }
    }

    /// Admits `estimate` if it fits now, asking the shared store if there is one; never
    /// waits for capacity.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire), with the wait as
    /// [`RejectReason::PastDeadline`], or [`RejectReason::StateUnavailable`] when a shared
    /// store set to fail closed cannot be reached.
    pub async fn acquire_now(
        &self,
        estimate: &TokenEstimate,
    ) -> Result<Reservation, RateLimitRejected> {
        let mut acquire = self.acquire(estimate, Some(Instant::now()));
        let mut sleep = None;
        std::future::poll_fn(|cx| acquire.poll_acquire(cx, &mut sleep)).await
    }

    pub(crate) fn acquire(&self, estimate: &TokenEstimate, deadline: Option<Instant>) -> Acquire {
        Acquire {
            limiter: self.clone(),
            weight: self.weight_of(estimate),
            estimated_prompt: estimate.prompt,
            deadline,
            started: None,
            ticket: None,
            pending: None,
            refused_wait: None,
        }
    }

    /// What a call of `estimate` weighs, its prompt scaled by what the provider counts.
    fn weight_of(&self, estimate: &TokenEstimate) -> Weight {
        let scale = u64::from(self.shared.prompt_scale.load(Ordering::Relaxed));
        let prompt = if scale == u64::from(SCALE_ONE) {
            estimate.prompt
        } else {
            let scaled = u128::from(estimate.prompt) * u128::from(scale);
            u64::try_from(scaled.div_ceil(u128::from(SCALE_ONE))).unwrap_or(u64::MAX)
        };
        Weight::call(prompt, estimate.reserved_output)
    }

    /// Learns what the provider counts per estimated prompt token: up at once (an
    /// underestimate risks a 429), down halfway per call (one short prompt should not
    /// undo what many taught).
    fn learn_prompt_scale(&self, estimated: u64, counted: u64) {
        if estimated == 0 || counted == 0 {
            return;
        }
        // Rounded down: the scaled estimate is rounded up, and the two meet exactly on the
        // provider's count for any prompt under 65,536 tokens.
        let observed = u128::from(counted) * u128::from(SCALE_ONE) / u128::from(estimated);
        let observed = u32::try_from(observed)
            .unwrap_or(u32::MAX)
            .clamp(SCALE_ONE / 32, SCALE_ONE * 4);
        let _ =
            self.shared
                .prompt_scale
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |scale| {
                    Some(if observed >= scale {
                        observed
                    } else {
                        observed + (scale - observed) / 2
                    })
                });
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn rejected(&self, reason: RejectReason) -> RateLimitRejected {
        RateLimitRejected::new(self.shared.target.clone(), reason)
    }

    fn never_fits(&self, weight: &Weight) -> Result<(), RateLimitRejected> {
        let Limits {
            requests,
            tokens,
            input_tokens,
            output_tokens,
        } = self.shared.config.limits;
        for (rate, units) in [requests, tokens, input_tokens, output_tokens]
            .into_iter()
            .zip(units(weight))
        {
            if let Some(rate) = rate
                && units > rate.limit
            {
                return Err(self.rejected(RejectReason::NeverFits {
                    requested: units,
                    capacity: rate.limit,
                }));
            }
        }
        Ok(())
    }

    fn check_wait(
        &self,
        queued: usize,
        wait: Duration,
        remaining: Option<Duration>,
    ) -> Result<(), RateLimitRejected> {
        let config = &self.shared.config;
        if queued >= config.queue_capacity && !wait.is_zero() {
            return Err(self.rejected(RejectReason::QueueFull {
                capacity: config.queue_capacity,
            }));
        }
        if wait > config.max_wait {
            return Err(self.rejected(RejectReason::WaitTooLong {
                wait,
                max_wait: config.max_wait,
            }));
        }
        if let Some(remaining) = remaining
            && !wait.is_zero()
            && wait >= remaining
        {
            return Err(self.rejected(RejectReason::PastDeadline { wait, remaining }));
        }
        Ok(())
    }

    fn admitted(&self, weight: Weight, estimated_prompt: u64, waited: Duration) -> Reservation {
        let stats = &self.shared.stats;
        stats.admitted.fetch_add(1, Ordering::Relaxed);
        stats
            .tokens_reserved
            .fetch_add(weight.tokens, Ordering::Relaxed);
        stats.add_in_flight(&weight);
        Reservation {
            limiter: Some(self.clone()),
            weight,
            waited,
            estimated_prompt,
            reported: false,
        }
    }

    fn settle(
        &self,
        weight: &Weight,
        estimated_prompt: u64,
        reported: bool,
        usage: Option<Usage>,
        quota: Option<&QuotaSnapshot>,
    ) {
        let stats = &self.shared.stats;
        stats.remove_in_flight(weight);
        let state = &self.shared.state;
        if usage.is_none() && quota.is_none() {
            // Charged as estimated: nothing to correct, no clock to read.
            if !reported {
                state.release(weight);
                self.wake_head();
            }
            return;
        }
        let now = Instant::now();
        if let Some(usage) = usage {
            stats
                .tokens_used
                .fetch_add(usage.total(), Ordering::Relaxed);
            self.learn_prompt_scale(estimated_prompt, usage.input_tokens);
            let reserved = Weight::tokens(weight.input_tokens, weight.output_tokens);
            let used = Weight::tokens(usage.input_tokens, usage.output_tokens);
            state.reconcile(now, &used.minus(reserved), &reserved.minus(used));
        }
        match quota {
            Some(quota) if !reported => state.sync(now, quota, weight),
            Some(quota) => state.sync(now, quota, &Weight::default()),
            None if !reported => state.release(weight),
            None => {}
        }
        self.wake_head();
    }

    /// Capacity may have grown: let the head of the queue look again now rather than when
    /// its timer fires. Locks only when someone waits.
    fn wake_head(&self) {
        if self.shared.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let waker = self
            .lock()
            .waiters
            .front_mut()
            .and_then(|head| head.waker.take());
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("target", &self.shared.target)
            .field("limits", &self.shared.config.limits)
            .field("queue_len", &self.shared.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The limiter is a failover gate: a target whose limiter cannot admit the call within
/// the remaining deadline (or ever) is skipped rather than waited on.
impl TargetGate for RateLimiter {
    fn check(
        &self,
        now: Instant,
        estimate: &TokenEstimate,
        remaining: Option<Duration>,
    ) -> Result<(), SkipReason> {
        self.predict_wait(now, estimate, remaining)
            .map(drop)
            .map_err(SkipReason::RateLimited)
    }
}

/// Capacity held by an admitted call until its usage is known.
///
/// [`settle`](Self::settle) it with the usage the provider reported: tokens reserved and
/// not used are refunded, tokens used beyond the reservation are debited. Dropped without
/// settling, the reservation stays charged as estimated.
#[must_use = "a reservation settles when dropped; settle it with the real usage"]
pub struct Reservation {
    limiter: Option<RateLimiter>,
    weight: Weight,
    waited: Duration,
    estimated_prompt: u64,
    /// Whether a report from the provider counted this call already.
    reported: bool,
}

impl Reservation {
    /// What was reserved.
    pub fn weight(&self) -> Weight {
        self.weight
    }

    /// How long the call waited for admission.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Takes the provider's rate-limit report now, before the usage is known: a stream's
    /// headers come long before its usage, and are stale by then.
    pub fn observe(&mut self, quota: &QuotaSnapshot) {
        if let Some(limiter) = &self.limiter {
            let counted = if self.reported {
                Weight::default()
            } else {
                self.weight
            };
            limiter.shared.state.sync(Instant::now(), quota, &counted);
            self.reported = true;
            limiter.wake_head();
        }
    }

    /// Reconciles with the usage the provider reported, and takes the provider's rate-limit
    /// report.
    pub fn settle(mut self, usage: Option<Usage>, quota: Option<&QuotaSnapshot>) {
        if let Some(limiter) = self.limiter.take() {
            limiter.settle(
                &self.weight,
                self.estimated_prompt,
                self.reported,
                usage,
                quota,
            );
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter.take() {
            limiter.settle(
                &self.weight,
                self.estimated_prompt,
                self.reported,
                None,
                None,
            );
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("weight", &self.weight)
            .field("waited", &self.waited)
            .finish()
    }
}

/// The admission of one call: the fast path, then the FIFO queue.
pub(crate) struct Acquire {
    limiter: RateLimiter,
    weight: Weight,
    estimated_prompt: u64,
    deadline: Option<Instant>,
    started: Option<Instant>,
    ticket: Option<u64>,
    /// A reservation on its way from a shared store.
    pending: Option<PendingReserve>,
    /// The wait a shared store answered, not acted on yet.
    refused_wait: Option<Duration>,
}

impl Acquire {
    /// The target whose limiter this admission waits on.
    pub(crate) fn target(&self) -> &TargetId {
        self.limiter.target()
    }

    pub(crate) fn poll_acquire(
        &mut self,
        cx: &mut Context<'_>,
        sleep: &mut Option<Pin<Box<Sleep>>>,
    ) -> Poll<Result<Reservation, RateLimitRejected>> {
        let limiter = self.limiter.clone();
        let shared = &limiter.shared;
        loop {
            if let Some(pending) = self.pending.as_mut() {
                let answer = std::task::ready!(pending.as_mut().poll(cx));
                self.pending = None;
                match answer {
                    Ok(()) => return Poll::Ready(Ok(self.admit(Instant::now()))),
                    Err(Refused::Unavailable) => {
                        self.leave_queue();
                        let reason = RejectReason::StateUnavailable;
                        return Poll::Ready(Err(limiter.rejected(reason)));
                    }
                    Err(Refused::Wait(wait)) => self.refused_wait = Some(wait),
                }
            }
            let now = Instant::now();
            let started = *self.started.get_or_insert(now);
            let remaining = self.deadline.map(|d| d.saturating_duration_since(now));
            let mut queue = if let Some(ticket) = self.ticket {
                let mut queue = limiter.lock();
                if queue.waiters.front().map(|w| w.id) != Some(ticket) {
                    self.refused_wait = None;
                    return self.wait_in_line(cx, &mut queue, sleep, now, started);
                }
                queue
            } else {
                limiter.never_fits(&self.weight)?;
                if self.refused_wait.is_none() && shared.waiting.load(Ordering::Acquire) == 0 {
                    match shared.state.try_reserve(now, &self.weight) {
                        Reserve::Ready(Ok(())) => return Poll::Ready(Ok(self.admit(now))),
                        Reserve::Ready(Err(_)) => {}
                        Reserve::Pending(pending) => {
                            self.pending = Some(pending);
                            continue;
                        }
                    }
                }
                let mut queue = limiter.lock();
                let wait = shared.state.wait_for(now, &queue.ahead, &self.weight);
                // A shared store's answer is newer than what it knew before the call.
                let wait = wait.max(self.refused_wait.unwrap_or_default());
                if let Err(rejected) = limiter.check_wait(queue.waiters.len(), wait, remaining) {
                    self.refused_wait = None;
                    return Poll::Ready(Err(rejected));
                }
                let id = queue.next_id;
                queue.next_id += 1;
                queue.ahead = queue.ahead.plus(self.weight);
                queue.waiters.push_back(Waiter {
                    id,
                    weight: self.weight,
                    waker: Some(cx.waker().clone()),
                });
                shared.waiting.fetch_add(1, Ordering::AcqRel);
                self.ticket = Some(id);
                if queue.waiters.len() > 1 {
                    self.refused_wait = None;
                    return self.wait_in_line(cx, &mut queue, sleep, now, started);
                }
                queue
            };
            // The head of the queue: only it may reserve, so nobody behind it barges in.
            let wait = match self.refused_wait.take() {
                Some(wait) => wait,
                None => match shared.state.try_reserve(now, &self.weight) {
                    Reserve::Ready(Ok(())) => {
                        self.leave(&mut queue);
                        drop(queue);
                        return Poll::Ready(Ok(self.admit(now)));
                    }
                    Reserve::Ready(Err(wait)) => wait,
                    Reserve::Pending(pending) => {
                        drop(queue);
                        self.pending = Some(pending);
                        continue;
                    }
                },
            };
            let admit_at = now + wait;
            let max_wait = shared.config.max_wait;
            let over_max = admit_at.saturating_duration_since(started) > max_wait;
            let past_deadline = self.deadline.is_some_and(|d| admit_at >= d);
            if over_max || past_deadline {
                self.leave(&mut queue);
                drop(queue);
                let reason = if past_deadline {
                    RejectReason::PastDeadline {
                        wait,
                        remaining: remaining.unwrap_or_default(),
                    }
                } else {
                    RejectReason::WaitTooLong { wait, max_wait }
                };
                return Poll::Ready(Err(limiter.rejected(reason)));
            }
            // A refund or a header sync may admit the head before its timer.
            if let Some(head) = queue.waiters.front_mut() {
                head.waker = Some(cx.waker().clone());
            }
            drop(queue);
            // Only a call that must wait pays for a timer.
            let sleep = match sleep {
                Some(sleep) => {
                    sleep.as_mut().reset(admit_at);
                    sleep
                }
                None => sleep.insert(Box::pin(tokio::time::sleep_until(admit_at))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// The reservation of a call admitted at `now`, out of the queue if it was in it.
    fn admit(&mut self, now: Instant) -> Reservation {
        self.leave_queue();
        let waited = self.started.map_or(Duration::ZERO, |started| now - started);
        self.limiter
            .admitted(self.weight, self.estimated_prompt, waited)
    }

    fn leave_queue(&mut self) {
        if self.ticket.is_some() {
            let limiter = self.limiter.clone();
            let mut queue = limiter.lock();
            self.leave(&mut queue);
        }
    }

    /// Waits behind the head of the queue: until woken as the new head, or until this
    /// call's own deadline or maximum wait passes, whichever comes first.
    fn wait_in_line(
        &mut self,
        cx: &mut Context<'_>,
        queue: &mut Queue,
        sleep: &mut Option<Pin<Box<Sleep>>>,
        now: Instant,
        started: Instant,
    ) -> Poll<Result<Reservation, RateLimitRejected>> {
        let shared = &self.limiter.shared;
        let max_wait = shared.config.max_wait;
        let give_up = self
            .deadline
            .map_or(started + max_wait, |d| d.min(started + max_wait));
        if now >= give_up {
            let mut ahead = Weight::default();
            for waiter in queue
                .waiters
                .iter()
                .take_while(|w| Some(w.id) != self.ticket)
            {
                ahead = ahead.plus(waiter.weight);
            }
            let wait = shared.state.wait_for(now, &ahead, &self.weight);
            self.leave(queue);
            let reason = match self.deadline {
                Some(deadline) if deadline <= started + max_wait => RejectReason::PastDeadline {
                    wait,
                    remaining: Duration::ZERO,
                },
                _ => RejectReason::WaitTooLong { wait, max_wait },
            };
            return Poll::Ready(Err(self.limiter.rejected(reason)));
        }
        if let Some(waiter) = queue.waiters.iter_mut().find(|w| Some(w.id) == self.ticket) {
            waiter.waker = Some(cx.waker().clone());
        }
        let sleep = match sleep {
            Some(sleep) => {
                sleep.as_mut().reset(give_up);
                sleep
            }
            None => sleep.insert(Box::pin(tokio::time::sleep_until(give_up))),
        };
        if sleep.as_mut().poll(cx).is_ready() {
            // The give-up time came while we were here: look again at once.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Removes this call from the queue and wakes the new head.
    fn leave(&mut self, queue: &mut Queue) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let Some(position) = queue.waiters.iter().position(|w| w.id == ticket) else {
            return;
        };
        if let Some(waiter) = queue.waiters.remove(position) {
            queue.ahead = queue.ahead.minus(waiter.weight);
        }
        self.limiter.shared.waiting.fetch_sub(1, Ordering::AcqRel);
        if position == 0
            && let Some(next) = queue.waiters.front_mut().and_then(|w| w.waker.take())
        {
            next.wake();
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        self.leave_queue();
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("target", &self.limiter.shared.target)
            .field("weight", &self.weight)
            .field("queued", &self.ticket.is_some())
            .finish()
    }
}
