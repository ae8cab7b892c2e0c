//! Tower layers that make calls to LLM providers survive production.
//!
//! One module per resilience primitive, each usable with `tower::ServiceBuilder` around the
//! typed provider adapters of `seawall-providers` or around any HTTP service that speaks an
//! LLM API. The request and error model, and the one classifier every layer consults, live
//! in [`seawall-core`](seawall_core).
//!
//! - [`rate_limit`]: per-target limits on requests and tokens, FIFO waits, reconciliation
//!   with real usage and sync from provider headers.
//! - [`failover`]: an ordered plan of targets per call, gates, model mapping, bounded
//!   hops, a streaming commit point, and the per-call trail.
//!
//! The recommended stack, outermost first:
//!
//! ```text
//! Deadline → Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout → Adapter]
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
pub mod failover;
pub mod rate_limit;

pub use builder::ServiceBuilderExt;
pub use seawall_core::BoxError;
