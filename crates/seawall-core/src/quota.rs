use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A provider's rate-limit state as its response headers reported it (`x-ratelimit-*`,
/// `anthropic-ratelimit-*`), attached to responses and errors for the rate limiter to
/// consume.
///
/// Resets are durations from the moment the response was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuotaSnapshot {
    /// Requests per window.
    pub requests: Option<QuotaWindow>,
    /// Tokens per window (input plus output).
    pub tokens: Option<QuotaWindow>,
    /// Input tokens per window, where the provider limits them separately.
    pub input_tokens: Option<QuotaWindow>,
    /// Output tokens per window, where the provider limits them separately.
    pub output_tokens: Option<QuotaWindow>,
}

impl QuotaSnapshot {
    /// Sets the requests window.
    #[must_use]
    pub fn with_requests(mut self, window: QuotaWindow) -> Self {
        self.requests = Some(window);
        self
    }

    /// Sets the tokens window.
    #[must_use]
    pub fn with_tokens(mut self, window: QuotaWindow) -> Self {
        self.tokens = Some(window);
        self
    }

    /// Sets the input-tokens window.
    #[must_use]
    pub fn with_input_tokens(mut self, window: QuotaWindow) -> Self {
        self.input_tokens = Some(window);
        self
    }

    /// Sets the output-tokens window.
    #[must_use]
    pub fn with_output_tokens(mut self, window: QuotaWindow) -> Self {
        self.output_tokens = Some(window);
        self
    }

    /// Whether no header was parsed.
    pub fn is_empty(&self) -> bool {
        self.windows().next().is_none()
    }

    /// The windows that were reported.
    pub fn windows(&self) -> impl Iterator<Item = QuotaWindow> {
        [
            self.requests,
            self.tokens,
            self.input_tokens,
            self.output_tokens,
        ]
        .into_iter()
        .flatten()
    }

    /// If some window has nothing left: the longest time until such a window resets
    /// (every exhausted window must reset before a request can pass).
    pub fn exhausted_until(&self) -> Option<Duration> {
        self.windows()
            .filter(|window| window.remaining == Some(0))
            .map(|window| window.reset_after.unwrap_or(Duration::ZERO))
            .max()
    }
}

/// One limit of a [`QuotaSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuotaWindow {
    /// The limit per window.
    pub limit: Option<u64>,
    /// What is left in the current window.
    pub remaining: Option<u64>,
    /// When the window is back to its full limit.
    pub reset_after: Option<Duration>,
}

impl QuotaWindow {
    /// A window with its limit, what remains of it, and when it resets.
    pub fn new(limit: Option<u64>, remaining: Option<u64>, reset_after: Option<Duration>) -> Self {
        Self {
            limit,
            remaining,
            reset_after,
        }
    }
}
