//! `ServiceBuilder` methods for seawall's layers.

use std::time::Duration;

use tower::ServiceBuilder;
use tower_layer::Stack;

use crate::breaker::BreakerLayer;
use crate::rate_limit::{RateLimitLayer, RateLimiter};
use crate::retry::RetryLayer;
use crate::timeout::{AttemptTimeoutLayer, DeadlineLayer};

/// Adds seawall's layers to [`tower::ServiceBuilder`].
///
/// ```
/// use std::time::Duration;
///
/// use seawall::ServiceBuilderExt;
/// use seawall::breaker::BreakerLayer;
/// use seawall::retry::RetryLayer;
/// use seawall::timeout::AttemptTimeoutLayer;
/// use seawall_core::{BoxError, ChatRequest, ChatResponse};
/// use tower::{ServiceBuilder, service_fn};
///
/// # fn provider(_: ChatRequest) -> std::future::Ready<Result<ChatResponse, BoxError>> {
/// #     unimplemented!()
/// # }
/// let service = ServiceBuilder::new()
///     .deadline(Duration::from_secs(30))
///     .retry_target(RetryLayer::new().max_attempts(3))
///     .breaker(BreakerLayer::builder("openai/gpt-4o").build())
///     .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_secs(20)).first_token(Duration::from_secs(5)))
///     .service(service_fn(provider));
/// # let _ = service;
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Sets and enforces the call's overall deadline ([`DeadlineLayer`]).
    fn deadline(self, budget: Duration) -> ServiceBuilder<Stack<DeadlineLayer, L>>;

    /// Retries the same target ([`RetryLayer`]).
    ///
    /// Not named `retry`: `tower::ServiceBuilder` has an inherent `retry(policy)` method
    /// (tower's `retry` feature), and an inherent method always wins over a trait method.
    fn retry_target(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>>;

    /// Guards a target with a health breaker and capacity cooldown ([`BreakerLayer`]).
    fn breaker(self, layer: BreakerLayer) -> ServiceBuilder<Stack<BreakerLayer, L>>;

    /// Admits calls through one target's rate limiter (see
    /// [`rate_limit`](crate::rate_limit)). The limiter is shared, not copied.
    ///
    /// Not named `rate_limit`: with tower's `limit` feature on (anywhere in the build, as
    /// features unify), `tower::ServiceBuilder` has an inherent `rate_limit(num, per)`
    /// method, which would win over this one.
    fn rate_limit_target(self, limiter: RateLimiter) -> ServiceBuilder<Stack<RateLimitLayer, L>>;

    /// Bounds each attempt, and the first token and idle time of streams
    /// ([`AttemptTimeoutLayer`]).
    fn attempt_timeout(
        self,
        layer: AttemptTimeoutLayer,
    ) -> ServiceBuilder<Stack<AttemptTimeoutLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn deadline(self, budget: Duration) -> ServiceBuilder<Stack<DeadlineLayer, L>> {
        self.layer(DeadlineLayer::new(budget))
    }

    fn retry_target(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(layer)
    }

    fn breaker(self, layer: BreakerLayer) -> ServiceBuilder<Stack<BreakerLayer, L>> {
        self.layer(layer)
    }

    fn rate_limit_target(self, limiter: RateLimiter) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(RateLimitLayer::new(limiter))
    }

    fn attempt_timeout(
        self,
        layer: AttemptTimeoutLayer,
    ) -> ServiceBuilder<Stack<AttemptTimeoutLayer, L>> {
        self.layer(layer)
    }
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}
