use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::provider::ProviderKind;
use crate::quota::QuotaSnapshot;

/// What went wrong with a provider call, unified across providers.
///
/// The [classifier](crate::classify()) turns a kind into a retry, failover or fatal
/// decision; adapters map each provider's statuses and error bodies to a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A rate limit that will clear: a 429 with a retryable body.
    RateLimited,
    /// A quota or spend limit that will not clear soon: OpenAI `insufficient_quota`,
    /// Anthropic `enforced_spend_limit_reached`, Gemini per-day quotas. Never retried on
    /// the same target.
    QuotaExhausted,
    /// The provider is overloaded (Anthropic 529, 503 `UNAVAILABLE`).
    Overloaded,
    /// A server-side failure (500, 502, 504, an HTML error page).
    Server,
    /// A transient condition the protocol says to retry: 408 and 409.
    Transient,
    /// The call took too long (the provider's 504 `DEADLINE_EXCEEDED`, a client timeout).
    Timeout,
    /// The connection failed or was reset before a response arrived.
    Connect,
    /// The credentials were rejected (401, Gemini `API_KEY_INVALID`).
    Auth,
    /// The credentials lack a permission (403).
    Permission,
    /// The model or endpoint does not exist (404).
    NotFound,
    /// The request is malformed; sending it again, anywhere, fails the same way.
    InvalidRequest,
    /// The prompt does not fit the model's context window.
    ContextLengthExceeded,
    /// A safety system refused the prompt or the output.
    ContentFiltered,
    /// The request is larger than the target can ever accept (413, a request larger than
    /// the per-minute token limit).
    RequestTooLarge,
    /// The response could not be decoded.
    Decode,
    /// A stream ended, stalled or broke before the provider's end of message.
    StreamTruncated,
}

impl ErrorKind {
    /// A short snake_case name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Overloaded => "overloaded",
            Self::Server => "server_error",
            Self::Transient => "transient",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Auth => "auth",
            Self::Permission => "permission",
            Self::NotFound => "not_found",
            Self::InvalidRequest => "invalid_request",
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::ContentFiltered => "content_filtered",
            Self::RequestTooLarge => "request_too_large",
            Self::Decode => "decode",
            Self::StreamTruncated => "stream_truncated",
        }
    }

    /// The kind an HTTP status means when the body says nothing more specific.
    pub const fn from_status(status: u16) -> Self {
        match status {
            400 | 422 => Self::InvalidRequest,
            401 => Self::Auth,
            402 => Self::QuotaExhausted,
            403 => Self::Permission,
            404 => Self::NotFound,
            408 | 409 => Self::Transient,
            413 => Self::RequestTooLarge,
            429 => Self::RateLimited,
            503 | 529 => Self::Overloaded,
            504 => Self::Timeout,
            500..=599 => Self::Server,
            _ => Self::InvalidRequest,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server said about retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RetryHints {
    /// How long to wait before retrying: `retry-after-ms`, `retry-after` (seconds or HTTP
    /// date) or Gemini `RetryInfo.retryDelay`, as a duration from when the response arrived.
    pub retry_after: Option<Duration>,
    /// `x-should-retry`: the server's explicit yes or no, which overrides the status.
    pub should_retry: Option<bool>,
    /// When the exhausted quota window resets, from the rate-limit headers.
    pub quota_reset: Option<Duration>,
}

impl RetryHints {
    /// Sets the wait before retrying.
    #[must_use]
    pub const fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Sets the server's explicit yes or no (`x-should-retry`).
    #[must_use]
    pub const fn with_should_retry(mut self, retry: bool) -> Self {
        self.should_retry = Some(retry);
        self
    }

    /// Sets when the exhausted quota window resets.
    #[must_use]
    pub const fn with_quota_reset(mut self, reset: Duration) -> Self {
        self.quota_reset = Some(reset);
        self
    }
}

/// An error from a provider call, with everything the classifier and the caller need.
///
/// Cheap to clone (the source is shared). Its `Display` and `Debug` never include request
/// headers, so API keys cannot leak through it; adapters must not put keys in the message.
#[derive(Clone)]
pub struct LlmError(Box<Inner>);

// Boxed so that `Result<_, LlmError>` and `StreamEvent` stay one pointer wide.
#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    status: Option<u16>,
    provider: Option<ProviderKind>,
    message: String,
    code: Option<String>,
    request_id: Option<String>,
    hints: RetryHints,
    quota: Option<QuotaSnapshot>,
    source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl LlmError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            status: None,
            provider: None,
            message: message.into(),
            code: None,
            request_id: None,
            hints: RetryHints::default(),
            quota: None,
            source: None,
        }))
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.0.status = Some(status);
        self
    }

    /// Sets the provider.
    pub fn with_provider(mut self, provider: ProviderKind) -> Self {
        self.0.provider = Some(provider);
        self
    }

    /// Sets the provider's error code or type (`insufficient_quota`, `overloaded_error`,
    /// `RESOURCE_EXHAUSTED`, ...).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.0.code = Some(code.into());
        self
    }

    /// Sets the provider's request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.0.request_id = Some(id.into());
        self
    }

    /// Sets the server's retry wait.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.0.hints.retry_after = Some(wait);
        self
    }

    /// Sets all retry hints.
    pub fn with_hints(mut self, hints: RetryHints) -> Self {
        self.0.hints = hints;
        self
    }

    /// Sets the quota snapshot parsed from the error response's headers.
    pub fn with_quota(mut self, quota: QuotaSnapshot) -> Self {
        self.0.quota = Some(quota);
        self
    }

    /// Sets the underlying error (an I/O or decode error).
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        self.0.source = Some(Arc::from(source.into()));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The HTTP status, if a response arrived.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }

    /// The provider that failed.
    pub fn provider(&self) -> Option<ProviderKind> {
        self.0.provider
    }

    /// The provider's message (or ours, when no response arrived).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The provider's error code or type.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// The provider's request id.
    pub fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }

    /// What the server said about retrying.
    pub fn hints(&self) -> &RetryHints {
        &self.0.hints
    }

    /// The quota snapshot from the error response's headers.
    pub fn quota(&self) -> Option<&QuotaSnapshot> {
        self.0.quota.as_ref()
    }
}

