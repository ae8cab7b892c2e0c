//! The hedge race: a call's attempts while the router hedges, up to `1 + max_extra` in
//! flight at once, until one produces content.
//!
//! The plain walk of [`ResponseFuture`](super::future::ResponseFuture) is one attempt at
//! a time; a router with [`Hedge`](super::Hedge) set runs its calls here instead (one
//! allocation per call, made only then). Attempts come from the same [`Walk`], so a hedge
//! honours the plan, the gates, the hops and the deadline like a failover does.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use seawall_core::{
    AttemptOutcome, BoxError, ChatResponse, ErrorKind, EventStream, LlmError, StreamEvent, Usage,
};
use tokio::time::{Instant, Sleep, sleep_until};
use tower::retry::budget::Budget;
use tower_service::Service;

use super::future::{Attempt, MemberFuture, Readiness, Walk, poll_ready_by};
use super::hedge::Hedging;
use super::target::TargetService;

/// The attempts of one hedged call.
pub(crate) struct Race {
    /// In the order they were sent.
    lanes: Vec<Lane>,
    max_lanes: usize,
    /// When the next hedge is sent, while `armed`.
    timer: Pin<Box<Sleep>>,
    armed: bool,
    /// No more hedges in this call: the budget refused one, no target was left, or an
    /// attempt failed fatally.
    spent: bool,
    /// The first fatal failure, returned if no other attempt answers.
    fatal: Option<BoxError>,
}

/// One attempt in flight.
struct Lane {
    attempt: Attempt,
    state: LaneState,
    not_ready: Option<Pin<Box<Sleep>>>,
    /// The attempt's span, kept here between the times it is recorded.
    span: tracing::Span,
}

enum LaneState {
    Ready(TargetService),
    Calling(MemberFuture),
    /// A streamed response read up to its first content event.
    Committing {
        response: Box<ChatResponse>,
        stream: EventStream,
        buffered: Vec<StreamEvent>,
    },
    Gone,
}

/// What polling a lane came to.
enum Step {
    Pending,
    /// A complete response (boxed: the step is moved on every poll).
    Answered(Box<ChatResponse>),
    /// A stream's commit point.
    Committed {
        response: Box<ChatResponse>,
        buffered: Vec<StreamEvent>,
        event: StreamEvent,
        stream: EventStream,
    },
    Failed(BoxError),
    NotReady,
}

impl Race {
    pub(crate) fn new(hedging: &Hedging, targets: usize) -> Self {
        if hedging.policy.budget.is_none() {
            hedging.own_budget.deposit();
        }
        let max_lanes = (1 + hedging.policy.max_extra as usize).min(targets.max(1));
        Self {
            lanes: Vec::with_capacity(max_lanes),
            max_lanes,
            timer: Box::pin(sleep_until(Instant::now())),
            armed: false,
            spent: false,
            fatal: None,
        }
    }

