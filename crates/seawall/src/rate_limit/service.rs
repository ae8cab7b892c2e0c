use std::mem;
use std::task::{Context, Poll};

use seawall_core::{BoxError, LlmRequest};
use tokio::time::Instant;
use tower_service::Service;

use super::future::ResponseFuture;
use super::limiter::RateLimiter;
use super::stream::Reconcile;

/// A service whose calls pass one target's [`RateLimiter`] before they are sent.
///
/// `poll_ready` only delegates; admission (and any wait) happens in the response future,
/// so the service is always as ready as the one it wraps. `call` takes the readied inner
/// service and calls it once the call is admitted, so a waiting call holds whatever
/// readiness reservation the inner service made (a `Buffer` slot, a concurrency permit):
/// put such layers above the limiter, not below it.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: RateLimiter,
}

impl<S> RateLimit<S> {
    /// Wraps `inner` with `limiter`.
    pub fn new(inner: S, limiter: RateLimiter) -> Self {
        Self { inner, limiter }
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    inner_service_accessors!();
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: Reconcile,
    Req: LlmRequest,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let estimate = self.limiter.weigh(&request);
        let deadline = request
            .context()
            .and_then(|context| context.deadline)
            .map(|deadline| Instant::from_std(deadline.at()));
        let acquire = self.limiter.acquire(&estimate, deadline);
        ResponseFuture::new(acquire, inner, request)
    }
}
