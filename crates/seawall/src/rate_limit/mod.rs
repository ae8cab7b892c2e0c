//! Per-target rate limiting on requests and tokens.
//!
//! One [`RateLimiter`] per target (provider + model + key) enforces requests per window
//! and tokens per window (and input and output tokens where a provider limits them
//! separately), refilled continuously (GCRA). A call weighs one request plus its
//! estimated prompt and its reserved output (`max_output_tokens`, or a configured
//! default), estimated by the configured [`TokenEstimator`](seawall_core::TokenEstimator).
//!
//! - **Admission** happens in the response future, never in `poll_ready`. While nobody
//!   waits, it is one compare-and-swap per limited dimension (no lock). A call that must
//!   wait joins a **FIFO** queue (bounded by `queue_capacity`): only the head may reserve,
//!   so a large call is not starved by a stream of small ones.
//! - A call that can **never fit** (heavier than a whole window) fails at once with
//!   [`RejectReason::NeverFits`]. A call whose wait would exceed `max_wait`, or pass the
//!   call's [`Deadline`](seawall_core::Deadline), fails at once with the wait it would
//!   need ([`RejectReason::WaitTooLong`], [`RejectReason::PastDeadline`]), so failover can
//!   move on. All are [`RateLimitRejected`], which the classifier treats as a failover,
//!   never as a provider failure.
//! - After the response, the reservation is **reconciled** with the reported usage both
//!   ways: unused tokens are refunded, tokens used beyond the estimate are debited. A
//!   stream is reconciled when it ends, with its last `Usage` event. A call that fails is
//!   charged as estimated (the provider's headers, when the error has them, correct it).
//! - What the provider reports is **the truth until its reset**. Every response and error
//!   that carries rate-limit headers ([`QuotaSnapshot`](seawall_core::QuotaSnapshot)), or a
//!   rate limit reported only as a wait (Gemini's `RetryInfo`), sets a ceiling beside the
//!   configured limits: what it says is left, less what this process has sent that no
//!   report has counted yet, until the reported reset; then the window refills in the
//!   provider's shape ([`ProviderRefill`]). A call that does not fit waits for the reset
//!   within its maximum wait and deadline, or fails over now; it is never sent to collect
//!   a 429. The configured limits stay ceilings of their own (a replica told a quarter
//!   keeps a quarter). Reports arrive out of the order the provider wrote them, so one
//!   only replaces the ceiling if it leaves less room. A stream's report is taken when it
//!   begins.
//! - **Replicas sharing one account** see each other only through the reports. What the
//!   provider counted beyond this process's own calls is the others' spending: it is
//!   projected forward between two reports at the pace they show, and each process takes
//!   only its share of the room a report shows (its part of what the account spent in
//!   recent windows, less a margin), so that replicas which all see the same room, as at
//!   a window's reset, do not all take it.
//! - Prompt estimates are scaled by what the provider reports it counted, so an estimator
//!   that overestimates (the heuristic is an upper bound) does not waste the provider's
//!   ceiling.
//! - [`RateLimiter::snapshot`] reports requests admitted and in flight, tokens reserved
//!   vs used, the queue length, and what is left with the time until refill.
//! - The counters sit behind [`LimiterState`] so a shared store can replace the
//!   in-process [`InMemoryState`].
//!
//! The layer works on the typed path (`Service<ChatRequest, Response = ChatResponse>`) and
//! on raw HTTP (`Service<http::Request<B>, Response = http::Response<B>>`), through
//! [`LlmRequest`](seawall_core::LlmRequest) and [`Reconcile`].
//!
//! Where it sits: `Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout →
//! Adapter]`. An open breaker spends no quota, and every retry passes the limiter again.
//!
//! ```
//! use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message,
//!     ProviderKind, Usage,
//! };
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let limiter = RateLimiter::new(
//!     "openai/gpt-4o",
//!     RateLimitConfig::new()
//!         .requests(Rate::per_minute(500))
//!         .tokens(Rate::per_minute(30_000)),
//! );
//! let service = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(limiter.clone()))
//!     .service_fn(|request: ChatRequest| async move {
//!         let reply = AssistantMessage::text("Paris");
//!         Ok::<_, BoxError>(
//!             ChatResponse::new(ProviderKind::OpenAi, &*request.model, reply, FinishReason::Stop)
//!                 .with_usage(Usage::new(20, 2)),
//!         )
//!     });
//!
//! let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")])
//!     .with_max_output_tokens(100);
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.text(), "Paris");
//!
//! let snapshot = limiter.snapshot();
//! assert_eq!(snapshot.requests_admitted, 1);
//! assert_eq!(snapshot.tokens_used, 22, "reconciled with the real usage");
//! assert!(snapshot.tokens_reserved > snapshot.tokens_used);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod error;
pub mod future;
mod gcra;
mod layer;
mod limiter;
mod provider_window;
mod service;
mod state;
mod stream;

pub use self::config::{Limits, Rate, RateLimitConfig};
pub use self::error::{RateLimitRejected, RejectReason};
pub use self::layer::RateLimitLayer;
pub use self::limiter::{RateLimitSnapshot, RateLimiter, Reservation};
pub use self::provider_window::ProviderRefill;
pub use self::service::RateLimit;
pub use self::state::{
    Capacity, InMemoryState, LimiterState, PendingReserve, Refused, Reserve, Weight,
};
pub use self::stream::Reconcile;