    pub(crate) fn poll(
        &mut self,
        walk: &mut Walk,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ChatResponse, BoxError>> {
        loop {
            if self.lanes.is_empty() {
                // Nothing in flight: fail over, or end with the first fatal failure.
                if let Some(error) = self.fatal.take() {
                    return Poll::Ready(Err(walk.with_trail(error)));
                }
                match walk.next_attempt() {
                    Ok((attempt, service)) => self.start(walk, attempt, service),
                    Err(error) => return Poll::Ready(Err(walk.with_trail(error))),
                }
            }
            let mut i = 0;
            while i < self.lanes.len() {
                match poll_lane(walk, &mut self.lanes[i], cx) {
                    Step::Pending => i += 1,
                    Step::Answered(response) => {
                        let lane = self.win(walk, i);
                        return Poll::Ready(Ok(walk.succeeded(&lane.attempt, *response, None)));
                    }
                    Step::Committed {
                        response,
                        buffered,
                        event,
                        stream,
                    } => {
                        let lane = self.win(walk, i);
                        let response =
                            walk.commit(lane.attempt, *response, buffered, event, stream);
                        return Poll::Ready(Ok(response));
                    }
                    Step::Failed(error) => {
                        let mut lane = self.lanes.remove(i);
                        walk.span.swap_attempt(&mut lane.span);
                        if let Some(error) = walk.failed(&lane.attempt, error) {
                            self.spent = true;
                            self.fatal.get_or_insert(error);
                        }
                        walk.span.swap_attempt(&mut lane.span);
                    }
                    Step::NotReady => {
                        let mut lane = self.lanes.remove(i);
                        walk.span.swap_attempt(&mut lane.span);
                        walk.skip_not_ready(&lane.attempt);
                        walk.span.swap_attempt(&mut lane.span);
                    }
                }
            }
            if self.lanes.is_empty() {
                continue;
            }
            if !self.armed && !self.spent && self.lanes.len() < self.max_lanes {
                self.arm(walk);
            }
            if self.armed && self.timer.as_mut().poll(cx).is_ready() {
                self.armed = false;
                if self.hedge(walk) {
                    continue;
                }
            }
            return Poll::Pending;
        }
    }

    /// Adds an attempt (its span moves from the walk to the lane).
    fn start(&mut self, walk: &mut Walk, attempt: Attempt, service: TargetService) {
        let mut span = tracing::Span::none();
        walk.span.swap_attempt(&mut span);
        self.lanes.push(Lane {
            attempt,
            state: LaneState::Ready(service),
            not_ready: None,
            span,
        });
        // The next hedge is timed from the newest attempt.
        self.armed = false;
    }

    /// Sets the timer for a hedge of the newest attempt.
    fn arm(&mut self, walk: &Walk) {
        let (Some(hedging), Some(newest)) = (&walk.router.shared.hedging, self.lanes.last()) else {
            self.spent = true;
            return;
        };
        let delay = hedging
            .policy
            .delay(&hedging.first_tokens[newest.attempt.index]);
        match newest.attempt.started.checked_add(delay) {
            Some(at) => {
                self.timer.as_mut().reset(at);
                self.armed = true;
            }
            None => self.spent = true,
        }
    }

    /// Sends a hedge if the budget grants one and a target takes it; whether one was sent.
    fn hedge(&mut self, walk: &mut Walk) -> bool {
        let shared = Arc::clone(&walk.router.shared);
        let (Some(hedging), Some(slow)) = (&shared.hedging, self.lanes.last()) else {
            return false;
        };
        let slow_target = &shared.targets[slow.attempt.index];
        let waited = Instant::now().saturating_duration_since(slow.attempt.started);
        if walk.hops as usize >= shared.max_hops || walk.next as usize >= walk.plan.len() {
            self.spent = true;
            return false;
        }
        let budget: &dyn Budget = match (&hedging.policy.budget, &slow_target.retry_budget) {
            (Some(budget), _) | (None, Some(budget)) => &**budget,
            (None, None) => &hedging.own_budget,
        };
        if !budget.withdraw() {
            tracing::event!(
                target: "seawall::failover",
                parent: walk.span.id(),
                tracing::Level::DEBUG,
                "seawall.target" = slow_target.id.as_str(),
                "hedge not sent: retry budget exhausted"
            );
            self.spent = true;
            return false;
        }
        match walk.next_attempt() {
            Ok((mut attempt, service)) => {
                attempt.hedge = true;
                tracing::event!(
                    target: "seawall::failover",
                    parent: walk.span.id(),
                    tracing::Level::INFO,
                    "seawall.target" = shared.targets[attempt.index].id.as_str(),
                    "seawall.hedged_target" = slow_target.id.as_str(),
                    "seawall.hedge_after_ms" = waited.as_secs_f64() * 1e3,
                    "hedge sent"
                );
                self.start(walk, attempt, service);
                true
            }
            Err(_) => {
                // No target left that takes the call now: the attempts in flight go on.
                self.spent = true;
                false
            }
        }
    }

    /// Takes the winning lane out and cancels the others; the winner's span is the walk's.
    fn win(&mut self, walk: &mut Walk, winner: usize) -> Lane {
        let mut lane = self.lanes.remove(winner);
        for loser in self.lanes.drain(..) {
            cancel(walk, loser, lane.attempt.started);
        }
        walk.span.swap_attempt(&mut lane.span);
        if lane.attempt.hedge {
            tracing::event!(
                target: "seawall::failover",
                parent: walk.span.id(),
                tracing::Level::INFO,
                "seawall.target" = walk.router.shared.targets[lane.attempt.index].id.as_str(),
                "hedge won"
            );
        }
        lane
    }
}

/// Records `lane` as cancelled, charges what it used if its usage arrived, and drops it
/// (which cancels its request: the member's future or stream is dropped). `winner_started`
/// is when the winning attempt was sent.
fn cancel(walk: &mut Walk, mut lane: Lane, winner_started: Instant) {
    let usage = match &lane.state {
        LaneState::Committing {
            response, buffered, ..
        } => last_usage(buffered).or(response.usage),
        _ => None,
    };
    walk.span.swap_attempt(&mut lane.span);
    let elapsed = walk.record(&lane.attempt, AttemptOutcome::Cancelled, None);
    walk.span.swap_attempt(&mut lane.span);
    if let Some(usage) = usage {
        let charge = walk.charge(&lane.attempt, usage);
        walk.trail.update(|trail| {
            let used = trail.tokens_used.unwrap_or(0).saturating_add(usage.total());
            trail.tokens_used = Some(used);
            trail.charges.push(charge);
        });
    }
    // An attempt sent before the winner took longer than the winner did: its time is a
    // lower bound of its target's, kept so that a slow target's estimates do not forget
    // the attempts that lost. One sent after the winner says nothing about its target.
    if lane.attempt.started <= winner_started {
        let shared = &walk.router.shared;
        shared.latency.observe(lane.attempt.index, elapsed);
        if let Some(hedging) = &shared.hedging {
            hedging.first_tokens[lane.attempt.index].observe(elapsed);
        }
    }
}

fn last_usage(events: &[StreamEvent]) -> Option<Usage> {
    events.iter().rev().find_map(|event| match event {
        StreamEvent::Usage(usage) => Some(*usage),
        _ => None,
    })
}

/// Drives one lane as far as it goes now.
fn poll_lane(walk: &Walk, lane: &mut Lane, cx: &mut Context<'_>) -> Step {
    loop {
        match mem::replace(&mut lane.state, LaneState::Gone) {
            LaneState::Ready(mut service) => {
                match poll_ready_by(&mut service, cx, lane.attempt.ready_by, &mut lane.not_ready) {
                    Poll::Pending => {
                        lane.state = LaneState::Ready(service);
                        return Step::Pending;
                    }
                    Poll::Ready(Readiness::Ready) => {
                        let future = service.call(walk.attempt_request(&lane.attempt));
                        lane.state = LaneState::Calling(future);
                    }
                    Poll::Ready(Readiness::Failed(error)) => return Step::Failed(error),
                    Poll::Ready(Readiness::NotReady) => return Step::NotReady,
                }
            }
            LaneState::Calling(mut future) => match future.as_mut().poll(cx) {
                Poll::Pending => {
                    lane.state = LaneState::Calling(future);
                    return Step::Pending;
                }
                Poll::Ready(Ok(mut response)) => match response.stream.take() {
                    Some(stream) => {
                        lane.state = LaneState::Committing {
                            response: Box::new(response),
                            stream,
                            buffered: Vec::new(),
                        };
                    }
                    None => return Step::Answered(Box::new(response)),
                },
                Poll::Ready(Err(error)) => return Step::Failed(error),
            },
            LaneState::Committing {
                response,
                mut stream,
                mut buffered,
            } => match Pin::new(&mut stream).poll_next(cx) {
                Poll::Pending => {
                    lane.state = LaneState::Committing {
                        response,
                        stream,
                        buffered,
                    };
                    return Step::Pending;
                }
                Poll::Ready(Some(event))
                    if event.is_content() || matches!(event, StreamEvent::Finish(_)) =>
                {
                    return Step::Committed {
                        response,
                        buffered,
                        event,
                        stream,
                    };
                }
                Poll::Ready(Some(StreamEvent::Error(error))) => {
                    return Step::Failed(Box::new(error));
                }
                Poll::Ready(Some(event)) => {
                    buffered.push(event);
                    lane.state = LaneState::Committing {
                        response,
                        stream,
                        buffered,
                    };
                }
                Poll::Ready(None) => {
                    let error = LlmError::new(
                        ErrorKind::StreamTruncated,
                        "the stream ended before any content",
                    );
                    return Step::Failed(Box::new(error));
                }
            },
            LaneState::Gone => return Step::Failed("a hedged attempt polled after its end".into()),
        }
    }
}
