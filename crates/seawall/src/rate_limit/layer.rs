use tower_layer::Layer;

use super::limiter::RateLimiter;
use super::service::RateLimit;

/// Applies one target's [`RateLimiter`] to a service.
///
/// The layer holds a handle to the limiter: every service it makes, and every clone of the
/// layer, shares the same counters and queue. Cloning never creates a new limiter.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl RateLimitLayer {
    /// A layer that admits calls through `limiter`.
    pub fn new(limiter: RateLimiter) -> Self {
        Self { limiter }
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone())
    }
}
