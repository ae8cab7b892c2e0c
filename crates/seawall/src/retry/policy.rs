use crate::timeout::TokioClock;
use seawall_core::Clock as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::{Classification, Classifier, Disposition, LlmRequest};
use tower::retry::budget::Budget;
use tower::util::rng::{HasherRng, Rng};

/// Exponential backoff with full jitter: before retry `n` (from 0) the wait is uniform in
/// `[0, min(cap, base × 2ⁿ)]`. Used only when the server gave no wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// The upper bound of the first wait.
    pub base: Duration,
    /// The largest upper bound.
    pub cap: Duration,
}

impl Backoff {
    /// A backoff from `base`, doubling, capped at `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The upper bound of the wait before retry `retry` (from 0).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A wait drawn uniformly from `[0, ceiling(retry)]`.
    pub fn wait(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        ceiling.mul_f64(rng.next_f64())
    }
}

impl Default for Backoff {
    /// 500 ms, doubling, capped at 8 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(8))
    }
}

/// A retry budget shared by clones, and by layers that were given the same one.
pub(crate) type SharedBudget = Arc<dyn Budget + Send + Sync>;

/// What the retry layer does, shared by every clone of its services.
#[derive(Clone)]
pub(crate) struct RetryConfig {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) max_server_wait: Duration,
    pub(crate) budget: SharedBudget,
    /// The layer's own classifier; `None` decides with the stack's.
    pub(crate) classifier: Option<Classifier>,
}

impl fmt::Debug for RetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryConfig")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("max_server_wait", &self.max_server_wait)
            .field("classifier", &self.classifier)
            .finish()
    }
}

/// Why the retry layer returned a failure instead of trying again; for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    NotRetryable(Disposition),
    AttemptsExhausted,
    ServerWaitTooLong,
    PastDeadline,
    BudgetExhausted,
}

impl GiveUp {
    const fn as_str(self) -> &'static str {
        match self {
            Self::NotRetryable(Disposition::Failover) => "fail over",
            Self::NotRetryable(_) => "not retryable",
            Self::AttemptsExhausted => "attempts exhausted",
            Self::ServerWaitTooLong => "server wait over the wait-or-fail-over threshold",
            Self::PastDeadline => "wait does not fit the deadline",
            Self::BudgetExhausted => "retry budget exhausted",
        }
    }
}

impl RetryConfig {
    /// Decides on one failed attempt: the wait before the next one, or why there is none.
    /// `attempts` counts the attempts made so far (from 1).
    pub(crate) fn decide<Req: LlmRequest>(
        &self,
        verdict: &Classification,
        attempts: u32,
        request: &Req,
    ) -> Result<Duration, GiveUp> {
        if verdict.disposition != Disposition::Retry {
            return Err(GiveUp::NotRetryable(verdict.disposition));
        }
        if attempts >= self.max_attempts {
            return Err(GiveUp::AttemptsExhausted);
        }
        let wait = match verdict.server_wait() {
            Some(wait) if wait > self.max_server_wait => return Err(GiveUp::ServerWaitTooLong),
            Some(wait) => wait,
            None => self
                .backoff
                .wait(attempts.saturating_sub(1), &mut HasherRng::default()),
        };
        if let Some(deadline) = request.context().and_then(|context| context.deadline) {
            if !deadline.fits(TokioClock.now(), wait) {
                return Err(GiveUp::PastDeadline);
            }
        }
        if !self.budget.withdraw() {
            return Err(GiveUp::BudgetExhausted);
        }
        Ok(wait)
    }

    pub(crate) fn classify<Req: LlmRequest>(
        &self,
        error: &(dyn std::error::Error + 'static),
        request: &Req,
    ) -> Classification {
        use crate::classifier::{classify, of_context};
        classify(
            self.classifier.as_ref(),
            of_context(request.context()),
            error,
        )
    }
}

pub(crate) fn log_give_up(reason: GiveUp, verdict: &Classification, attempts: u32) {
    tracing::debug!(
        target: "seawall::retry",
        attempts,
        cause = verdict.cause.as_str(),
        reason = reason.as_str(),
        "returning the failure"
    );
}
