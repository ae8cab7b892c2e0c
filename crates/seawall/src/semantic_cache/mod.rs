//! A semantic cache (feature `semantic-cache`): a request is answered with the stored
//! answer of an earlier request whose prompt means nearly the same, by the cosine
//! similarity of their embeddings.
//!
//! - **What is compared.** The system prompt(s) and the last user message are embedded
//!   (one embedding call per request, through an [`Embedder`](seawall_core::Embedder):
//!   an adapter of `seawall-providers`, such as OpenAI's `text-embedding-3-small` or
//!   Gemini's `text-embedding-004`, or your own). Everything else must match exactly: the
//!   [scope](crate::budget::Scope) value (key, tenant, user, global), the model, the tools,
//!   the sampling and output parameters, the provider pass-through fields that change the
//!   answer (as in the exact [cache](crate::cache)), and every other turn of the
//!   conversation. A request with no scope value, no user text, or an image in its last
//!   user message is passed on untouched.
//! - **When it serves.** The most similar fresh answer in the same partition serves when
//!   its similarity is at least the threshold (default 0.95). Answers are fresh for a TTL
//!   on tokio's clock; the index holds at most `max_entries` answers, the oldest going
//!   first.
//! - **Replay.** A hit replays the answer in the form asked for, whole or streamed, as the
//!   exact cache does; a streamed answer is stored once its stream reached its end of
//!   message (a cut or failed stream is never stored), refusals are never stored.
//! - **Never in the way.** A failed embedding call, an embedding slower than
//!   [`embed_timeout`](SemanticCacheBuilder::embed_timeout), or a vector that cannot be
//!   used sends the call upstream as if the layer were not there (counted in
//!   [`SemanticCacheStats::embed_failures`]). Upstream errors pass through unchanged.
//! - **Per call**: `no_cache` skips the lookup, `no_store` the store, as for the exact cache.
//! - The trail says [`Hit`](seawall_core::CacheStatus) or `Miss`, as the exact cache's does;
//!   [`SemanticCacheLayer::stats`] counts hits, misses, bypasses and embedding failures.
//!
//! Put it where the exact cache goes: outside the failover router, the limiters and the
//! budget, so that a hit spends no quota, no budget and no upstream call. Similar is not the
//! same: use it where a near-duplicate question deserves the same answer (FAQ-like traffic,
//! deterministic prompts), with a high threshold.
//!
//! # The index
//!
//! A flat scan of the request's partition: exact (the best match is the best match), with
//! no build cost and no deletion problem (entries expire and are evicted all the time,
//! which graph indexes such as HNSW handle poorly or not at all), and partition-local (a
//! partition holds one scope value's prompts for one model and parameter set, rarely the
//! whole cache). Measured with
//! `cargo bench -p seawall --features semantic-cache --bench semantic_cache` on the
//! project's 2-core machine (under other builds' load), every entry in the request's
//! partition (the worst case), a whole call through the layer with a local embedder:
//!
//! | vector length | 1,000 entries | 10,000 entries |
//! |---|---|---|
//! | 1536 (`text-embedding-3-small`) | 0.36 ms | 5.6 ms |
//! | 256 (`dimensions = 256`) | 0.07 ms | 0.52 ms |
//!
//! Against an HNSW index (`instant-distance` with its defaults, in the same bench) over the
//! same 1,000 vectors, the scan is faster: a search takes 1.46 ms (1536 numbers) and
//! 0.34 ms (256), and building the index takes 35 to 53 s and 6.7 s, paid again whenever
//! an answer expires or is evicted, since such an index cannot remove a point. (The
//! bench's vectors are random, the hardest case for a graph index; real embeddings
//! cluster.) At 10,000 full-length vectors in one partition (61 MB) the scan is
//! memory-bound at 5.6 ms, where a graph index would likely search faster (its build, in
//! minutes here, was not measured); there, ask the embedder for shorter vectors
//! ([`dimensions`](SemanticCacheBuilder::dimensions)) or keep partitions small (a scope
//! per key or tenant). Either way the lookup is small beside the embedding call itself.
//!
//! The layer needs a tokio runtime with its time driver (the embedding's timeout).
//!
//! # Example
//!
//! ```
//! use std::future::{Ready, ready};
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! use seawall::semantic_cache::SemanticCacheLayer;
//! use seawall_core::{
//!     AssistantMessage, BoxError, CacheStatus, ChatRequest, ChatResponse, EmbeddingRequest,
//!     Embedder, Embeddings, FinishReason, Message, ProviderKind,
//! };
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! /// A toy embedder: how often each letter occurs. Use a provider adapter in production.
//! struct Letters;
//!
//! impl Embedder for Letters {
//!     type Future = Ready<Result<Embeddings, BoxError>>;
//!
//!     fn embed(&self, request: EmbeddingRequest) -> Self::Future {
//!         let vectors = request.input.iter().map(|text| {
//!             let mut counts = vec![0.0_f32; 26];
//!             for b in text.to_ascii_lowercase().bytes().filter(u8::is_ascii_lowercase) {
//!                 counts[usize::from(b - b'a')] += 1.0;
//!             }
//!             counts
//!         });
//!         ready(Ok(Embeddings::new(ProviderKind::OpenAi, "letters", vectors.collect())))
//!     }
//! }
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
//! let layer = SemanticCacheLayer::builder(Letters, "letters").threshold(0.9).build()?;
//! let service = layer.layer(provider);
//!
//! let ask = |text: &str| ChatRequest::new("gpt-4o", [Message::user(text)]);
//! let first = service.clone().oneshot(ask("What is the capital of France?")).await?;
//! let second = service.clone().oneshot(ask("what's the capital of France")).await?;
//! assert_eq!(first.trail.cache, Some(CacheStatus::Miss));
//! assert_eq!(second.trail.cache, Some(CacheStatus::Hit));
//! assert_eq!(second.text(), "Paris");
//! assert_eq!(sent.load(Ordering::SeqCst), 1, "the paraphrase never left");
//! # Ok(())
//! # }
//! ```

mod error;
mod future;
mod index;
mod layer;
mod prompt;
mod service;

pub use self::error::SemanticCacheError;
pub use self::future::ResponseFuture;
pub use self::index::SemanticCacheStats;
pub use self::layer::{SemanticCacheBuilder, SemanticCacheLayer};
pub use self::service::SemanticCache;
