//! Tower layers that make calls to LLM providers survive production.
//!
//! One module per resilience primitive (rate limit, breaker, retry, failover, timeouts,
//! budget, cache, idempotency, chaos), each usable with `tower::ServiceBuilder` around the
//! typed provider adapters of `seawall-providers` or around any HTTP service that speaks an
//! LLM API. The request and error model, and the one classifier every layer consults, live in
//! [`seawall-core`](https://docs.rs/seawall-core).
//!
//! The layers arrive module by module; this crate holds none yet.
