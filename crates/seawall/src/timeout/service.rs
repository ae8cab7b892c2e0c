use crate::timeout::TokioClock;
use seawall_core::Clock as _;
use std::mem;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::{BoxError, Deadline, LlmRequest};
use tokio::time::Instant;
use tower_service::Service;

use super::future::{AttemptTimeoutFuture, DeadlineFuture};
use super::stream::StreamTimeouts;
use crate::streaming::StreamingResponse;

/// The service of [`DeadlineLayer`](super::DeadlineLayer).
#[derive(Debug, Clone)]
pub struct EnforceDeadline<S> {
    inner: S,
    budget: Duration,
    cover_streams: bool,
}

impl<S> EnforceDeadline<S> {
    /// Wraps `inner` with a deadline of `budget` per call.
    pub const fn new(inner: S, budget: Duration, cover_streams: bool) -> Self {
        Self {
            inner,
            budget,
            cover_streams,
        }
    }

    inner_service_accessors!();
}

impl<S, Req> Service<Req> for EnforceDeadline<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: StreamingResponse,
    Req: LlmRequest,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = DeadlineFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let reading = TokioClock.now();
        let now = Instant::from_std(reading.instant());
        let ours = Deadline::after(reading, self.budget);
        let context = request.context_mut();
        let deadline = match context.deadline {
            Some(earlier) => earlier.min(ours),
            None => ours,
        };
        context.deadline = Some(deadline);
        // Installed here so that the error of a call cut by the deadline still carries what
        // the inner layers recorded.
        let trail = context.trail().clone();
        let at = Instant::from_std(deadline.at());
        if now >= at {
            // Already past: the readied inner service stays ready for the next call.
            return DeadlineFuture::expired(deadline.budget(), trail);
        }
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        DeadlineFuture::new(
            inner.call(request),
            at,
            deadline.budget(),
            self.cover_streams,
            trail,
        )
    }
}

/// The service of [`AttemptTimeoutLayer`](super::AttemptTimeoutLayer).
#[derive(Debug, Clone)]
pub struct AttemptTimeout<S> {
    inner: S,
    attempt: Option<Duration>,
    streams: StreamTimeouts,
}

impl<S> AttemptTimeout<S> {
    /// Wraps `inner`: an optional bound on the time until the response, and stream
    /// timeouts.
    pub const fn new(inner: S, attempt: Option<Duration>, streams: StreamTimeouts) -> Self {
        Self {
            inner,
            attempt,
            streams,
        }
    }

    inner_service_accessors!();
}

impl<S, Req> Service<Req> for AttemptTimeout<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: StreamingResponse,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AttemptTimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        AttemptTimeoutFuture::new(
            inner.call(request),
            Instant::now(),
            self.attempt,
            self.streams,
        )
    }
}
