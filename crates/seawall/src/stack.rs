//! One target's layers composed in the recommended order, ready for the failover router.
//!
//! [`TargetStack`] wraps a target's service (a provider adapter, or any
//! `Service<ChatRequest>`) as `Retry → Breaker → RateLimit → AttemptTimeout → service` and
//! returns a [`Guarded`] target: the failover [`Target`] with the breaker and the limiter
//! already installed as its gates, plus their handles, so an application can watch and steer
//! them (snapshots, state, force open).
//!
//! ```
//! use std::time::Duration;
//!
//! use seawall::failover::Failover;
//! use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
//! use seawall::stack::TargetStack;
//! use seawall::timeout::AttemptTimeoutLayer;
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message, ProviderKind,
//! };
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Stand-ins for two provider adapters.
//! let answer = |provider| {
//!     service_fn(move |request: ChatRequest| async move {
//!         let reply = AssistantMessage::text(format!("{} says hi", request.model));
//!         Ok::<_, BoxError>(ChatResponse::new(provider, &*request.model, reply, FinishReason::Stop))
//!     })
//! };
//! let limiter = RateLimiter::new(
//!     "openai/gpt-4o",
//!     RateLimitConfig::new().requests(Rate::per_minute(500)).tokens(Rate::per_minute(30_000)),
//! );
//! let openai = TargetStack::new("openai/gpt-4o")
//!     .rate_limit(limiter.clone())
//!     .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_secs(30)))
//!     .build(answer(ProviderKind::OpenAi));
//! let anthropic = TargetStack::new("anthropic/claude").build(answer(ProviderKind::Anthropic));
//!
//! let router = Failover::builder()
//!     .target(openai.target.model("gpt-4o"))
//!     .target(anthropic.target.model("claude-sonnet-4-5"))
//!     .build();
//! let response = router.oneshot(ChatRequest::new("chat", [Message::user("hi")])).await?;
//! assert_eq!(response.text(), "gpt-4o says hi");
//! assert_eq!(limiter.snapshot().requests_admitted, 1);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use seawall_core::{BoxError, ChatRequest, ChatResponse, Classifier, TargetId};
use tower::ServiceBuilder;
use tower::util::option_layer;
use tower_service::Service;

use crate::breaker::{BreakerHandle, BreakerLayer};
use crate::failover::Target;
use crate::rate_limit::{RateLimitLayer, RateLimiter};
use crate::retry::RetryLayer;
use crate::timeout::AttemptTimeoutLayer;

/// The layers of one target, with defaults: a [`RetryLayer::new`], a
/// [`BreakerLayer::new`], no rate limit and no attempt timeout until set.
#[derive(Debug, Clone)]
pub struct TargetStack {
    id: TargetId,
    retry: RetryLayer,
    breaker: BreakerLayer,
    rate_limit: Option<RateLimiter>,
    attempt_timeout: Option<AttemptTimeoutLayer>,
    classifier: Option<Classifier>,
}

impl TargetStack {
    /// The default layers for the target named `id`.
    pub fn new(id: impl Into<TargetId>) -> Self {
        let id = id.into();
        Self {
            breaker: BreakerLayer::new(id.clone()),
            id,
            retry: RetryLayer::new(),
            rate_limit: None,
            attempt_timeout: None,
            classifier: None,
        }
    }

    /// Replaces the retry layer (share one retry budget across targets by giving each the
    /// same [`RetryLayer::budget`]).
    #[must_use]
    pub fn retry(mut self, retry: RetryLayer) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the breaker. Build it for the same target id.
    #[must_use]
    pub fn breaker(mut self, breaker: BreakerLayer) -> Self {
        self.breaker = breaker;
        self
    }

    /// Limits the target's requests and tokens with `limiter` (shared, not copied).
    #[must_use]
    pub fn rate_limit(mut self, limiter: RateLimiter) -> Self {
        self.rate_limit = Some(limiter);
        self
    }

    /// Bounds each attempt, and streams' first token and idle time.
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: AttemptTimeoutLayer) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Decides with `classifier` in every layer of this target (its retry layer and its
    /// breaker), whatever the call arrives with. Inside a failover router, give the
    /// classifier to the router instead ([`FailoverBuilder::classifier`]): it reaches every
    /// target's layers from there.
    ///
    /// [`FailoverBuilder::classifier`]: crate::failover::FailoverBuilder::classifier
    #[must_use]
    pub fn classifier(mut self, classifier: impl Into<Classifier>) -> Self {
        self.classifier = Some(classifier.into());
        self
    }

    /// Wraps `service` in the layers and returns the failover target with its gates.
    pub fn build<S>(self, service: S) -> Guarded
    where
        S: Service<ChatRequest, Response = ChatResponse> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let breaker = self.breaker.handle();
        // The retry layer is the outermost: it hands the classifier to the breaker inside.
        let retry = match self.classifier {
            Some(classifier) => self.retry.classifier(classifier),
            None => self.retry,
        };
        let budget = retry.shared_budget();
        let member = ServiceBuilder::new()
            .layer(retry)
            .layer(self.breaker)
            .layer(option_layer(
                self.rate_limit.clone().map(RateLimitLayer::new),
            ))
            .layer(option_layer(self.attempt_timeout))
            // Optional layers are `Either`s, whose branches must share one error type.
            .map_err(Into::<BoxError>::into)
            .service(service);
        let mut target = Target::new(self.id, member)
            .gate(Arc::new(breaker.clone()))
            .retry_budget(budget);
        if let Some(limiter) = &self.rate_limit {
            target = target.gate(Arc::new(limiter.clone()));
        }
        Guarded {
            target,
            breaker,
            limiter: self.rate_limit,
        }
    }
}

/// A target wrapped by [`TargetStack::build`].
pub struct Guarded {
    /// The failover target, with the breaker and the limiter as gates. Set its model name,
    /// context window and weight before adding it to the router.
    pub target: Target,
    /// The target's breaker.
    pub breaker: BreakerHandle,
    /// The target's rate limiter, if it has one.
    pub limiter: Option<RateLimiter>,
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("target", &self.target)
            .field("breaker", &self.breaker)
            .field("limiter", &self.limiter.as_ref().map(RateLimiter::target))
            .finish()
    }
}
