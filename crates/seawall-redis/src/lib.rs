//! Shared state on Redis for seawall, so that replicas behave as one: the rate limiters of
//! the targets (requests and tokens, with the provider's own reports), the gateway's
//! per-key limits, and the budgets.
//!
//! One [`RedisState`] holds the connection; each piece of state is built from it and
//! plugs into the layer's state trait, so the layers are the same with or without Redis:
//!
//! ```no_run
//! use std::sync::Arc;
//! use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
//! use seawall_redis::{FailMode, RedisConfig, RedisLimiterState, RedisState};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisState::new(
//!     RedisConfig::new("redis://127.0.0.1:6379/0").fail_mode(FailMode::Open),
//! )?;
//! let config = RateLimitConfig::new().requests(Rate::per_minute(500));
//! let state = RedisLimiterState::new(&redis, "openai/gpt-4o", &config);
//! let limiter = RateLimiter::with_state("openai/gpt-4o", config, Arc::new(state));
//! # let _ = limiter; Ok(()) }
//! ```
//!
//! Redis slow or down never hangs a call: every call has a timeout (50 ms by default),
//! the connection comes back in the background, and [`FailMode`] decides meanwhile.
//! Keys are prefixed (`seawall:` by default), hash-tagged so each script touches one slot
//! of a cluster, and expire when idle.

mod budget;
mod client;
mod limiter;

pub use self::budget::{RedisBudgets, Reserving};
pub use self::client::{FailMode, RedisConfig, RedisState, StateStats};
pub use self::limiter::RedisLimiterState;
pub mod testing;
