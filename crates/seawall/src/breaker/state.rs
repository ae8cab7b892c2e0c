//! The shared state of one target's breaker: atomics for the closed fast path, a mutex only
//! for transitions and half-open bookkeeping (never held across an `.await`).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use seawall_core::tokens::TokenEstimate;
use seawall_core::{BreakerState, CircuitOpen, Classifier, OpenReason, TargetId};
use tokio::time::Instant;

use super::config::{BreakerEvent, BreakerSettings, EventCallback};
use super::peers::{BreakerPeers, PeerChange};
use crate::failover::{SkipReason, TargetGate};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// `open_until` of a breaker forced open: it stays open until reset.
const FOREVER: u64 = u64::MAX;

fn state_of(raw: u8) -> BreakerState {
    match raw {
        CLOSED => BreakerState::Closed,
        OPEN => BreakerState::Open,
        _ => BreakerState::HalfOpen,
    }
}

/// The clock, read at most once and only if needed (a clock read is a large part of the
/// closed path's cost).
#[derive(Debug, Default)]
pub(crate) struct LazyNow(Option<Instant>);

impl LazyNow {
    pub(crate) fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
}

impl From<Instant> for LazyNow {
    fn from(now: Instant) -> Self {
        Self(Some(now))
    }
}

/// How a call was admitted; its outcome only counts in the same epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Closed { epoch: u64 },
    Probe { epoch: u64 },
}

/// What a finished call says about its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The target answered.
    Success,
    /// The target is unhealthy (or was too slow).
    HealthFailure,
    /// The target is out of capacity for this long: the capacity cooldown.
    OutOfCapacity(Duration),
    /// Nothing is known about the target's health (a local rejection, a cancelled call).
    Neutral,
}

/// The failure-ratio window: `BUCKETS` buckets of packed `(sequence, calls, failures)`.
struct Window {
    buckets: Box<[AtomicU64]>,
    width_nanos: u64,
    ratio: f64,
    min_calls: u32,
}

const BUCKETS: u64 = 10;

fn pack(sequence: u32, calls: u16, failures: u16) -> u64 {
    (u64::from(sequence) << 32) | (u64::from(calls) << 16) | u64::from(failures)
}

fn unpack(packed: u64) -> (u32, u16, u16) {
    ((packed >> 32) as u32, (packed >> 16) as u16, packed as u16)
}

impl Window {
    fn new(window: Duration, ratio: f64, min_calls: u32) -> Self {
        let width = (window.as_nanos() / u128::from(BUCKETS)).max(1);
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            width_nanos: u64::try_from(width).unwrap_or(u64::MAX),
            ratio,
            min_calls,
        }
    }

    /// Adds one call; returns whether the window now trips the breaker.
    fn record(&self, now: u64, failed: bool) -> bool {
        // Sequence numbers wrap after 2^32 buckets; only their distance matters.
        let sequence = (now / self.width_nanos) as u32;
        let slot = &self.buckets[(u64::from(sequence) % BUCKETS) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (seen, calls, failures) = unpack(current);
            let (calls, failures) = if seen == sequence {
                (calls, failures)
            } else {
                (0, 0)
            };
            let next = pack(
                sequence,
                calls.saturating_add(1),
                failures.saturating_add(u16::from(failed)),
            );
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        failed && self.trips(sequence)
    }

    fn trips(&self, sequence: u32) -> bool {
        let (mut calls, mut failures) = (0u64, 0u64);
        for slot in &self.buckets {
            let (seen, c, f) = unpack(slot.load(Ordering::Acquire));
            if u64::from(sequence.wrapping_sub(seen)) < BUCKETS {
                calls += u64::from(c);
                failures += u64::from(f);
            }
        }
        calls >= u64::from(self.min_calls.max(1)) && failures as f64 >= self.ratio * calls as f64
    }

    fn clear(&self) {
        for slot in &self.buckets {
            slot.store(0, Ordering::Release);
        }
    }
}

/// Bookkeeping changed only under the lock.
#[derive(Debug, Default)]
struct Transitions {
    /// Opens since the breaker was last closed: the exponent of the break duration.
    breaks: u32,
    /// Probe successes in the current half-open period.
    probe_successes: u32,
}

