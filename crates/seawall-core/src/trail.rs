use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::classify::Cause;
use crate::price::Cost;
use crate::provider::TargetId;
use crate::request::ChatRequest;
use crate::response::Usage;
use crate::shared_trail::SharedTrail;
use crate::tokens::{PromptWeight, TokenEstimator};

/// What happened during one call: every attempt, the waits, the breaker states seen, and
/// which target and model finally answered.
///
/// Every response carries one ([`ChatResponse::trail`](crate::ChatResponse::trail)), and the
/// layers attach one to errors, so a caller can always tell what was tried.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Trail {
    /// Attempts and skips, in order.
    pub attempts: Vec<AttemptRecord>,
    /// Total time spent waiting in rate limiters.
    pub limiter_wait: Duration,
    /// Breaker states seen when targets were considered, in order.
    pub breaker_states: Vec<(TargetId, BreakerState)>,
    /// The target that produced the final outcome.
    pub final_target: Option<TargetId>,
    /// The model that produced the final outcome.
    pub final_model: Option<String>,
    /// The tokens the call was estimated to weigh before it was sent.
    pub tokens_estimated: Option<u64>,
    /// The tokens the call actually used, summed over attempts.
    pub tokens_used: Option<u64>,
    /// Streams that broke after the commit point, and how each was recovered, in order.
    pub recoveries: Vec<RecoveryRecord>,
    /// What a response cache or an idempotency layer made of the call, when one is in the
    /// stack.
    pub cache: Option<CacheStatus>,
    /// The usage of each attempt that used tokens, with the model it was sent to, so each is
    /// priced at its own target's price (a recovered stream is several attempts).
    pub charges: Vec<Charge>,
    /// What the call cost, once known (a stream's at its end), when a budget layer prices
    /// the stack's calls; `None` while unknown, or when a model has no price.
    pub cost: Option<Cost>,
    /// The call was sent to a cheaper model than the one asked for, by budget policy
    /// (boxed: rare, and the trail moves with every response).
    pub downgrade: Option<Box<Downgrade>>,
    /// See [`dropped_fields`](Self::dropped_fields); boxed: rare, and the trail moves with
    /// every response (8 bytes here, not a `Vec`'s 24).
    #[allow(clippy::box_collection)]
    dropped_fields: Option<Box<Vec<String>>>,
}

/// The usage of one attempt, and the model it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Charge {
    /// The target that was called, when a router made the attempt.
    pub target: Option<TargetId>,
    /// The model the attempt was sent to.
    pub model: String,
    /// What the provider reported (or, for an abandoned stream, what was estimated).
    pub usage: Usage,
}

impl Charge {
    /// `usage` spent on `model` at `target`.
    pub fn new(target: Option<TargetId>, model: impl Into<String>, usage: Usage) -> Self {
        Self {
            target,
            model: model.into(),
            usage,
        }
    }
}

/// A call a budget policy sent to a cheaper model than the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downgrade {
    /// The model the caller asked for.
    pub from: String,
    /// The model the call was sent to.
    pub to: String,
    /// Which budget did not fit the call as asked.
    pub reason: String,
}

impl Downgrade {
    /// A call for `from` sent to `to` because of `reason`.
    pub fn new(from: impl Into<String>, to: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            reason: reason.into(),
        }
    }
}

/// What a response cache or an idempotency layer made of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Answered from the cache: nothing was sent upstream, no quota or budget was spent.
    Hit,
    /// Not in the cache (or the caller asked it not to be used): sent upstream.
    Miss,
    /// Every target failed and an expired answer, within its allowed age, was served.
    Stale,
    /// Answered by another call with the same idempotency key (joined while it ran, or
    /// replayed after): nothing was sent upstream for this one.
    Replayed,
}

impl CacheStatus {
    /// A short name for logs, metrics and headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Replayed => "replayed",
        }
    }
}

/// A streamed response that broke after content reached the caller, and what the router
/// did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryRecord {
    /// The target whose stream broke.
    pub broken_target: TargetId,
    /// Why it broke (the error event's message, or the truncation).
    pub cause: String,
    /// Characters of text delivered to the caller before the break.
    pub delivered_chars: u64,
    /// Content events (text or tool-call fragments) delivered before the break; providers
    /// send about one token per event.
    pub delivered_deltas: u64,
    /// How it ended.
    pub outcome: RecoveryOutcome,
}

impl RecoveryRecord {
    /// `broken_target`'s stream broke with `cause` after `delivered_chars` characters in
    /// `delivered_deltas` content events; `outcome` says how the recovery ended.
    pub fn new(
        broken_target: TargetId,
        cause: impl Into<String>,
        delivered_chars: u64,
        delivered_deltas: u64,
        outcome: RecoveryOutcome,
    ) -> Self {
        Self {
            broken_target,
            cause: cause.into(),
            delivered_chars,
            delivered_deltas,
            outcome,
        }
    }
}

/// How a recovery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryOutcome {
    /// Still under way (the stream has not ended yet).
    Pending,
    /// The answer was finished on `target` by `path`.
    Recovered {
        /// How.
        path: RecoveryPath,
        /// The target that finished the answer.
        target: TargetId,
    },
    /// The answer could not be finished; the caller got an error event.
    Failed {
        /// Why (no target left, deadline, a restart that diverged).
        reason: String,
    },
}