impl fmt::Debug for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("LlmError");
        debug
            .field("kind", &self.0.kind)
            .field("status", &self.0.status)
            .field("provider", &self.0.provider)
            .field("message", &self.0.message)
            .field("code", &self.0.code)
            .field("request_id", &self.0.request_id)
            .field("hints", &self.0.hints)
            .field("quota", &self.0.quota);
        if let Some(source) = &self.0.source {
            debug.field("source", &format_args!("{source}"));
        }
        debug.finish()
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.kind.as_str().replace('_', " ").as_str())?;
        if let Some(provider) = self.0.provider {
            write!(f, " from {provider}")?;
        }
        if let Some(status) = self.0.status {
            write!(f, " ({status})")?;
        }
        if !self.0.message.is_empty() {
            write!(f, ": {}", self.0.message)?;
        }
        if let Some(id) = &self.0.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl Error for LlmError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

impl PartialEq for LlmError {
    /// Equal when everything but the source is equal.
    fn eq(&self, other: &Self) -> bool {
        self.0.kind == other.0.kind
            && self.0.status == other.0.status
            && self.0.provider == other.0.provider
            && self.0.message == other.0.message
            && self.0.code == other.0.code
            && self.0.request_id == other.0.request_id
            && self.0.hints == other.0.hints
            && self.0.quota == other.0.quota
    }
}

/// The errors of `error`'s `source()` chain, from `error` itself inward.
///
/// ```
/// use seawall_core::{ErrorKind, LlmError, error_chain, find_error};
///
/// #[derive(Debug)]
/// struct ClientFailed(LlmError);
/// impl std::fmt::Display for ClientFailed {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("my client failed")
///     }
/// }
/// impl std::error::Error for ClientFailed {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// let error = ClientFailed(LlmError::new(ErrorKind::Overloaded, "overloaded"));
/// assert_eq!(error_chain(&error).count(), 2);
/// assert_eq!(find_error::<LlmError>(&error).map(LlmError::kind), Some(ErrorKind::Overloaded));
/// ```
pub fn error_chain<'a>(error: &'a (dyn Error + 'static)) -> ErrorChain<'a> {
    ErrorChain { next: Some(error) }
}

/// The first error of type `E` in `error`'s `source()` chain, `error` included.
pub fn find_error<'a, E: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a E> {
    error_chain(error).find_map(|error| error.downcast_ref::<E>())
}

/// The iterator of [`error_chain`].
#[derive(Debug, Clone)]
pub struct ErrorChain<'a> {
    next: Option<&'a (dyn Error + 'static)>,
}

impl<'a> Iterator for ErrorChain<'a> {
    type Item = &'a (dyn Error + 'static);

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.next?;
        self.next = current.source();
        Some(current)
    }
}