pub(crate) struct Shared {
    pub(crate) target: TargetId,
    pub(crate) settings: BreakerSettings,
    /// The breaker's own classifier; `None` decides with the stack's.
    pub(crate) classifier: Option<Classifier>,
    on_event: Option<EventCallback>,
    origin: Instant,
    state: AtomicU8,
    /// Bumped on every transition: outcomes of calls admitted in another epoch are dropped.
    epoch: AtomicU64,
    consecutive: AtomicU32,
    window: Option<Window>,
    /// Nanoseconds after `origin` when the break ends (`FOREVER` when forced open).
    open_until: AtomicU64,
    /// Nanoseconds after `origin` when the capacity cooldown ends; 0 for none.
    cooldown_until: AtomicU64,
    /// Probes admitted in the current half-open period (changed under the lock).
    probes_admitted: AtomicU32,
    transitions: Mutex<Transitions>,
    /// The same target's breakers in other processes, when shared.
    peers: OnceLock<Arc<dyn BreakerPeers>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("target", &self.target)
            .field("state", &self.state())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

enum Rejection {
    Unhealthy(Duration),
    Capacity(Duration),
}

impl Shared {
    pub(crate) fn new(
        target: TargetId,
        settings: BreakerSettings,
        classifier: Option<Classifier>,
        on_event: Option<EventCallback>,
    ) -> Self {
        let window = settings
            .failure_ratio
            .map(|ratio| Window::new(ratio.window, ratio.ratio, ratio.min_calls));
        Self {
            target,
            settings,
            classifier,
            on_event,
            origin: Instant::now(),
            state: AtomicU8::new(CLOSED),
            epoch: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            window,
            open_until: AtomicU64::new(0),
            cooldown_until: AtomicU64::new(0),
            probes_admitted: AtomicU32::new(0),
            transitions: Mutex::new(Transitions::default()),
            peers: OnceLock::new(),
        }
    }

    fn publish(&self, change: PeerChange) {
        if let Some(peers) = self.peers.get() {
            peers.publish(change);
        }
    }

    /// Whether this process may send a half-open probe (always, unless shared).
    fn may_probe(&self) -> bool {
        self.peers.get().is_none_or(|peers| peers.claim_probe())
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(FOREVER - 1)
    }

    fn lock(&self) -> MutexGuard<'_, Transitions> {
        self.transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> BreakerState {
        state_of(self.state.load(Ordering::Acquire))
    }

    fn open_error(&self, rejection: Rejection) -> CircuitOpen {
        let (retry_in, reason) = match rejection {
            Rejection::Unhealthy(wait) => (wait, OpenReason::Unhealthy),
            Rejection::Capacity(wait) => (wait, OpenReason::OutOfCapacity),
        };
        CircuitOpen::new(self.target.clone(), reason, retry_in)
    }

    fn remaining(until: u64, now: u64) -> Duration {
        if until == FOREVER {
            Duration::MAX
        } else {
            Duration::from_nanos(until.saturating_sub(now))
        }
    }

    fn cooling_down(&self, now: &mut LazyNow) -> Option<Duration> {
        let until = self.cooldown_until.load(Ordering::Acquire);
        if until == 0 {
            return None;
        }
        let now = self.nanos(now.get());
        (now < until).then(|| Duration::from_nanos(until - now))
    }

    /// Admits a call, or says why not. Lock-free when closed, and reads the clock only
    /// when a cooldown was ever started or the breaker is not closed.
    pub(crate) fn admit(&self, now: &mut LazyNow) -> Result<Admission, CircuitOpen> {
        if let Some(wait) = self.cooling_down(now) {
            return Err(self.open_error(Rejection::Capacity(wait)));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Ok(Admission::Closed { epoch });
        }
        self.admit_slow(now.get())
    }

    fn admit_slow(&self, now: Instant) -> Result<Admission, CircuitOpen> {
        let mut event = None;
        let admitted = {
            let mut transitions = self.lock();
            let epoch = self.epoch.load(Ordering::Acquire);
            match self.state.load(Ordering::Acquire) {
                CLOSED => Ok(Admission::Closed { epoch }),
                OPEN => {
                    let until = self.open_until.load(Ordering::Acquire);
                    let now = self.nanos(now);
                    if now < until {
                        Err(Rejection::Unhealthy(Self::remaining(until, now)))
                    } else if !self.may_probe() {
                        // Another process holds the probe slots.
                        Err(Rejection::Unhealthy(Duration::ZERO))
                    } else {
                        transitions.probe_successes = 0;
                        self.probes_admitted.store(1, Ordering::Release);
                        let epoch = self.set_state(HALF_OPEN);
                        event =
                            Some(self.transition(BreakerState::Open, BreakerState::HalfOpen, None));
                        Ok(Admission::Probe { epoch })
                    }
                }
                _ => {
                    let admitted = self.probes_admitted.load(Ordering::Acquire);
                    if admitted < self.settings.half_open_probes && self.may_probe() {
                        self.probes_admitted.store(admitted + 1, Ordering::Release);
                        Ok(Admission::Probe { epoch })
                    } else {
                        Err(Rejection::Unhealthy(Duration::ZERO))
                    }
                }
            }
        };
        self.emit(event);
        admitted.map_err(|rejection| self.open_error(rejection))
    }

