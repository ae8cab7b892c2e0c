//! Failover across targets: an ordered plan per call, gates that skip targets which cannot
//! take the call, model mapping per target, bounded hops, and a streaming commit point.
//!
//! [`Failover`] is the outer router of the recommended stack:
//!
//! ```text
//! Deadline → Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout → Adapter]
//! ```
//!
//! For each call it builds a plan from its [`Strategy`] (priority, weighted, least
//! latency by moving average, or power of two choices) and walks it:
//!
//! - A target is **skipped** (recorded in the trail, nothing sent) when its context window
//!   is smaller than the estimated prompt plus reserved output, or when one of its
//!   [`TargetGate`]s refuses: breaker open, capacity cooldown not over, rate limiter unable
//!   to admit the call within the remaining deadline.
//! - The call is sent with the target's own **model name** ([`Target::model`]), so one
//!   alias maps to a fallback chain such as expensive → cheap → local.
//! - On failure the one [classifier](seawall_core::classify()) decides: `Failover` or
//!   `Retry` moves on to the next target (the target's own retry layer has given up by
//!   then); `Fatal` returns at once. At most `max_hops` targets are sent the call.
//! - When nothing is left: one [`AllTargetsFailed`] listing every attempt and skip
//!   (target, outcome, wait).
//! - **Streaming commit point.** A streamed response is read up to its first content event
//!   before it is returned. Before that point, an error status, a first-token timeout, an
//!   error frame or a stream that ends fail over transparently. After it, a failure reaches
//!   the caller as an explicit `Error` event, and a stream that ends without the provider's
//!   end of message ends with a `StreamTruncated` error event, never as a complete one.
//! - **Trail.** Every response carries the call's [`Trail`](seawall_core::Trail) in
//!   `ChatResponse::trail`, and every error is an [`ErrorWithTrail`] whose `source()` is
//!   the original error (so classification sees through it): attempts with target,
//!   outcome, wait and latency (and time to first token), limiter wait, breaker states
//!   seen, final target and model, tokens estimated vs used. The router records one
//!   attempt per target it sends the call to (and one per skip); the trail recorder is
//!   shared through the request's context, so layers inside a target (the limiter's wait,
//!   a retry layer's own attempts) write to the same trail. For a stream, the trail is
//!   taken at the commit point, so it holds the usage only if the response carried it
//!   up front; the rate limiter still reconciles with the usage at the stream's end.
//!
//! # Why a dedicated service rather than `tower::steer::Steer`
//!
//! `Steer` routes each call once and waits for **every** member to be ready before any
//! call; failover must walk an ordered plan within one call, consult per-target gates
//! before sending, and drive only the readiness of the member it is about to use. So the
//! router keeps its members as [`TargetService`]s (`BoxCloneSyncService`, boxed once when
//! the router is built), reports itself always ready, and in each attempt clones the chosen
//! member (one allocation), drives its `poll_ready` in the response future, and calls it.
//! The member's future is boxed by `BoxCloneSyncService`; the router's own future is a
//! hand-written state machine with no further box.
//!
//! ```
//! use std::sync::Arc;
//! use seawall::failover::{Failover, Strategy, Target};
//! use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason,
//!     LlmError, Message, ProviderKind,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Stand-ins for provider adapters: the first is down, the second answers.
//! let down = service_fn(|_: ChatRequest| async {
//!     Err::<ChatResponse, _>(LlmError::new(ErrorKind::Overloaded, "overloaded").with_status(529))
//! });
//! let up = service_fn(|request: ChatRequest| async move {
//!     let reply = AssistantMessage::text("Paris");
//!     Ok::<_, BoxError>(ChatResponse::new(
//!         ProviderKind::OpenAi, &*request.model, reply, FinishReason::Stop,
//!     ))
//! });
//!
//! let limiter = RateLimiter::new(
//!     "openai/gpt-4o-mini",
//!     RateLimitConfig::new().tokens(Rate::per_minute(200_000)),
//! );
//! let router = Failover::builder()
//!     .strategy(Strategy::Priority)
//!     .target(Target::new("anthropic/opus", down).model("claude-opus-4-1"))
//!     .target(
//!         Target::new(
//!             "openai/gpt-4o-mini",
//!             ServiceBuilder::new().layer(RateLimitLayer::new(limiter.clone())).service(up),
//!         )
//!         .model("gpt-4o-mini")
//!         .context_window(128_000)
//!         .gate(Arc::new(limiter)),
//!     )
//!     .build();
//!
//! let request = ChatRequest::new("smart", [Message::user("Capital of France?")]);
//! let response = router.oneshot(request).await?;
//! assert_eq!(response.model, "gpt-4o-mini");
//! assert_eq!(response.trail.attempts.len(), 2);
//! assert_eq!(response.trail.final_target.as_ref().map(|t| t.as_str()), Some("openai/gpt-4o-mini"));
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod gate;
mod service;
mod strategy;
mod stream;
mod target;

pub use self::error::{AllTargetsFailed, ErrorWithTrail};
pub use self::gate::{SkipReason, TargetGate};
pub use self::service::{Failover, FailoverBuilder};
pub use self::strategy::Strategy;
pub use self::target::{Target, TargetService};
