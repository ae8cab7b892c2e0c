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

    /// The store of the budgets whose identities (see [`crate::spend::budget_identities`])
    /// are `identities`, in the budget layer's order.
    pub(crate) fn budgets(&self, identities: Vec<String>) -> BudgetState {
        match &self.redis {
            // Known in Redis by their identities, not their order: replicas and reloaded
            // configs that list keys in another order count each budget in its own counters.
            Some(redis) => BudgetState::Shared(RedisBudgets::named(redis, identities)),
            None => BudgetState::InProcess(InProcessBudgets {
                store: Arc::new(InMemoryBudgets::new()),
                slots: None,
                next_slot: identities.len(),
                identities,
            }),
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
    /// Gives back what this replica's leases hold in Redis, for a gateway that stops: the
    /// other replicas can use it at once. Waits at most a second.
    pub(crate) async fn give_back_leases(&self) {
        if let Some(redis) = &self.redis {
            let _ = tokio::time::timeout(Duration::from_secs(1), redis.give_back_leases()).await;
        }
    }

    pub(crate) fn stats(&self) -> Option<StateStats> {
        self.redis.as_ref().map(RedisState::stats)
    }
}

/// The budgets' store: in process, or in Redis.
#[derive(Debug)]
pub(crate) enum BudgetState {
    InProcess(InProcessBudgets),
    Shared(RedisBudgets),
}

/// Budgets counted in this process, in a store a reload shares: each budget of the layer
/// counts in a slot of the store, the same slot across reloads while its identity (its
/// key, unit and window) is unchanged, so what was spent stays spent, and a call in flight
/// across a reload settles where the next call reads.
pub(crate) struct InProcessBudgets {
    store: Arc<InMemoryBudgets>,
    /// Each budget's slot, by the layer's index; `None` while the two are the same (until a
    /// reload moves one), sparing the translation.
    slots: Option<Box<[usize]>>,
    /// Each budget's identity, by the layer's index.
    identities: Vec<String>,
    /// The first slot never used: a budget new to a reload counts from zero there.
    next_slot: usize,
}

impl std::fmt::Debug for InProcessBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBudgets")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl InProcessBudgets {
    /// The slot of the layer's budget `budget`.
    fn slot(&self, budget: usize) -> usize {
        match &self.slots {
            Some(slots) => slots.get(budget).copied().unwrap_or(usize::MAX),
            None => budget,
        }
    }

    /// `line`, counted in its budget's slot.
    fn in_slot(&self, line: &Line) -> Line {
        let mut line = line.clone();
        line.budget = self.slot(line.budget);
        line
    }
}

impl BudgetState {
    /// The store of a reloaded config's budgets, whose identities are `identities`: in
    /// process, each budget whose identity this store also counts goes on in its slot (the
    /// n-th budget of an identity with the n-th), and any other starts from zero; the
    /// slots of budgets the reload removed are cleared. In Redis, the same counters, known
    /// by the same identities.
    pub(crate) fn carried(&self, identities: Vec<String>) -> Self {
        let previous = match self {
            Self::Shared(store) => return Self::Shared(store.renamed(identities)),
            Self::InProcess(previous) => previous,
        };
        let mut next_slot = previous.next_slot;
        let mut taken = vec![false; previous.identities.len()];
        let slots: Box<[usize]> = identities
            .iter()
            .map(|identity| {
                let same = previous
                    .identities
                    .iter()
                    .enumerate()
                    .position(|(i, old)| !taken[i] && old == identity);
                match same {
                    Some(i) => {
                        taken[i] = true;
                        previous.slot(i)
                    }
                    None => {
                        next_slot += 1;
                        next_slot - 1
                    }
                }
            })
            .collect();
        let kept: std::collections::HashSet<usize> = slots.iter().copied().collect();
        previous.store.retain_budgets(|slot| kept.contains(&slot));
        let identity = slots.iter().enumerate().all(|(i, &slot)| i == slot);
        Self::InProcess(InProcessBudgets {
            store: Arc::clone(&previous.store),
            slots: (!identity).then_some(slots),
            identities,
            next_slot,
        })
    }
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
            Self::InProcess(budgets) if budgets.slots.is_none() => {
                Reserve::InProcess(budgets.store.reserve(lines))
            }
            Self::InProcess(budgets) => {
                let lines: Vec<Line> = lines.iter().map(|l| budgets.in_slot(l)).collect();
                Reserve::InProcess(budgets.store.reserve(&lines))
            }
            Self::Shared(store) => Reserve::Shared(store.reserve(lines)),
        }
    }

    fn settle(&self, line: &Line, used: u64, now_window: u64) -> Option<u64> {
        match self {
            Self::InProcess(budgets) => {
                budgets
                    .store
                    .settle(&budgets.in_slot(line), used, now_window)
            }
            Self::Shared(store) => store.settle(line, used, now_window),
        }
    }

    fn used(&self, budget: usize, value: &str, window: u64) -> u64 {
        match self {
            Self::InProcess(budgets) => budgets.store.used(budgets.slot(budget), value, window),
            Self::Shared(store) => store.used(budget, value, window),
        }
    }

    fn first_alert(&self, budget: usize, value: &str, window: u64, mark: u32) -> bool {
        match self {
            Self::InProcess(budgets) => {
                let slot = budgets.slot(budget);
                budgets.store.first_alert(slot, value, window, mark)
            }
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
            Self::InProcess(budgets) => {
                let slot = budgets.slot(budget);
                budgets.store.alert_once(slot, value, window, mark, send);
            }
            Self::Shared(store) => store.alert_once(budget, value, window, mark, send),
        }
    }
}
