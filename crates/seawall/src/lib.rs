//! Tower layers that make calls to LLM providers survive production.
//!
//! One module per resilience primitive, each usable with `tower::ServiceBuilder` around the
//! typed provider adapters of `seawall-providers` or around any HTTP service that speaks an
//! LLM API. The request and error model, and the one classifier every layer consults, live in
//! [`seawall-core`](seawall_core).
//!
//! - [`retry`]: retries the same target when the classifier says so, waiting what the server
//!   asked for (or a jittered backoff), within a shared retry budget and the call's deadline.
//! - [`timeout`]: the call's one overall deadline, the per-attempt timeout, and the
//!   time-to-first-token and idle timeouts of streamed responses.
//! - [`breaker`]: the per-target health breaker and capacity cooldown.
//! - [`ServiceBuilderExt`]: `.deadline(..)`, `.retry_target(..)`, `.breaker(..)`,
//!   `.attempt_timeout(..)` on `tower::ServiceBuilder`.
//!
//! # Stack order
//!
//! The recommended stack, outermost first:
//!
//! ```text
//! Deadline → Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout → Adapter]
//! ```
//!
//! Retry sits outside the breaker so that every attempt passes the breaker (an open breaker
//! ends the retries at once, and each attempt counts once); the attempt timeout sits inside
//! so that a timed-out attempt is a health failure of the target.
//!
//! Every layer works on the typed path (`ChatRequest` → `ChatResponse`) and on raw HTTP
//! (`http::Request<B>` → `http::Response<B>`) through [`seawall_core::LlmRequest`] and
//! [`seawall_core::LlmResponse`]; on raw HTTP a 4xx or 5xx response is a failure.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
mod builder;
pub mod retry;
mod streaming;
pub mod timeout;

pub use builder::ServiceBuilderExt;
pub use seawall_core::BoxError;
pub use streaming::StreamingResponse;
