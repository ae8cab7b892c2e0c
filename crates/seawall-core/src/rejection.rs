//! Rejections made by seawall's own layers rather than by a provider.
//!
//! They are distinct types so that the [classifier](crate::classify()) never counts them as
//! provider failures: an open circuit or a full limiter queue says nothing about the health
//! of the target.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::provider::TargetId;
use crate::trail::AttemptRecord;

/// The target's breaker does not admit calls: the call was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CircuitOpen {
    /// The target whose breaker is open.
    pub target: TargetId,
    /// How long until the breaker admits a call (a half-open probe, or the end of the
    /// capacity cooldown).
    pub retry_in: Duration,
    /// Whether the target is unhealthy or only out of capacity.
    pub reason: OpenReason,
}

/// Why a breaker does not admit calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpenReason {
    /// The health breaker is open (or half-open with every probe slot taken).
    Unhealthy,
    /// A 429 or an exhausted quota parked the target until its reset: the capacity
    /// cooldown, which is not a health failure.
    OutOfCapacity,
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            OpenReason::Unhealthy => write!(
                f,
                "circuit open for {}: next probe in {} ms",
                self.target,
                self.retry_in.as_millis()
            ),
            OpenReason::OutOfCapacity => write!(
                f,
                "{} is cooling down after a rate limit: {} ms left",
                self.target,
                self.retry_in.as_millis()
            ),
        }
    }
}

impl Error for CircuitOpen {}

impl CircuitOpen {
    /// `target`'s breaker does not admit calls for `retry_in`, for `reason`.
    pub fn new(target: TargetId, reason: OpenReason, retry_in: Duration) -> Self {
        Self {
            target,
            retry_in,
            reason,
        }
    }
}

/// The target's rate limiter did not admit the call: it was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitRejected {
    /// The target whose limiter refused.
    pub target: TargetId,
    /// Why.
    pub reason: RejectReason,
}

/// Why a rate limiter refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The wait queue is full.
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The wait would be longer than the configured maximum.
    WaitTooLong {
        /// The wait the call would need.
        wait: Duration,
        /// The configured maximum wait.
        max_wait: Duration,
    },
    /// The wait would pass the call's deadline.
    PastDeadline {
        /// The wait the call would need.
        wait: Duration,
        /// What was left of the deadline.
        remaining: Duration,
    },
    /// The call weighs more than the limit can ever admit.
    NeverFits {
        /// The call's weight in tokens.
        requested: u64,
        /// The most the limit admits at once.
        capacity: u64,
    },
    /// The limiter's shared state could not be reached and it is set to fail closed.
    StateUnavailable,
}

impl RateLimitRejected {
    /// `target`'s limiter refused a call, for `reason`.
    pub fn new(target: TargetId, reason: RejectReason) -> Self {
        Self { target, reason }
    }

    /// The wait after which the call would be admitted, if waiting can help at all.
    pub fn wait(&self) -> Option<Duration> {
        match self.reason {
            RejectReason::WaitTooLong { wait, .. } | RejectReason::PastDeadline { wait, .. } => {
                Some(wait)
            }
            RejectReason::QueueFull { .. }
            | RejectReason::NeverFits { .. }
            | RejectReason::StateUnavailable => None,
        }
    }
}

impl fmt::Display for RateLimitRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limit for {}: ", self.target)?;
        match self.reason {
            RejectReason::QueueFull { capacity } => {
                write!(f, "the wait queue is full ({capacity} waiting)")
            }
            RejectReason::WaitTooLong { wait, max_wait } => write!(
                f,
                "admission needs a {} ms wait, over the {} ms maximum",
                wait.as_millis(),
                max_wait.as_millis()
            ),
            RejectReason::PastDeadline { wait, remaining } => write!(
                f,
                "admission needs a {} ms wait, past the deadline ({} ms left)",
                wait.as_millis(),
                remaining.as_millis()
            ),
            RejectReason::NeverFits {
                requested,
                capacity,
            } => write!(
                f,
                "the request weighs {requested} tokens, more than the limit of {capacity} can ever admit"
            ),
            RejectReason::StateUnavailable => {
                f.write_str("the shared limiter state is unavailable (fail-closed)")
            }
        }
    }
}

impl Error for RateLimitRejected {}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// One attempt took too long to produce its response.
    Attempt,
    /// A stream's first content took too long to arrive.
    FirstToken,
    /// A stream went silent between two chunks for too long.
    Idle,
}

impl TimeoutKind {
    /// A short snake_case name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Attempt => "attempt",
            Self::FirstToken => "first_token",
            Self::Idle => "idle",
        }
    }
}

/// A per-attempt, time-to-first-token or idle timeout fired. It ends only its own attempt;
/// the target is not retried again in the same call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimedOut {
    /// Which timeout.
    pub kind: TimeoutKind,
    /// The configured limit that was exceeded.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TimeoutKind::Attempt => "attempt",
            TimeoutKind::FirstToken => "time to first token",
            TimeoutKind::Idle => "idle time between stream chunks",
        };
        write!(f, "{what} exceeded {} ms", self.after.as_millis())
    }
}

impl Error for TimedOut {}

impl TimedOut {
    /// The timeout of `kind`, configured to `after`, fired.
    pub fn new(kind: TimeoutKind, after: Duration) -> Self {
        Self { kind, after }
    }
}

/// The call's overall deadline passed. Nothing more is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadlineExceeded {
    /// The whole budget the call had.
    pub budget: Duration,
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline of {} ms exceeded", self.budget.as_millis())
    }
}

impl Error for DeadlineExceeded {}

impl DeadlineExceeded {
    /// The deadline of a call that had `budget` passed.
    pub fn new(budget: Duration) -> Self {
        Self { budget }
    }
}

/// Every target of the plan was tried or skipped and none answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AllTargetsFailed {
    /// Each attempt and skip, in order, with its target, outcome and wait.
    pub attempts: Vec<AttemptRecord>,
}

impl AllTargetsFailed {
    /// Every target failed; `attempts` says how.
    pub fn new(attempts: Vec<AttemptRecord>) -> Self {
        Self { attempts }
    }
}

impl fmt::Display for AllTargetsFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all targets failed after {} attempts",
            self.attempts.len()
        )?;
        for (i, attempt) in self.attempts.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{attempt}")?;
        }
        Ok(())
    }
}

impl Error for AllTargetsFailed {}