    /// Whether a call would be admitted now, without taking a probe slot.
    pub(crate) fn check(&self, now: Instant) -> Result<(), CircuitOpen> {
        if let Some(wait) = self.cooling_down(&mut LazyNow::from(now)) {
            return Err(self.open_error(Rejection::Capacity(wait)));
        }
        match self.state.load(Ordering::Acquire) {
            CLOSED => Ok(()),
            OPEN => {
                let until = self.open_until.load(Ordering::Acquire);
                let now = self.nanos(now);
                if now < until {
                    Err(self.open_error(Rejection::Unhealthy(Self::remaining(until, now))))
                } else {
                    Ok(())
                }
            }
            _ => {
                if self.probes_admitted.load(Ordering::Acquire) < self.settings.half_open_probes {
                    Ok(())
                } else {
                    Err(self.open_error(Rejection::Unhealthy(Duration::ZERO)))
                }
            }
        }
    }

    /// Records a finished call.
    pub(crate) fn record(&self, admission: Admission, outcome: Outcome, now: &mut LazyNow) {
        if let Outcome::OutOfCapacity(wait) = outcome {
            self.park(wait, now.get());
        }
        match admission {
            Admission::Closed { epoch } => self.record_closed(epoch, outcome, now),
            Admission::Probe { epoch } => self.record_probe(epoch, outcome, now),
        }
    }

