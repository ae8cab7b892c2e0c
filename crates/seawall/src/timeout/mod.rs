//! The call's one overall deadline, the per-attempt timeout, and the time-to-first-token
//! and idle timeouts of streamed responses.
//!
//! - [`DeadlineLayer`] sets [`RequestContext::deadline`](seawall_core::RequestContext) (or
//!   keeps an earlier one already set) so that every layer inside sees the remaining budget,
//!   and enforces it end to end: when it passes the call fails with
//!   [`DeadlineExceeded`](seawall_core::DeadlineExceeded) inside an
//!   [`ErrorWithTrail`](seawall_core::ErrorWithTrail) that carries the attempts made so far
//!   (the layer installs the call's trail recorder), and a streamed response ends with a
//!   timeout error event. Put it outermost: limiter waits, backoff sleeps and every attempt
//!   count against it.
//! - [`AttemptTimeoutLayer`] bounds one attempt ([`TimedOut`](seawall_core::TimedOut) of
//!   kind `Attempt`), and on typed streamed responses the time to the first content event
//!   (`FirstToken`) and the silence between events (`Idle`). Put it just above the adapter,
//!   inside the retry and breaker layers: a timed-out attempt is then a health failure of
//!   its target and is failed over, not retried on the same target.
//!
//! Every timeout ends only its own call. All errors are types the
//! [classifier](seawall_core::classify()) knows. A stream timeout ends the stream with a
//! [`StreamEvent::Error`](seawall_core::StreamEvent) holding an
//! [`LlmError`](seawall_core::LlmError) of kind
//! [`ErrorKind::Timeout`](seawall_core::ErrorKind) whose source is the `TimedOut`.
//!
//! On raw HTTP (`http::Request` → `http::Response`) the deadline and the attempt timeout
//! bound the time until the response head; the body is passed through untouched.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use seawall::timeout::{AttemptTimeoutLayer, DeadlineLayer};
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message,
//!     ProviderKind, TimedOut, TimeoutKind,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let provider = service_fn(|request: ChatRequest| async move {
//!     // Every layer inside sees the remaining budget.
//!     assert!(request.context.deadline.is_some());
//!     if request.model.as_ref() == "slow-model" {
//!         tokio::time::sleep(Duration::from_secs(60)).await;
//!     }
//!     let reply = AssistantMessage::text("Paris");
//!     Ok::<_, BoxError>(ChatResponse::new(ProviderKind::OpenAi, "gpt-4o", reply, FinishReason::Stop))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(30)))
//!     .layer(
//!         AttemptTimeoutLayer::new(Duration::from_secs(10))
//!             .first_token(Duration::from_secs(5))
//!             .idle(Duration::from_secs(15)),
//!     )
//!     .service(provider);
//!
//! let question = [Message::user("Capital of France?")];
//! let response = service.clone().oneshot(ChatRequest::new("gpt-4o", question.clone())).await?;
//! assert_eq!(response.text(), "Paris");
//!
//! let error = service.oneshot(ChatRequest::new("slow-model", question)).await.unwrap_err();
//! let timed_out = error.downcast_ref::<TimedOut>().expect("the attempt timed out");
//! assert_eq!(timed_out.kind, TimeoutKind::Attempt);
//! # Ok(())
//! # }
//! ```

mod clock;
pub mod error;
pub mod future;
mod layer;
mod service;
mod stream;

pub use self::clock::TokioClock;
pub use self::layer::{AttemptTimeoutLayer, DeadlineLayer};
pub use self::service::{AttemptTimeout, EnforceDeadline};
pub use self::stream::StreamTimeouts;