/// How a broken stream was finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecoveryPath {
    /// The text already delivered was sent as a trailing assistant message (prefill) and
    /// the target's output appended.
    Continuation,
    /// The request was sent again without prefill; the new stream's output was checked
    /// against what was delivered and only what follows it was passed on.
    Restart,
    /// The text already delivered was sent as the assistant's turn followed by a user
    /// message asking to continue it (for models that refuse a prefill); the answer was
    /// joined to what was delivered, its repeat of the delivered end dropped.
    UserMessage,
}

impl RecoveryPath {
    /// A short snake_case name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Continuation => "continuation",
            Self::Restart => "restart",
            Self::UserMessage => "user_message",
        }
    }
}

impl Trail {
    /// An empty trail, as a constant.
    pub(crate) const EMPTY: Self = Self {
        attempts: Vec::new(),
        limiter_wait: Duration::ZERO,
        breaker_states: Vec::new(),
        final_target: None,
        final_model: None,
        tokens_estimated: None,
        tokens_used: None,
        recoveries: Vec::new(),
        cache: None,
        charges: Vec::new(),
        cost: None,
        downgrade: None,
        dropped_fields: None,
    };

    /// Pass-through fields ([`ChatRequest::extra`](crate::ChatRequest::extra)) written for
    /// another wire format than a target's, and so left out of what was sent to it; each
    /// named once, in the order first left out.
    pub fn dropped_fields(&self) -> &[String] {
        self.dropped_fields.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Records that pass-through field `name` was left out of a target's request.
    pub fn record_dropped_field(&mut self, name: &str) {
        let fields = self.dropped_fields.get_or_insert_default();
        if !fields.iter().any(|field| field == name) {
            fields.push(name.to_owned());
        }
    }

    /// How many hedges were sent (attempts made while another was still running).
    pub fn hedges_sent(&self) -> usize {
        self.attempts.iter().filter(|attempt| attempt.hedge).count()
    }

    /// Whether a hedge answered the call.
    pub fn won_by_hedge(&self) -> bool {
        self.attempts
            .iter()
            .any(|attempt| attempt.hedge && attempt.outcome == AttemptOutcome::Succeeded)
    }

    /// How many requests were actually sent (skips excluded).
    pub fn sent_attempts(&self) -> usize {
        self.attempts
            .iter()
            .filter(|attempt| !matches!(attempt.outcome, AttemptOutcome::Skipped { .. }))
            .count()
    }
}

/// One attempt, or one target skipped, within a call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// The target.
    pub target: TargetId,
    /// The model name sent to the target.
    pub model: String,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// How long the call waited before this attempt (backoff or server hint).
    pub wait: Duration,
    /// How long the attempt took, from send to response or failure.
    pub latency: Duration,
    /// For streams: the time to the first content event.
    pub time_to_first_token: Option<Duration>,
    /// Whether the attempt was a hedge: sent while an earlier attempt of the call was
    /// still running. Which attempt won is the one that [succeeded](AttemptOutcome::Succeeded);
    /// the others still running then are [cancelled](AttemptOutcome::Cancelled).
    pub hedge: bool,
}

impl AttemptRecord {
    /// An attempt on (or a skip of) `target` with `model`, with no wait and no latency yet.
    pub fn new(target: TargetId, model: impl Into<String>, outcome: AttemptOutcome) -> Self {
        Self {
            target,
            model: model.into(),
            outcome,
            wait: Duration::ZERO,
            latency: Duration::ZERO,
            time_to_first_token: None,
            hedge: false,
        }
    }

    /// Marks the attempt as a hedge (or not).
    #[must_use]
    pub fn hedged(mut self, hedge: bool) -> Self {
        self.hedge = hedge;
        self
    }

    /// Sets the wait before the attempt, its latency and its time to first token.
    #[must_use]
    pub fn timed(
        mut self,
        wait: Duration,
        latency: Duration,
        time_to_first_token: Option<Duration>,
    ) -> Self {
        self.wait = wait;
        self.latency = latency;
        self.time_to_first_token = time_to_first_token;
        self
    }
}

impl fmt::Display for AttemptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) ", self.target, self.model)?;
        if self.hedge {
            f.write_str("hedge ")?;
        }
        match &self.outcome {
            AttemptOutcome::Succeeded => f.write_str("succeeded")?,
            AttemptOutcome::Cancelled => {
                f.write_str("cancelled: another attempt answered first")?
            }
            AttemptOutcome::Failed { message, .. } => write!(f, "failed: {message}")?,
            AttemptOutcome::Skipped { reason } => write!(f, "skipped: {reason}")?,
        }
        if !self.wait.is_zero() {
            write!(f, " after waiting {} ms", self.wait.as_millis())?;
        }
        Ok(())
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The target answered.
    Succeeded,
    /// The attempt failed.
    Failed {
        /// What the classifier found.
        cause: Cause,
        /// The error's message.
        message: String,
    },
    /// The target was not tried (breaker open, cooling down, limiter full, context too
    /// small, service not ready in time).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The attempt lost a hedge race: another attempt of the call produced content first,
    /// and this one was dropped (its request cancelled). What it had used, if its usage
    /// arrived, is in [`Trail::charges`].
    Cancelled,
}

