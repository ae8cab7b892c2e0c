//! Tower layers that make calls to LLM providers survive production.
//!
//! One module per resilience primitive, each usable with `tower::ServiceBuilder` around the
//! typed provider adapters of `seawall-providers` or around any HTTP service that speaks an
//! LLM API. The request and error model, and the one classifier every layer consults, live in
//! [`seawall-core`](seawall_core).
//!
//! - [`timeout`]: the call's one overall deadline, the per-attempt timeout, and the
//!   time-to-first-token and idle timeouts of streamed responses.
//! - [`failover`]: an ordered plan of targets per call, gates, model mapping, bounded
//!   hops, a streaming commit point, hedging, and the per-call trail; [`failover::FailoverLayer`]
//!   wraps a primary service with fallbacks in a `ServiceBuilder`.
//! - [`retry`]: retries the same target when the classifier says so, waiting what the server
//!   asked for (or a jittered backoff), within a shared retry budget and the call's deadline.
//! - [`breaker`]: the per-target health breaker and capacity cooldown.
//! - [`rate_limit`]: per-target limits on requests and tokens, FIFO waits, reconciliation
//!   with real usage and sync from provider headers.
//! - [`budget`]: the cost of every call, per-request caps, and budgets per key, tenant or
//!   user over calendar windows, reserved before sending and settled with real usage; alerts.
//! - [`cache`]: answers repeated requests from earlier answers (exact match, TTL, a size
//!   bound, streamed replay, stale-if-error when every target is down).
//! - `semantic_cache` (feature `semantic-cache`): answers a request with the stored answer
//!   of a similar earlier one, by the cosine similarity of their prompts' embeddings,
//!   within one scope, model and set of parameters.
//! - [`idempotency`]: calls with the same idempotency key are one call: concurrent ones
//!   coalesced (streams fanned out), finished ones replayed, a reused key refused.
//! - `metrics` (feature `metrics`): call metrics per target and model in a Prometheus
//!   registry, from each call's trail, breaker events and limiter queues.
//! - [`chaos`]: injects LLM-protocol faults (429s with a retry-after, 529s, hangs, cut and
//!   stalled streams, error frames) into your own stack, by schedule or seeded probability.
//! - [`stack`]: one target's layers composed in the recommended order, with its breaker and
//!   limiter installed as failover gates.
//! - [`ServiceBuilderExt`]: `.deadline(..)`, `.retry_target(..)`, `.breaker(..)`,
//!   `.rate_limit_target(..)`, `.attempt_timeout(..)` on `tower::ServiceBuilder`.
//!
//! # Stack order
//!
//! The recommended stack, outermost first:
//!
//! ```text
//! Deadline → Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout → Adapter]
//! ```
//!
//! - The deadline is outermost, so limiter waits and backoff sleeps all count against the
//!   caller's one deadline.
//! - Failover walks an ordered plan of targets and skips those whose breaker or limiter
//!   would not admit the call in time; it sees members that are always ready.
//! - Retry sits outside the breaker so that every attempt passes the breaker (an open
//!   breaker ends the retries at once, and each attempt counts once) and passes the limiter
//!   again (each retry is counted against the quota).
//! - The breaker sits outside the limiter, so an open breaker spends no quota.
//! - The attempt timeout sits inside, so that a timed-out attempt is a health failure of the
//!   target.
//!
//! Every layer works on the typed path (`ChatRequest` → `ChatResponse`) and, except the
//! failover router, on raw HTTP (`http::Request<B>` → `http::Response<B>`) through
//! [`seawall_core::LlmRequest`] and [`seawall_core::LlmResponse`]; on raw HTTP a 4xx or 5xx
//! response is a failure.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

pub mod answer;
pub mod breaker;
pub mod budget;
mod builder;
pub mod cache;
pub mod chaos;
mod classifier;
pub mod failover;
pub mod idempotency;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod rate_limit;
pub mod retry;
#[cfg(feature = "semantic-cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "semantic-cache")))]
pub mod semantic_cache;
pub mod stack;
mod streaming;
pub mod timeout;

pub use builder::ServiceBuilderExt;
pub use seawall_core::BoxError;
pub use streaming::StreamingResponse;
