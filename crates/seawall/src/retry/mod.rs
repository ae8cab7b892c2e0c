//! Retries the same target when the classifier says the failure is worth retrying.
//!
//! Put one [`RetryLayer`] per target, outside its breaker and inside the failover layer:
//!
//! ```text
//! Deadline → Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout → Adapter]
//! ```
//!
//! Every failed attempt goes through the stack's [`Classifier`](seawall_core::Classifier)
//! (the one the request context carries, or the layer's own from
//! [`RetryLayer::classifier`], or the built-in table): errors, and on raw HTTP the 4xx/5xx
//! responses through [`LlmResponse::failure`](seawall_core::LlmResponse), whose error body
//! `seawall_providers::raw::ReadErrorBodyLayer` decodes.
//! The layer tries again only when:
//!
//! 1. the disposition is [`Retry`](seawall_core::Disposition::Retry) (a 429, 5xx, 529,
//!    408/409, a reset connection; never a timeout, which fails over);
//! 2. fewer than [`max_attempts`](RetryLayer::max_attempts) attempts were made;
//! 3. the server's wait — `retry-after-ms`, `retry-after` in seconds or as an HTTP date,
//!    Gemini `RetryInfo`, an exhausted quota's reset, re-read from every failure — is at
//!    most the [wait-or-fail-over threshold](RetryLayer::max_server_wait); without one the
//!    wait is a [`Backoff`] with full jitter;
//! 4. the wait fits in what is left of the call's deadline
//!    ([`RequestContext::deadline`](seawall_core::RequestContext));
//! 5. the shared retry budget (tower's [`TpsBudget`])
//!    grants a retry.
//!
//! Otherwise it returns at once with the last error (or the last failed raw response),
//! unchanged, so that the failover layer outside can move on: the retry layer adds no error
//! of its own. Each retry sends a clone of the request with
//! [`RequestContext::attempt`](seawall_core::RequestContext) incremented, to the same inner
//! service, after polling it ready again.
//!
//! Requests must be `Clone`: `ChatRequest` clones cheaply; on raw HTTP use a buffered body
//! such as `http::Request<Full<Bytes>>`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use seawall::retry::RetryLayer;
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason, LlmError,
//!     Message, ProviderKind,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! let provider = service_fn(move |_request: ChatRequest| {
//!     let call = seen.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if call == 0 {
//!             let limited = LlmError::new(ErrorKind::RateLimited, "slow down")
//!                 .with_status(429)
//!                 .with_retry_after(Duration::from_millis(1500));
//!             return Err::<ChatResponse, BoxError>(limited.into());
//!         }
//!         let reply = AssistantMessage::text("Paris");
//!         Ok(ChatResponse::new(ProviderKind::OpenAi, "gpt-4o", reply, FinishReason::Stop))
//!     }
//! });
//! let service = ServiceBuilder::new()
//!     .layer(RetryLayer::new().max_attempts(3).max_server_wait(Duration::from_secs(5)))
//!     .service(provider);
//!
//! let started = tokio::time::Instant::now();
//! let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.text(), "Paris");
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! assert_eq!(started.elapsed(), Duration::from_millis(1500), "the server's wait, exactly");
//! # Ok(())
//! # }
//! ```

pub mod future;
mod layer;
mod policy;
mod service;

pub use self::layer::RetryLayer;
pub use self::policy::Backoff;
pub use self::service::Retry;
pub use tower::retry::budget::{Budget, TpsBudget};
