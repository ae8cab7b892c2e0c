//! Shared state on Redis for seawall, so that replicas behave as one: the rate limiters of
//! the targets (requests and tokens, with the provider's own reports), per-key limits,
//! breakers and capacity cooldowns, budgets, the response cache ([`RedisCache`]) and
//! idempotency keys ([`RedisIdempotency`]).
//!
//! One [`RedisState`] holds the connection; each piece of state is built from it and
//! plugs into the layer's state trait, so the layers are the same with or without Redis:
//!
//! ```
//! use std::sync::Arc;
//! use seawall::breaker::BreakerLayer;
//! use seawall::budget::BudgetBuilder;
//! use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
//! use seawall_core::TokenEstimate;
//! use seawall_redis::{FailMode, RedisBudgets, RedisConfig, RedisLimiterState, RedisState};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = seawall_redis::testing::RedisServer::start()?;
//! # let url = server.url();
//! // url: "redis://127.0.0.1:6379/0"
//! let redis = RedisState::new(RedisConfig::new(url).fail_mode(FailMode::Open))?;
//!
//! // A target's limiter: every replica built this way admits 500 requests a minute in all.
//! let config = RateLimitConfig::new().requests(Rate::per_minute(500));
//! let state = RedisLimiterState::new(&redis, "openai/gpt-4o", &config);
//! let limiter = RateLimiter::with_state("openai/gpt-4o", config, Arc::new(state));
//! let reservation = limiter.acquire_now(&TokenEstimate::default()).await?;
//! # drop(reservation);
//!
//! // Its breaker: opened, parked or probed on one replica, for all of them.
//! let breaker = BreakerLayer::new("openai/gpt-4o");
//! redis.share_breaker(&breaker.handle(), 1);
//!
//! // Budgets counted once for every replica.
//! let budgets = BudgetBuilder::new(RedisBudgets::new(&redis)).build();
//! # let _ = budgets;
//!
//! // One replica's answer is another's hit; a retry on another replica joins or replays
//! // the first call with its idempotency key.
//! let cache = seawall::cache::CacheLayer::builder(std::time::Duration::from_secs(600))
//!     .store(Arc::new(seawall_redis::RedisCache::new(&redis, 1024 * 1024)))
//!     .build();
//! let keys = seawall::idempotency::IdempotencyLayer::with_store(Arc::new(
//!     seawall_redis::RedisIdempotency::new(&redis, std::time::Duration::from_secs(3600)),
//! ));
//! # let _ = (cache, keys);
//! # Ok(()) }
//! ```
//!
//! Redis slow or down never hangs a call: every call has a timeout (50 ms by default),
//! the connection comes back in the background, and [`FailMode`] decides meanwhile.
//! Keys are prefixed (`seawall:` by default), hash-tagged so each script touches one slot
//! of a cluster, and expire when idle.

mod breaker;
mod budget;
mod cache;
mod client;
mod idempotency;
mod lease;
mod limiter;
mod writes;

pub use self::budget::{RedisBudgets, Reserving};
pub use self::cache::RedisCache;
pub use self::client::{FailMode, RedisConfig, RedisState, StateStats};
pub use self::idempotency::RedisIdempotency;
pub use self::limiter::RedisLimiterState;
pub mod testing;
