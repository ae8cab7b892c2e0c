//! The breaker's rejection: seawall-core's [`CircuitOpen`], with the target, the time until
//! a call could be admitted, and whether the target is unhealthy or only cooling down after
//! a rate limit ([`OpenReason`]). The classifier fails it over and never counts it as a
//! health failure.

pub use seawall_core::{CircuitOpen, OpenReason};
