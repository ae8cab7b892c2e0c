use std::fmt;
use std::time::Duration;

use seawall_core::{BreakerState, CircuitOpen, RateLimitRejected, TokenEstimate};
use tokio::time::Instant;

/// Something that can tell, before a call is sent, that a target cannot take it now.
///
/// The failover router asks each of a target's gates in turn, with tokio's `now`, what
/// the call weighs, and what is left of the call's deadline; the first refusal skips the
/// target (it is recorded in the trail, and no request is sent). Checks are read-only: a
/// gate must not reserve anything, since the target's own layers admit the call for real
/// when it is sent.
///
/// [`RateLimiter`](crate::rate_limit::RateLimiter) is a gate (can it admit the call within
/// the remaining deadline?), and so is [`BreakerHandle`](crate::breaker::BreakerHandle)
/// (open, probe slots taken, or cooling down after a rate limit; its state is recorded in the
/// trail).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
/// use seawall::failover::{SkipReason, TargetGate};
/// use seawall_core::TokenEstimate;
/// use tokio::time::Instant;
///
/// /// Takes a target out of rotation by hand.
/// #[derive(Debug, Default)]
/// struct Maintenance(AtomicBool);
///
/// impl TargetGate for Maintenance {
///     fn check(&self, _: Instant, _: &TokenEstimate, _: Option<Duration>) -> Result<(), SkipReason> {
///         if self.0.load(Ordering::Relaxed) {
///             return Err(SkipReason::Other("in maintenance".into()));
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait TargetGate: Send + Sync + fmt::Debug + 'static {
    /// `Ok` if the target may be tried now, or why not.
    ///
    /// # Errors
    ///
    /// The reason the target is skipped.
    fn check(
        &self,
        now: Instant,
        estimate: &TokenEstimate,
        remaining: Option<Duration>,
    ) -> Result<(), SkipReason>;

    /// The breaker state this gate sees, if it is a breaker; recorded in the trail.
    fn breaker_state(&self) -> Option<BreakerState> {
        None
    }
}

/// Why a target was skipped without being tried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Its breaker is open, or it is cooling down after a rate limit
    /// ([`OpenReason`](seawall_core::OpenReason) tells which).
    CircuitOpen(CircuitOpen),
    /// Its rate limiter cannot admit the call within the deadline or the maximum wait, its
    /// queue is full, or the call can never fit.
    RateLimited(RateLimitRejected),
    /// Its context window is smaller than the estimated prompt plus the reserved output.
    ContextTooSmall {
        /// The estimated prompt plus reserved output.
        needed: u64,
        /// The target's context window.
        window: u64,
    },
    /// Its service was still not ready (its `poll_ready` pending: a full buffer or
    /// concurrency limit, a connection pool at capacity) when the router's
    /// [readiness timeout](super::FailoverBuilder::ready_timeout) or the call's deadline
    /// came. Recorded by the router itself, not by a gate.
    NotReady {
        /// How long the call waited for it.
        waited: Duration,
    },
    /// Any other reason a custom gate gives.
    Other(String),
}

impl SkipReason {
    /// How long until the target may take the call, when the reason says.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Self::CircuitOpen(open) => Some(open.retry_in),
            Self::RateLimited(rejected) => rejected.wait(),
            Self::ContextTooSmall { .. } | Self::NotReady { .. } | Self::Other(_) => None,
        }
    }

    /// A short snake_case name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CircuitOpen(open) => match open.reason {
                seawall_core::OpenReason::OutOfCapacity => "cooling_down",
                _ => "circuit_open",
            },
            Self::RateLimited(_) => "rate_limited",
            Self::ContextTooSmall { .. } => "context_too_small",
            Self::NotReady { .. } => "not_ready",
            Self::Other(_) => "other",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CircuitOpen(open) => open.fmt(f),
            Self::RateLimited(rejected) => rejected.fmt(f),
            Self::ContextTooSmall { needed, window } => write!(
                f,
                "context window of {window} tokens is smaller than the {needed} the call needs"
            ),
            Self::NotReady { waited } => write!(
                f,
                "its service was not ready after {} ms",
                waited.as_millis()
            ),
            Self::Other(reason) => f.write_str(reason),
        }
    }
}

impl From<CircuitOpen> for SkipReason {
    fn from(open: CircuitOpen) -> Self {
        Self::CircuitOpen(open)
    }
}

impl From<RateLimitRejected> for SkipReason {
    fn from(rejected: RateLimitRejected) -> Self {
        Self::RateLimited(rejected)
    }
}
