//! Call metrics per target and per model, in a [`prometheus_client`] registry: the same
//! figures the gateway's `/metrics` serves, for a stack you run yourself.
//!
//! - [`MetricsLayer`] counts every call of the service it wraps, outermost in your stack
//!   (outside the budget and failover layers, so the trail it reads is the call's whole
//!   story): calls by model and outcome, end-to-end latency and time to first token per
//!   model, and from the trail each attempt per target and model (outcome, latency, time
//!   to first token), failovers, limiter waits, tokens, cost by key and model, cache
//!   results and stream recoveries. A stream is counted when it ends, fails, or is dropped.
//! - [`CallMetrics::record`] counts one call by hand, when you hold its trail already.
//! - [`CallMetrics::breaker_events`] counts breaker transitions and capacity cooldowns;
//!   [`CallMetrics::watch_breaker`] and [`CallMetrics::watch_limiter`] read breaker states
//!   and limiter queues at scrape time.
//!
//! Behind the `metrics` feature. `prometheus-client` keeps no global state: the families
//! live in the registry you give them, beside your own metrics, and the text encoder
//! escapes label values. Counting one call costs a few hash lookups and one short lock per
//! histogram observed (see BENCHMARKS.md).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use seawall::metrics::prometheus_client::{encoding::text::encode, registry::Registry};
//! use seawall::metrics::{CallMetrics, MetricsLayer};
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message,
//!     ProviderKind,
//! };
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let metrics = Arc::new(CallMetrics::new());
//! let mut registry = Registry::with_prefix("seawall");
//! metrics.register(&mut registry);
//!
//! let provider = service_fn(|_request: ChatRequest| async {
//!     let reply = AssistantMessage::text("Paris");
//!     Ok::<_, BoxError>(ChatResponse::new(ProviderKind::OpenAi, "gpt-4o", reply, FinishReason::Stop))
//! });
//! let service = MetricsLayer::new(Arc::clone(&metrics)).layer(provider);
//! let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
//! service.oneshot(request).await?;
//!
//! let mut text = String::new();
//! encode(&mut text, &registry)?;
//! assert!(text.contains(r#"seawall_calls_total{model="gpt-4o",outcome="answered"} 1"#));
//! assert!(text.contains(r#"seawall_call_duration_seconds_count{model="gpt-4o"} 1"#));
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod recorder;
mod service;
mod stream;

pub use self::future::ResponseFuture;
pub use self::layer::MetricsLayer;
pub use self::recorder::{CallMetrics, CallOutcome, CallRecord};
pub use self::service::Metered;
/// The client these metrics are registered with, re-exported so your registry is of the
/// same version.
pub use prometheus_client;