/// The state of a target's health breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are rejected until the break ends.
    Open,
    /// A limited number of probes are admitted.
    HalfOpen,
}

impl BreakerState {
    /// A short snake_case name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A shared, append-only [`Trail`] that the layers of one call write to.
///
/// The outermost layer that wants a trail installs one in the
/// [`RequestContext`](crate::RequestContext); every clone of the request shares it, so
/// attempts made by inner layers land in the same trail. The lock is held only for an
/// append, never across an `.await`.
///
/// Its allocation is the call's one piece of shared state, so it also keeps the prompt's
/// weight once a layer has weighed it ([`LlmRequest::estimate_once`](crate::LlmRequest)).
#[derive(Clone, Default)]
pub struct TrailRecorder(Arc<CallState>);

#[derive(Default)]
struct CallState {
    trail: Mutex<SharedTrail>,
    weight: OnceLock<PromptWeight>,
}

impl TrailRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `edit` on the trail.
    pub fn update<R>(&self, edit: impl FnOnce(&mut Trail) -> R) -> R {
        let mut trail = self.0.trail.lock().unwrap_or_else(PoisonError::into_inner);
        edit(&mut trail)
    }

    /// Appends an attempt.
    pub fn record(&self, attempt: AttemptRecord) {
        self.update(|trail| trail.attempts.push(attempt));
    }

    /// A copy of the trail as it is now.
    pub fn snapshot(&self) -> Trail {
        self.read(Trail::clone)
    }

    /// The trail as it is now, shared rather than copied: what this recorder records
    /// afterwards is not seen through it (the first write after copies the trail).
    pub fn shared(&self) -> SharedTrail {
        self.0
            .trail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `read` on the trail, without the copy that a write may make.
    pub fn read<R>(&self, read: impl FnOnce(&Trail) -> R) -> R {
        let trail = self.0.trail.lock().unwrap_or_else(PoisonError::into_inner);
        read(&trail)
    }

    /// The prompt tokens of `request` as `estimator` counts them: counted once per call
    /// and kept, for every estimator that [weighs alike](TokenEstimator::weighs_alike)
    /// and as long as the request's model, messages and tools are the ones counted.
    pub fn prompt_tokens(&self, request: &ChatRequest, estimator: &dyn TokenEstimator) -> u64 {
        let Some(alike) = estimator.weighs_alike() else {
            return estimator.prompt_tokens(request);
        };
        if let Some(kept) = self.0.weight.get() {
            return match kept.of(request, alike) {
                Some(tokens) => tokens,
                None => estimator.prompt_tokens(request),
            };
        }
        let tokens = estimator.prompt_tokens(request);
        // Another clone of the request may have set it meanwhile: either is kept.
        let _ = self.0.weight.set(PromptWeight::new(request, alike, tokens));
        tokens
    }

    /// Whether two recorders share one trail.
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for TrailRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TrailRecorder")
            .field(&self.snapshot())
            .finish()
    }
}

impl PartialEq for TrailRecorder {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other)
    }
}

/// An error with the [`Trail`] of the call that ended in it.
///
/// Layers that install a trail wrap the errors they return in it, so a caller can always
/// tell what was tried. It is transparent: `Display` is the original error's, and
/// [`source()`](std::error::Error::source) is the original error, so the
/// [classifier](crate::classify()) — which walks `source()` — sees through it.
///
/// ```
/// use seawall_core::{BoxError, ErrorWithTrail, Trail, classify, Cause, DeadlineExceeded};
/// use std::time::Duration;
///
/// let error: BoxError = ErrorWithTrail::new(
///     DeadlineExceeded::new(Duration::from_secs(1)).into(),
///     Trail::default(),
/// )
/// .into();
/// assert_eq!(classify(&*error).cause, Cause::DeadlineExceeded);
/// assert!(ErrorWithTrail::find(&*error).is_some());
/// ```
#[derive(Debug)]
pub struct ErrorWithTrail {
    error: crate::BoxError,
    trail: SharedTrail,
}

impl ErrorWithTrail {
    /// Wraps `error` with `trail`.
    pub fn new(error: crate::BoxError, trail: impl Into<SharedTrail>) -> Self {
        Self {
            error,
            trail: trail.into(),
        }
    }

    /// The trail of the call.
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// The original error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The original error and the trail.
    pub fn into_parts(self) -> (crate::BoxError, Trail) {
        (self.error, self.trail.into_trail())
    }

    /// The outermost `ErrorWithTrail` in `error`'s `source()` chain, if any.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Self> {
        crate::error::find_error(error)
    }

    /// The first error of type `E` in the chain below this wrapper.
    pub fn downcast_inner<E: std::error::Error + 'static>(&self) -> Option<&E> {
        crate::error::find_error(&*self.error)
    }
}

impl fmt::Display for ErrorWithTrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for ErrorWithTrail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}
