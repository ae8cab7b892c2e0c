//! A response cache: a repeated request is answered from a store of earlier answers, with
//! nothing sent upstream and no quota or budget spent.
//!
//! - **Exact match** on the request's normalised form: the model, the messages, the tools
//!   and every parameter that changes the answer (temperature, `max_tokens`, stop
//!   sequences, response format, provider pass-through fields such as `seed`); never the
//!   caller (`user`), the stream flag, request metadata or the request context. Keys are
//!   compared whole, so two requests with the same hash never share an answer. Credentials
//!   are not part of a request at this layer, so they never reach a key.
//! - **Fresh for a TTL** on tokio's clock; the store is bounded in bytes (moka, least
//!   recently used first) and one answer is not stored past a size.
//! - **Streams**: a streamed answer is stored as its events once it reached its end of
//!   message (a cut or failed stream is never stored) and replayed event for event; a
//!   stored answer is replayed in the form asked for, whole or streamed.
//! - **Stale-if-error** ([`CacheBuilder::stale_if_error`]): when the call fails — every
//!   target down, the deadline passed — an expired answer within the allowed age answers
//!   it, marked [`CacheStatus::Stale`](seawall_core::CacheStatus) in the trail. Never for a
//!   failure that is the caller's own.
//! - **Per call** ([`RequestContext::options_mut`](seawall_core::RequestContext::options_mut)`.cache`): `no_store`,
//!   `no_cache`, `max_age`, as the gateway reads them from `Cache-Control`.
//! - **Where answers live** ([`CacheStore`]): in process by default ([`InProcessCache`]),
//!   or in a store shared by every replica ([`CacheBuilder::store`]; `seawall-redis` has
//!   one on Redis), so that one replica's answer is another's hit.
//! - The trail says [`Hit`](seawall_core::CacheStatus), `Miss` or `Stale`;
//!   [`CacheLayer::stats`] counts them.
//!
//! Put it outside the failover router (after the deadline), so a hit touches no limiter,
//! breaker or target. It is off unless you add it: an answer is only a good answer again
//! when the caller's use allows it (deterministic prompts, temperature 0, FAQ-like traffic).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use seawall::cache::CacheLayer;
//! use seawall_core::{
//!     AssistantMessage, BoxError, CacheStatus, ChatRequest, ChatResponse, FinishReason,
//!     Message, ProviderKind,
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
//!         let reply = AssistantMessage::text("Paris");
//!         Ok::<_, BoxError>(ChatResponse::new(ProviderKind::OpenAi, "gpt-4o", reply, FinishReason::Stop))
//!     }
//! });
//! let service = CacheLayer::new(Duration::from_secs(600)).layer(provider);
//!
//! let question = || ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
//! let first = service.clone().oneshot(question()).await?;
//! let second = service.clone().oneshot(question()).await?;
//! assert_eq!(second.text(), "Paris");
//! assert_eq!(second.trail.cache, Some(CacheStatus::Hit));
//! assert_eq!(first.trail.cache, Some(CacheStatus::Miss));
//! assert_eq!(sent.load(Ordering::SeqCst), 1, "the second call never left");
//! # Ok(())
//! # }
//! ```

mod error;
mod future;
pub(crate) mod key;
mod layer;
mod service;
mod store;

pub use self::error::CacheUnavailable;
pub use self::future::ResponseFuture;
pub use self::key::CacheKey;
pub use self::layer::{CacheBuilder, CacheLayer};
pub use self::service::Cache;
pub use self::store::{CacheStats, CacheStore, InProcessCache, Lookup};
pub use crate::answer::{Answered, StoredAnswer};