    fn record_closed(&self, epoch: u64, outcome: Outcome, now: &mut LazyNow) {
        let failed = match outcome {
            Outcome::Success => false,
            Outcome::HealthFailure => true,
            Outcome::OutOfCapacity(_) | Outcome::Neutral => return,
        };
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        let consecutive_trip = if failed {
            let failures = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
            self.settings.consecutive_failures != 0
                && failures >= self.settings.consecutive_failures
        } else {
            // Read first so that a run of successes does not keep writing the shared line.
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Release);
            }
            false
        };
        let ratio_trip = self
            .window
            .as_ref()
            .is_some_and(|window| window.record(self.nanos(now.get()), failed));
        if consecutive_trip || ratio_trip {
            self.open(epoch, CLOSED, now.get());
        }
    }

    fn record_probe(&self, epoch: u64, outcome: Outcome, now: &mut LazyNow) {
        let mut event = None;
        {
            let mut transitions = self.lock();
            if self.epoch.load(Ordering::Acquire) != epoch
                || self.state.load(Ordering::Acquire) != HALF_OPEN
            {
                return;
            }
            match outcome {
                Outcome::Success => {
                    transitions.probe_successes += 1;
                    if transitions.probe_successes >= self.settings.half_open_probes {
                        transitions.breaks = 0;
                        self.clear_counts();
                        self.set_state(CLOSED);
                        event = Some(self.transition(
                            BreakerState::HalfOpen,
                            BreakerState::Closed,
                            None,
                        ));
                        self.publish(PeerChange::Closed);
                    }
                }
                Outcome::HealthFailure => {
                    drop(transitions);
                    self.open(epoch, HALF_OPEN, now.get());
                    return;
                }
                Outcome::OutOfCapacity(_) | Outcome::Neutral => {
                    // The probe said nothing about health: free its slot for another.
                    let admitted = self.probes_admitted.load(Ordering::Acquire);
                    self.probes_admitted
                        .store(admitted.saturating_sub(1), Ordering::Release);
                }
            }
        }
        self.emit(event);
    }

    /// Opens the breaker if it is still in `from` at `epoch`.
    fn open(&self, epoch: u64, from: u8, now: Instant) {
        let event = {
            let mut transitions = self.lock();
            if self.epoch.load(Ordering::Acquire) != epoch
                || self.state.load(Ordering::Acquire) != from
            {
                return;
            }
            let duration = self.settings.break_duration(transitions.breaks);
            transitions.breaks = transitions.breaks.saturating_add(1);
            let until = self
                .nanos(now)
                .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(FOREVER - 1));
            self.open_until
                .store(until.min(FOREVER - 1), Ordering::Release);
            self.clear_counts();
            self.set_state(OPEN);
            (
                self.transition(state_of(from), BreakerState::Open, Some(duration)),
                duration,
            )
        };
        let (event, duration) = event;
        self.emit(Some(event));
        self.publish(PeerChange::Opened {
            open_for: Some(duration),
        });
    }

    pub(crate) fn park(&self, wait: Duration, now: Instant) {
        if self.park_here(wait, now) {
            self.publish(PeerChange::Cooldown { wait });
        }
    }

    /// Parks the target for `wait` from `now` unless it is parked longer; true if it was
    /// not.
    fn park_here(&self, wait: Duration, now: Instant) -> bool {
        if wait.is_zero() {
            return false;
        }
        let until = self
            .nanos(now)
            .saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(FOREVER - 1));
        let before = self.cooldown_until.fetch_max(until, Ordering::AcqRel);
        if before < until {
            tracing::debug!(
                target: "seawall::breaker",
                target_id = %self.target,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "capacity cooldown"
            );
            self.emit(Some(BreakerEvent::CooldownStarted {
                target: self.target.clone(),
                wait,
            }));
            return true;
        }
        false
    }

    pub(crate) fn force_open(&self) {
        let event = {
            let _transitions = self.lock();
            let from = self.state();
            self.open_until.store(FOREVER, Ordering::Release);
            self.clear_counts();
            self.set_state(OPEN);
            self.transition(from, BreakerState::Open, None)
        };
        self.emit(Some(event));
        self.publish(PeerChange::Opened { open_for: None });
    }

    /// Opens the breaker for `remaining`, as a peer did (`None`: until reset).
    fn adopt_open(&self, remaining: Option<Duration>) {
        let event = {
            let mut transitions = self.lock();
            let now = self.nanos(Instant::now());
            let until = remaining.map_or(FOREVER, |wait| {
                now.saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(FOREVER - 1))
                    .min(FOREVER - 1)
            });
            let from = self.state();
            if from == BreakerState::Open && self.open_until.load(Ordering::Acquire) >= until {
                return;
            }
            // The peer's break grew with its opens; this breaker's next one grows from here.
            transitions.breaks = transitions.breaks.saturating_add(1);
            self.open_until.store(until, Ordering::Release);
            self.clear_counts();
            self.set_state(OPEN);
            self.transition(from, BreakerState::Open, remaining)
        };
        self.emit(Some(event));
    }

    /// Closes the breaker, as a peer did.
    fn adopt_closed(&self) {
        let event = {
            let mut transitions = self.lock();
            let from = self.state();
            if from == BreakerState::Closed {
                return;
            }
            *transitions = Transitions::default();
            self.clear_counts();
            self.set_state(CLOSED);
            self.transition(from, BreakerState::Closed, None)
        };
        self.emit(Some(event));
    }

    pub(crate) fn reset(&self) {
        let event = {
            let mut transitions = self.lock();
            let from = self.state();
            *transitions = Transitions::default();
            self.cooldown_until.store(0, Ordering::Release);
            self.clear_counts();
            self.set_state(CLOSED);
            self.transition(from, BreakerState::Closed, None)
        };
        self.emit(Some(event));
        self.publish(PeerChange::Closed);
    }

    fn clear_counts(&self) {
        self.consecutive.store(0, Ordering::Release);
        if let Some(window) = &self.window {
            window.clear();
        }
    }

    /// Sets the state and starts a new epoch (call with the lock held); returns the epoch.
    fn set_state(&self, state: u8) -> u64 {
        self.state.store(state, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn transition(
        &self,
        from: BreakerState,
        to: BreakerState,
        open_for: Option<Duration>,
    ) -> BreakerEvent {
        BreakerEvent::Transition {
            target: self.target.clone(),
            from,
            to,
            open_for,
        }
    }

    /// Logs the event and hands it to the callback (outside the lock, so the callback may
    /// use the handle). A panicking callback is contained.
    fn emit(&self, event: Option<BreakerEvent>) {
        let Some(event) = event else { return };
        if let BreakerEvent::Transition {
            target,
            from,
            to,
            open_for,
        } = &event
        {
            let open_ms = open_for.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if *to == BreakerState::Open {
                tracing::warn!(
                    target: "seawall::breaker",
                    target_id = %target,
                    from = from.as_str(),
                    to = to.as_str(),
                    open_ms,
                    "breaker transition"
                );
            } else {
                tracing::info!(
                    target: "seawall::breaker",
                    target_id = %target,
                    from = from.as_str(),
                    to = to.as_str(),
                    "breaker transition"
                );
            }
        }
        if let Some(callback) = &self.on_event
            && catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err()
        {
            tracing::error!(target: "seawall::breaker", "breaker event callback panicked");
        }
    }
}

/// A shared handle on one target's breaker: reads its state, tells whether it would admit a
/// call, and lets an operator force it open or reset it.
///
/// Every clone of a [`BreakerLayer`](super::BreakerLayer) and of its services shares the
/// state this handle sees; cloning the handle is an `Arc` clone.
///
/// A failover picker skips a target whose breaker would not admit the call:
///
/// ```
/// use seawall::breaker::{BreakerLayer, OpenReason};
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let targets = [BreakerLayer::new("openai/gpt-4o"), BreakerLayer::new("anthropic/claude")];
/// let handles: Vec<_> = targets.iter().map(BreakerLayer::handle).collect();
/// handles[0].force_open(); // an operator isolates the first target
///
/// let now = Instant::now();
/// let pick = handles.iter().find(|handle| handle.check(now).is_ok()).unwrap();
/// assert_eq!(pick.target().as_str(), "anthropic/claude");
/// assert_eq!(handles[0].check(now).unwrap_err().reason, OpenReason::Unhealthy);
/// # }
/// ```
#[derive(Clone)]
pub struct BreakerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl BreakerHandle {
    /// The target this breaker guards.
    pub fn target(&self) -> &TargetId {
        &self.shared.target
    }

    /// The health breaker's state. An open breaker whose break is over stays `Open` here
    /// until the next call turns it half-open; [`check`](Self::check) says whether that
    /// call would be admitted.
    pub fn state(&self) -> BreakerState {
        self.shared.state()
    }

    /// Whether a call would be admitted at `now`: `Ok` when closed, open with its break
    /// over, or half-open with a free probe slot; `Err` while the break lasts, the probe
    /// slots are taken, or the capacity cooldown has not ended
    /// ([`OpenReason::OutOfCapacity`]). Read-only: it never takes a probe slot.
    ///
    /// # Errors
    ///
    /// The [`CircuitOpen`] a call would get, with the time until it could be admitted.
    pub fn check(&self, now: Instant) -> Result<(), CircuitOpen> {
        self.shared.check(now)
    }

    /// Opens the breaker until [`reset`](Self::reset): an operator isolating the target.
    pub fn force_open(&self) {
        self.shared.force_open();
    }

    /// Closes the breaker, clears its counts and break growth, and ends any capacity
    /// cooldown.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Shares this breaker with the same target's breakers in other processes: its opens,
    /// closes and cooldowns go to `peers`, and half-open probes are claimed from them. Set
    /// once; later calls are ignored.
    pub fn share(&self, peers: Arc<dyn BreakerPeers>) {
        let _ = self.shared.peers.set(peers);
    }

    /// Applies what a peer decided, without telling the peers again: a shared store calls
    /// this when another process's breaker of the same target changed.
    pub fn adopt(&self, change: PeerChange) {
        match change {
            PeerChange::Opened { open_for } => self.shared.adopt_open(open_for),
            PeerChange::Closed => self.shared.adopt_closed(),
            PeerChange::Cooldown { wait } => {
                self.shared.park_here(wait, Instant::now());
            }
        }
    }

    /// A handle that does not keep the breaker alive (for a registry of shared breakers).
    pub fn downgrade(&self) -> WeakBreakerHandle {
        WeakBreakerHandle {
            shared: Arc::downgrade(&self.shared),
        }
    }
}

/// A [`BreakerHandle`] that does not keep its breaker alive.
#[derive(Clone)]
pub struct WeakBreakerHandle {
    shared: Weak<Shared>,
}

impl WeakBreakerHandle {
    /// The handle, if the breaker still exists.
    pub fn upgrade(&self) -> Option<BreakerHandle> {
        self.shared.upgrade().map(|shared| BreakerHandle { shared })
    }
}

impl fmt::Debug for WeakBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakBreakerHandle").finish_non_exhaustive()
    }
}

/// A breaker is a failover gate: a target whose breaker is open, whose probe slots are
/// taken, or which is cooling down after a rate limit is skipped without a request.
impl TargetGate for BreakerHandle {
    fn check(
        &self,
        now: Instant,
        _estimate: &TokenEstimate,
        _remaining: Option<Duration>,
    ) -> Result<(), SkipReason> {
        BreakerHandle::check(self, now).map_err(SkipReason::from)
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.state())
    }
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("target", &self.shared.target)
            .field("state", &self.shared.state())
            .finish()
    }
}
