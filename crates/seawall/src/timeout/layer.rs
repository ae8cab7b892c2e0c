use std::time::Duration;

use tower_layer::Layer;

use super::service::{AttemptTimeout, EnforceDeadline};
use super::stream::StreamTimeouts;

/// Sets the call's one overall deadline and enforces it end to end.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    budget: Duration,
    cover_streams: bool,
}

impl DeadlineLayer {
    /// A deadline `budget` after the call enters this layer. A deadline the caller (or an
    /// outer layer) already set and that ends earlier is kept.
    pub const fn new(budget: Duration) -> Self {
        Self {
            budget,
            cover_streams: true,
        }
    }

    /// Whether the deadline also bounds the events of a streamed response (the default):
    /// when it passes mid-stream, the stream ends with a timeout error event. With `false`
    /// the deadline covers the time until the response (its headers) only.
    #[must_use]
    pub const fn cover_streams(mut self, cover: bool) -> Self {
        self.cover_streams = cover;
        self
    }

    /// The configured budget.
    pub const fn budget(&self) -> Duration {
        self.budget
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = EnforceDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnforceDeadline::new(inner, self.budget, self.cover_streams)
    }
}

/// Bounds one attempt: the time until its response, and for streamed responses the time
/// to the first content and the idle time between events.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimeoutLayer {
    timeouts: StreamTimeouts,
    attempt: Option<Duration>,
}

impl AttemptTimeoutLayer {
    /// An attempt that has not produced its response (for a stream: its headers) within
    /// `timeout` fails with [`TimedOut`](seawall_core::TimedOut) of kind `Attempt`.
    pub const fn new(timeout: Duration) -> Self {
        Self {
            timeouts: StreamTimeouts::none(),
            attempt: Some(timeout),
        }
    }

    /// Only stream timeouts: no bound on the time until the response.
    pub const fn streams_only() -> Self {
        Self {
            timeouts: StreamTimeouts::none(),
            attempt: None,
        }
    }

    /// A streamed response whose first content event (text or tool call) has not arrived
    /// `timeout` after the attempt started ends with a first-token timeout error event.
    #[must_use]
    pub const fn first_token(mut self, timeout: Duration) -> Self {
        self.timeouts.first_token = Some(timeout);
        self
    }

    /// A streamed response that sends no event for `timeout` ends with an idle timeout
    /// error event. Before the first content it applies only when no
    /// [`first_token`](Self::first_token) timeout is set.
    #[must_use]
    pub const fn idle(mut self, timeout: Duration) -> Self {
        self.timeouts.idle = Some(timeout);
        self
    }
}

impl<S> Layer<S> for AttemptTimeoutLayer {
    type Service = AttemptTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptTimeout::new(inner, self.attempt, self.timeouts)
    }
}
