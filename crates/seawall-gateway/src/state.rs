//! `[state]`: where limiters, budgets, cached answers and idempotency keys live. In process
//! by default; in Redis, shared by every replica, when `[state]` names one.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall::breaker::BreakerHandle;
use seawall::budget::{BudgetStore, InMemoryBudgets, Line, Refused};
use seawall::cache::CacheStore;
use seawall::idempotency::IdempotencyLayer;
use seawall::rate_limit::{RateLimitConfig, RateLimiter};
use seawall_redis::{
    FailMode, RedisBudgets, RedisCache, RedisConfig, RedisIdempotency, RedisLimiterState,
    RedisState, Reserving, StateStats,
};

use crate::config::{Config, ConfigError, OnRedisDownConfig, problem};

/// The state the gateway's limiters and budgets are built on.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    redis: Option<RedisState>,
}

impl State {
    /// In process, or the Redis of `[state]`. Must run inside a tokio runtime: the
    /// connection is made (and remade) in the background.
    pub(crate) fn new(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let Some(state) = &config.state else {
            return Ok(Self::default());
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(problem(
                "state",
                "a gateway with [state] is built inside a tokio runtime (its Redis connection runs there)",
            ));
        }
        let url = match (&state.redis_url, &state.redis_url_env) {
            (Some(url), _) => url.clone(),
            (None, Some(variable)) => env(variable).unwrap_or_default(),
            (None, None) => String::new(),
        };
        let redis = RedisState::new(
            RedisConfig::new(url)
                .prefix(state.key_prefix.as_str())
                .timeout(state.timeout)
                .fail_mode(match state.on_redis_down {
                    OnRedisDownConfig::FailOpen => FailMode::Open,
                    OnRedisDownConfig::FailClosed => FailMode::Closed,
                }),
        )
        // The error names the URL's problem, never the URL (it may hold a password).
        .map_err(|error| problem("state.redis_url", format!("{:?}", error.kind())))?;
        Ok(Self { redis: Some(redis) })
    }

    /// A limiter for `name`, its counters here or in Redis.
    pub(crate) fn limiter(&self, name: &str, config: RateLimitConfig) -> RateLimiter {
        match &self.redis {
            Some(redis) => {
                let state = RedisLimiterState::new(redis, name, &config);
                RateLimiter::with_state(name, config, Arc::new(state))
            }
            None => RateLimiter::new(name, config),
        }
    }

    /// Shares a target's breaker and capacity cooldown with the other replicas (the
    /// gateway's breakers send one half-open probe).
    pub(crate) fn share_breaker(&self, handle: &BreakerHandle) {
        if let Some(redis) = &self.redis {
            redis.share_breaker(handle, 1);
        }
    }

    /// The store of the budgets.
    pub(crate) fn budgets(&self) -> BudgetState {
        match &self.redis {
            Some(redis) => BudgetState::Shared(RedisBudgets::new(redis)),
            None => BudgetState::InProcess(InMemoryBudgets::new()),
        }
    }

    /// The store of `[cache]`'s answers when they are shared (in Redis); `None`: in process.
    pub(crate) fn cache_store(&self) -> Option<Arc<dyn CacheStore>> {
        // An answer larger than this is passed on, not stored (as in process).
        const MAX_ENTRY_BYTES: usize = 1024 * 1024;
        let redis = self.redis.as_ref()?;
        Some(Arc::new(RedisCache::new(redis, MAX_ENTRY_BYTES)))
    }

    /// `[idempotency]`'s layer: its keys here, or in Redis.
    pub(crate) fn idempotency(&self, ttl: Duration) -> IdempotencyLayer {
        match &self.redis {
            Some(redis) => {
                IdempotencyLayer::with_store(Arc::new(RedisIdempotency::new(redis, ttl)))
            }
            None => IdempotencyLayer::new(ttl),
        }
    }

    /// What the shared state has seen of Redis, if there is one.
    pub(crate) fn stats(&self) -> Option<StateStats> {
        self.redis.as_ref().map(RedisState::stats)
    }
}

/// The budgets' store: in process, or in Redis.
#[derive(Debug)]
pub(crate) enum BudgetState {
    InProcess(InMemoryBudgets),
    Shared(RedisBudgets),
}

/// A reservation from either store.
#[derive(Debug)]
pub(crate) enum Reserve {
    InProcess(Ready<Result<(), Refused>>),
    Shared(Reserving),
}

impl Future for Reserve {
    type Output = Result<(), Refused>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::InProcess(ready) => Pin::new(ready).poll(cx),
            Self::Shared(reserving) => Pin::new(reserving).poll(cx),
        }
    }
}

impl BudgetStore for BudgetState {
    type Reserve = Reserve;

    fn reserve(&self, lines: &[Line]) -> Reserve {
        match self {
            Self::InProcess(store) => Reserve::InProcess(store.reserve(lines)),
            Self::Shared(store) => Reserve::Shared(store.reserve(lines)),
        }
    }

    fn settle(&self, line: &Line, used: u64, now_window: u64) -> Option<u64> {
        match self {
            Self::InProcess(store) => store.settle(line, used, now_window),
            Self::Shared(store) => store.settle(line, used, now_window),
        }
    }

    fn used(&self, budget: usize, value: &str, window: u64) -> u64 {
        match self {
            Self::InProcess(store) => store.used(budget, value, window),
            Self::Shared(store) => store.used(budget, value, window),
        }
    }

    fn first_alert(&self, budget: usize, value: &str, window: u64, mark: u32) -> bool {
        match self {
            Self::InProcess(store) => store.first_alert(budget, value, window, mark),
            Self::Shared(store) => store.first_alert(budget, value, window, mark),
        }
    }

    fn alert_once(
        &self,
        budget: usize,
        value: &str,
        window: u64,
        mark: u32,
        send: Box<dyn FnOnce() + Send>,
    ) {
        match self {
            Self::InProcess(store) => store.alert_once(budget, value, window, mark, send),
            Self::Shared(store) => store.alert_once(budget, value, window, mark, send),
        }
    }
}
