//! Idempotency keys: calls that carry the same key (and the same request) are one call.
//!
//! - **Coalesced**: while the first call with a key is in flight, every other call with
//!   that key joins it: one upstream call, and every caller gets its result. A streamed
//!   answer is fanned out to every joined caller from its first event, as the first caller
//!   reads it; a caller that asked for a whole answer gets it whole.
//! - **Replayed**: once the first call finished with a whole answer (a stream that reached
//!   its end of message), a call with the key within the TTL gets that answer again,
//!   nothing sent.
//! - **Refused**: the same key with a different request is an [`IdempotencyConflict`],
//!   never sent (a 422-class error: the caller reused a key by mistake).
//! - **Failures are not kept**: when the first call fails (or its caller gives up, or drops
//!   its stream halfway), the joined calls get its error ([`FirstCallFailed`] when it is not
//!   a provider error) and the key is free again, so a retry with the key runs anew.
//!
//! The key is the call's [`CallOptions::idempotency_key`](seawall_core::CallOptions) (the
//! gateway reads the `Idempotency-Key` header); a call without one passes through. Requests
//! are compared in the normalised form the response cache keys on. Put the layer outside
//! the failover router, after the deadline: a joined or replayed call touches no limiter,
//! breaker or target. The keys live behind an [`IdempotencyStore`]: in process by default
//! ([`InProcessIdempotency`]), or shared by every replica
//! ([`IdempotencyLayer::with_store`]; `seawall-redis` has one on Redis), so that a retry
//! that lands on another replica joins or replays the first call.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use seawall::idempotency::IdempotencyLayer;
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message,
//!     ProviderKind,
//! };
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let sent = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&sent);
//! let provider = service_fn(move |_request: ChatRequest| {
//!     counter.fetch_add(1, Ordering::SeqCst);
//!     async {
//!         tokio::time::sleep(Duration::from_millis(300)).await;
//!         let reply = AssistantMessage::text("Order placed.");
//!         Ok::<_, BoxError>(ChatResponse::new(ProviderKind::OpenAi, "gpt-4o", reply, FinishReason::Stop))
//!     }
//! });
//! let service = IdempotencyLayer::new(Duration::from_secs(3600)).layer(provider);
//!
//! let order = || {
//!     let mut request = ChatRequest::new("gpt-4o", [Message::user("Place order 42.")]);
//!     request.context.options_mut().idempotency_key = Some("order-42".into());
//!     request
//! };
//! // A client that retried while its first call was still running, and once more later.
//! let (a, b) = tokio::join!(service.clone().oneshot(order()), service.clone().oneshot(order()));
//! let c = service.clone().oneshot(order()).await?;
//! for response in [a?, b?, c] {
//!     assert_eq!(response.text(), "Order placed.");
//! }
//! assert_eq!(sent.load(Ordering::SeqCst), 1, "one upstream call");
//! # Ok(())
//! # }
//! ```

mod error;
mod flight;
mod future;
mod layer;
mod service;
mod store;

pub use self::error::{FirstCallFailed, IdempotencyConflict, IdempotencyUnavailable};
pub use self::future::ResponseFuture;
pub use self::layer::IdempotencyLayer;
pub use self::service::Idempotency;
pub use self::store::{Claim, IdempotencyStore, InFlight, InProcessIdempotency};
pub use crate::answer::{Answered, StoredAnswer};
