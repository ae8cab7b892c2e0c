use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, LlmError};
use crate::rejection::{
    AllTargetsFailed, CircuitOpen, DeadlineExceeded, RateLimitRejected, TimedOut, TimeoutKind,
};
use crate::request::InvalidRequest;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Try the same target again, after the server's wait if it gave one (or a backoff).
    Retry,
    /// This target cannot serve the request now; another one may.
    Failover,
    /// Return the error to the caller; no target would do better.
    Fatal,
}

/// What the classifier recognised in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// A provider error of this kind.
    Provider(ErrorKind),
    /// The request failed validation before it was sent.
    InvalidRequest,
    /// A breaker rejected the call.
    CircuitOpen,
    /// A rate limiter rejected the call.
    RateLimitRejected,
    /// A per-attempt, first-token or idle timeout fired.
    TimedOut(TimeoutKind),
    /// The overall deadline passed.
    DeadlineExceeded,
    /// Every target was tried.
    AllTargetsFailed,
    /// An I/O error with no provider error around it (connect refused, reset, ...).
    Io(io::ErrorKind),
    /// An error a user's [`Classify`] recognised, with its name for logs and metrics.
    Custom(&'static str),
    /// Nothing the classifier knows.
    Unknown,
}

impl Cause {
    /// A short snake_case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider(kind) => kind.as_str(),
            Self::InvalidRequest => "invalid_request",
            Self::CircuitOpen => "circuit_open",
            Self::RateLimitRejected => "rate_limit_rejected",
            Self::TimedOut(TimeoutKind::Attempt) => "attempt_timeout",
            Self::TimedOut(TimeoutKind::FirstToken) => "first_token_timeout",
            Self::TimedOut(TimeoutKind::Idle) => "idle_timeout",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::AllTargetsFailed => "all_targets_failed",
            Self::Io(_) => "io",
            Self::Custom(name) => name,
            Self::Unknown => "unknown",
        }
    }
}

/// The classifier's verdict on one error.
///
/// Built with [`new`](Self::new) and the `with_*` methods by a [`Classify`] of your own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Classification {
    /// Retry the same target, fail over, or give up.
    pub disposition: Disposition,
    /// What was recognised.
    pub cause: Cause,
    /// The server's (or a local layer's) wait before the target can be tried again.
    pub retry_after: Option<Duration>,
    /// When an exhausted quota window resets.
    pub quota_reset: Option<Duration>,
    /// Whether the failure says the target is unhealthy and counts towards its breaker.
    /// Rate limits, local rejections and the caller's own mistakes never do.
    pub health_failure: bool,
    /// Whether the target is out of capacity (a 429 or an exhausted quota) and should be
    /// parked until [`retry_after`](Self::retry_after) or
    /// [`quota_reset`](Self::quota_reset), without counting a health failure.
    pub out_of_capacity: bool,
}

impl Classification {
    /// A verdict with no wait, no health failure and no capacity cooldown.
    pub const fn new(disposition: Disposition, cause: Cause) -> Self {
        Self {
            disposition,
            cause,
            retry_after: None,
            quota_reset: None,
            health_failure: false,
            out_of_capacity: false,
        }
    }

    /// Counts the failure towards the target's breaker.
    #[must_use]
    pub const fn unhealthy(mut self) -> Self {
        self.health_failure = true;
        self
    }

    /// Parks the target (without a health failure) until the server's wait has passed.
    #[must_use]
    pub const fn out_of_capacity(mut self) -> Self {
        self.out_of_capacity = true;
        self
    }

    /// Sets the server's wait before the target can be tried again.
    #[must_use]
    pub const fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Sets when an exhausted quota window resets.
    #[must_use]
    pub const fn with_quota_reset(mut self, reset: Duration) -> Self {
        self.quota_reset = Some(reset);
        self
    }

