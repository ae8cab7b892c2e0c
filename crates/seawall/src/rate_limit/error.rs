//! The limiter's rejection.
//!
//! It lives in `seawall-core` so that the one classifier knows it (a rejection is a
//! failover, never a provider failure); it is re-exported here.

pub use seawall_core::{RateLimitRejected, RejectReason};
