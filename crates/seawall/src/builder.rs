//! Extension methods on `tower::ServiceBuilder` for seawall's layers.

use tower::ServiceBuilder;
use tower_layer::Stack;

use crate::rate_limit::{RateLimitLayer, RateLimiter};

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Adds seawall's layers to a `tower::ServiceBuilder`.
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Admits calls through one target's rate limiter (see
    /// [`rate_limit`](crate::rate_limit)). The limiter is shared, not copied.
    fn rate_limit(self, limiter: RateLimiter) -> ServiceBuilder<Stack<RateLimitLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn rate_limit(self, limiter: RateLimiter) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(RateLimitLayer::new(limiter))
    }
}
