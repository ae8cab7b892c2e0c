//! Shared state on Redis for many seawall replicas: limiter, breaker, budgets, cache and
//! idempotency, behind the same traits as the in-process state.
//!
//! Nothing is implemented here yet; this crate holds no code.
