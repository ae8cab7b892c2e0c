//! Injects LLM-protocol faults into your own stack, in process: the same fault vocabulary
//! ([`seawall_core::fault`]) that the simulator plays over real HTTP.
//!
//! Put [`ChaosLayer`] where the faults should come from — typically right above an adapter,
//! inside the target's retry layer and breaker — and give it a plan of
//! [`FaultRule`](seawall_core::fault::FaultRule)s: by request number, by time window from
//! installation (tokio's clock, so a paused test clock drives it), by seeded probability, or
//! limited in count. Each call takes the fault of the first rule that fires:
//!
//! | fault | what the layers above see |
//! |---|---|
//! | `Status`, `RateLimited` (with `retry-after`), `Overloaded` (529, 503), `HtmlPage`, `EmptyBody`, `Disconnect` | the [`LlmError`](seawall_core::LlmError) the provider's adapter reports; nothing is sent upstream |
//! | `Hang { ms }` | silence (nothing sent upstream); after `ms`, a closed connection; without `ms`, until a timeout or the caller gives up |
//! | `SlowFirstByte { ms }` | the response, `ms` after the call at the earliest |
//! | `CutAfter { events }` | a stream that breaks after `events` events (a [`StreamTruncated`](seawall_core::ErrorKind::StreamTruncated) error event); a whole response, a connection closed mid-body |
//! | `EndWithoutTerminal { events }` | a stream that ends without its end of message (a truncation error event) |
//! | `StallAfter { events, ms }` | a stream silent for `ms` after `events` events |
//! | `ErrorFrameAfter { events }` | a stream that ends with the provider's in-band error after `events` events |
//! | `ContentFiltered` | a reply finished as [`ContentFilter`](seawall_core::FinishReason::ContentFilter) |
//! | `DuplicateFirstEvent` | a stream whose first event arrives twice |
//! | `MalformedChunkAfter` | nothing: the adapters skip a malformed event by default |
//!
//! Event counts are events of the typed stream. The errors carry the provider's status,
//! code and retry hints as [`provider`](ChaosLayer::provider)'s adapter would report them
//! (default OpenAI), so the one classifier decides on them exactly as on the real thing.
//! [`ChaosLayer::disabled`] (or an empty plan) costs one branch per call.
//!
//! # Raw HTTP
//!
//! On `http::Request` → `http::Response` the faults are played on the wire: an error fault
//! is the provider's error response (its JSON error body, `retry-after`, `retry-after-ms`
//! and `x-should-retry` headers; an HTML page; an empty body) and a disconnect an error; a
//! `text/event-stream` body is shaped event by event (cut with a connection error, stalled,
//! ended by the provider's in-band error frame or before its end of message, a malformed
//! `data:` line inserted, the first event doubled); a whole body is cut halfway.
//! `ContentFiltered` rewrites nothing on raw HTTP: the body passes through.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use seawall::chaos::ChaosLayer;
//! use seawall::retry::{Backoff, RetryLayer};
//! use seawall::ServiceBuilderExt;
//! use seawall_core::fault::{Fault, FaultRule};
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message, ProviderKind,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let provider = service_fn(|_request: ChatRequest| async {
//!     let reply = AssistantMessage::text("Paris");
//!     Ok::<_, BoxError>(ChatResponse::new(ProviderKind::Anthropic, "claude", reply, FinishReason::Stop))
//! });
//! // The first two calls get Anthropic's 529: does my retry layer ride it out?
//! let chaos = ChaosLayer::new([FaultRule::first(2, Fault::overloaded())])
//!     .provider(ProviderKind::Anthropic);
//! let service = ServiceBuilder::new()
//!     .retry_target(RetryLayer::new().max_attempts(3).backoff(Backoff::new(
//!         Duration::from_millis(100),
//!         Duration::from_secs(1),
//!     )))
//!     .layer(chaos)
//!     .service(provider);
//!
//! let response = service.oneshot(ChatRequest::new("claude", [Message::user("Capital of France?")])).await?;
//! assert_eq!(response.text(), "Paris");
//! # Ok(())
//! # }
//! ```

mod body;
mod future;
mod layer;
mod raw;
mod service;
mod stream;
mod wire;

pub use self::body::ChaosBody;
pub use self::future::ResponseFuture;
pub use self::layer::ChaosLayer;
pub use self::raw::RawResponseFuture;
pub use self::service::Chaos;