    /// The longest server-given wait: the retry-after hint or the quota reset.
    pub fn server_wait(&self) -> Option<Duration> {
        match (self.retry_after, self.quota_reset) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a content-filter refusal leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentFilterPolicy {
    /// Return the refusal to the caller as is (the default: another provider answering
    /// what one refused is a policy decision, not a resilience one).
    #[default]
    Return,
    /// Try another target.
    Failover,
}

/// Choices the classification table leaves to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClassifyPolicy {
    /// What a content-filter refusal leads to.
    pub content_filter: ContentFilterPolicy,
}

impl ClassifyPolicy {
    /// The default policy with `policy` for content-filter refusals.
    #[must_use]
    pub const fn content_filter(mut self, policy: ContentFilterPolicy) -> Self {
        self.content_filter = policy;
        self
    }
}

/// Decides what a failure leads to: the trait behind every retry, failover and breaker
/// decision, modelled on tower-http's `ClassifyResponse`.
///
/// An implementation recognises **one** error of a chain
/// ([`recognise`](Self::recognise)); the provided [`classify`](Self::classify) walks the
/// `source()` chain from the outside in and takes the first error recognised, so an
/// [`LlmError`] wrapped in your own error type is still found. [`BuiltinClassifier`] is
/// the table every layer uses unless given another; to classify your own error types,
/// recognise them and hand everything else to the built-in table:
///
/// ```
/// use std::error::Error;
/// use seawall_core::{
///     BuiltinClassifier, Cause, Classification, Classifier, Classify, Disposition,
/// };
///
/// #[derive(Debug)]
/// struct QueueFull;
/// impl std::fmt::Display for QueueFull {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the upstream queue is full")
///     }
/// }
/// impl Error for QueueFull {}
///
/// struct MyClassifier(BuiltinClassifier);
///
/// impl Classify for MyClassifier {
///     fn recognise(&self, error: &(dyn Error + 'static)) -> Option<Classification> {
///         if error.is::<QueueFull>() {
///             return Some(Classification::new(Disposition::Retry, Cause::Custom("queue_full")));
///         }
///         self.0.recognise(error)
///     }
/// }
///
/// let classifier = Classifier::new(MyClassifier(BuiltinClassifier::default()));
/// let verdict = classifier.classify(&QueueFull);
/// assert_eq!(verdict.disposition, Disposition::Retry);
/// assert_eq!(verdict.cause.as_str(), "queue_full");
/// ```
pub trait Classify: Send + Sync + 'static {
    /// The verdict on `error` alone (not its sources), or `None` if it is not recognised.
    fn recognise(&self, error: &(dyn Error + 'static)) -> Option<Classification>;

    /// The verdict on `error`: the first error of its `source()` chain that
    /// [`recognise`](Self::recognise) knows, or fatal [`Cause::Unknown`] when none is:
    /// seawall does not retry what it does not understand.
    fn classify(&self, error: &(dyn Error + 'static)) -> Classification {
        crate::error::error_chain(error)
            .find_map(|error| self.recognise(error))
            .unwrap_or(Classification::new(Disposition::Fatal, Cause::Unknown))
    }
}

/// The built-in classification table (see [`classify_with`]) with its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuiltinClassifier {
    policy: ClassifyPolicy,
}

impl BuiltinClassifier {
    /// The table with `policy`.
    pub const fn new(policy: ClassifyPolicy) -> Self {
        Self { policy }
    }

    /// The policy the table applies.
    pub const fn policy(&self) -> ClassifyPolicy {
        self.policy
    }
}

impl Classify for BuiltinClassifier {
    fn recognise(&self, error: &(dyn Error + 'static)) -> Option<Classification> {
        classify_one(error, &self.policy)
    }
}

/// The classifier of one stack: a cheap, cloneable handle on a [`Classify`].
///
/// Give it once, to the outermost router (or to a
/// [`TargetStack`](https://docs.rs/seawall/latest/seawall/stack/struct.TargetStack.html)
/// used alone); it travels in the request's [`RequestContext`](crate::RequestContext) to
/// every layer inside, so the retry layer, the breaker and the router all decide with the
/// same table. The default is the [`BuiltinClassifier`] with the default policy.
#[derive(Clone)]
pub struct Classifier(Arc<Box<dyn Classify>>);

impl Classifier {
    /// A handle on `classify`.
    pub fn new(classify: impl Classify) -> Self {
        // A thin pointer: the handle rides in every request's context, and a classification
        // (one more indirection) happens only on a failure.
        Self(Arc::new(Box::new(classify)))
    }

    /// The built-in table with `policy`.
    pub fn builtin(policy: ClassifyPolicy) -> Self {
        Self::new(BuiltinClassifier::new(policy))
    }

    /// The verdict on `error`; see [`Classify::classify`].
    pub fn classify(&self, error: &(dyn Error + 'static)) -> Classification {
        self.0.classify(error)
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Self::builtin(ClassifyPolicy::default())
    }
}

impl From<ClassifyPolicy> for Classifier {
    fn from(policy: ClassifyPolicy) -> Self {
        Self::builtin(policy)
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Classifier")
    }
}

/// Two handles are equal when they share one classifier.
impl PartialEq for Classifier {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Classifies any error with the default policy. See [`classify_with`].
pub fn classify(error: &(dyn Error + 'static)) -> Classification {
    classify_with(error, &ClassifyPolicy::default())
}

/// Classifies any error: the one function behind every retry, failover and breaker
/// decision.
///
/// It walks the `source()` chain from the outside in and classifies by the first error it
/// recognises: an [`LlmError`], one of the layer-local [`rejection`](crate::rejection)
/// types, an [`InvalidRequest`], or a [`std::io::Error`]. An error it does not recognise
/// is fatal: seawall does not retry what it does not understand.
///
/// | recognised | disposition | health failure | out of capacity |
/// |---|---|---|---|
/// | rate limited (429) | retry | no | yes |
/// | quota or spend exhausted | fail over | no | yes |
/// | overloaded (529, 503), server error (5xx) | retry | yes | no |
/// | transient (408, 409) | retry | no | no |
/// | connect / reset, I/O connection errors | retry | yes | no |
/// | stream truncated | retry | yes | no |
/// | timeout (provider 504, attempt, first token, idle, I/O) | fail over | yes | no |
/// | auth, permission, not found (a target's key or model) | fail over | yes | no |
/// | decode error | fail over | yes | no |
/// | context length exceeded, request too large | fail over | no | no |
/// | content filtered | fatal (policy: fail over) | no | no |
/// | invalid request (provider or local validation) | fatal | no | no |
/// | circuit open, rate limiter rejection | fail over | no | no |
/// | deadline exceeded, all targets failed, unknown | fatal | no | no |
///
/// `x-should-retry: true` turns the verdict into a retry; `x-should-retry: false` turns a
/// retry into a failover.
pub fn classify_with(error: &(dyn Error + 'static), policy: &ClassifyPolicy) -> Classification {
    BuiltinClassifier::new(*policy).classify(error)
}

fn classify_one(error: &(dyn Error + 'static), policy: &ClassifyPolicy) -> Option<Classification> {
    use Disposition::{Failover, Fatal, Retry};

    if let Some(error) = error.downcast_ref::<LlmError>() {
        return Some(classify_llm_error(error, policy));
    }
    if let Some(open) = error.downcast_ref::<CircuitOpen>() {
        let mut verdict = Classification::new(Failover, Cause::CircuitOpen);
        verdict.retry_after = Some(open.retry_in);
        return Some(verdict);
    }
    if let Some(rejected) = error.downcast_ref::<RateLimitRejected>() {
        let mut verdict = Classification::new(Failover, Cause::RateLimitRejected);
        verdict.retry_after = rejected.wait();
        return Some(verdict);
    }
    if let Some(timed_out) = error.downcast_ref::<TimedOut>() {
        return Some(Classification::new(Failover, Cause::TimedOut(timed_out.kind)).unhealthy());
    }
    if error.is::<DeadlineExceeded>() {
        return Some(Classification::new(Fatal, Cause::DeadlineExceeded));
    }
    if error.is::<AllTargetsFailed>() {
        return Some(Classification::new(Fatal, Cause::AllTargetsFailed));
    }
    if error.is::<InvalidRequest>() {
        return Some(Classification::new(Fatal, Cause::InvalidRequest));
    }
    if let Some(io) = error.downcast_ref::<io::Error>() {
        let kind = io.kind();
        let disposition = match kind {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::Interrupted => Retry,
            _ => Failover,
        };
        return Some(Classification::new(disposition, Cause::Io(kind)).unhealthy());
    }
    None
}

fn classify_llm_error(error: &LlmError, policy: &ClassifyPolicy) -> Classification {
    use Disposition::{Failover, Fatal, Retry};

    let kind = error.kind();
    let cause = Cause::Provider(kind);
    let mut verdict = match kind {
        ErrorKind::RateLimited => {
            let mut verdict = Classification::new(Retry, cause);
            verdict.out_of_capacity = true;
            verdict
        }
        ErrorKind::QuotaExhausted => {
            let mut verdict = Classification::new(Failover, cause);
            verdict.out_of_capacity = true;
            verdict
        }
        ErrorKind::Overloaded
        | ErrorKind::Server
        | ErrorKind::Connect
        | ErrorKind::StreamTruncated => Classification::new(Retry, cause).unhealthy(),
        ErrorKind::Transient => Classification::new(Retry, cause),
        ErrorKind::Timeout
        | ErrorKind::Auth
        | ErrorKind::Permission
        | ErrorKind::NotFound
        | ErrorKind::Decode => Classification::new(Failover, cause).unhealthy(),
        ErrorKind::ContextLengthExceeded | ErrorKind::RequestTooLarge => {
            Classification::new(Failover, cause)
        }
        ErrorKind::ContentFiltered => match policy.content_filter {
            ContentFilterPolicy::Return => Classification::new(Fatal, cause),
            ContentFilterPolicy::Failover => Classification::new(Failover, cause),
        },
        ErrorKind::InvalidRequest => Classification::new(Fatal, cause),
    };
    let hints = error.hints();
    verdict.retry_after = hints.retry_after;
    verdict.quota_reset = hints
        .quota_reset
        .or_else(|| error.quota().and_then(|quota| quota.exhausted_until()));
    match hints.should_retry {
        Some(true) => verdict.disposition = Retry,
        Some(false) if verdict.disposition == Retry => verdict.disposition = Failover,
        _ => {}
    }
    verdict
}
