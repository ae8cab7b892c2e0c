//! Budgets counted in Redis, so that replicas spend one budget between them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use redis::Script;
use seawall::budget::{BudgetStore, InMemoryBudgets, Line, Refused};
use tokio::sync::oneshot;

use crate::client::RedisState;

static RESERVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("budget_reserve.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("budget_settle.lua")));
/// Marks an alert sent, once: 1 the first time.
static ALERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local first = redis.call('HSETNX', KEYS[1], ARGV[1], 1) \
         if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
         return first",
    )
});

/// How long a window's counters live after their last change: longer than the longest
/// window (a month). Lifetime budgets (window 0) never expire.
const WINDOW_TTL: Duration = Duration::from_secs(40 * 24 * 3600);
/// Values whose last known use this process keeps, for status reads.
const MIRRORED: u64 = 100_000;
/// How long a settlement is retried while Redis is away: spending is never dropped
/// silently; past this it is logged as lost.
const SETTLE_RETRIES: [Duration; 6] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// A [`BudgetStore`] in Redis: every replica reserves from and settles into the same
/// counters, so N replicas spend one budget, not N.
///
/// A reservation is one script call over all the call's budgets (all or none, one round
/// trip). Settlements go in the background, retried while Redis is away. Reads that must
/// not wait (status headers, alert thresholds) use the last use the server answered. An
/// alert goes out once per window over every replica: the first to mark it in Redis sends
/// it.
///
/// While Redis cannot answer: [`FailMode::Open`](crate::FailMode::Open) reserves on an
/// in-process store that counts this replica's own spending;
/// [`FailMode::Closed`](crate::FailMode::Closed) refuses the call
/// ([`BudgetUnavailable`](seawall::budget::BudgetUnavailable)).
#[derive(Debug, Clone)]
pub struct RedisBudgets {
    core: Arc<Core>,
}

struct Core {
    state: RedisState,
    /// Each budget's part of its Redis keys, by the layer's index: its name's digest, or
    /// its index when the budgets are not named.
    names: Vec<String>,
    local: InMemoryBudgets,
    /// The last use the server answered per budget, value and window.
    mirror: moka::sync::Cache<(usize, Arc<str>, u64), u64>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudgets")
            .field("state", &self.state)
            .field("mirrored", &self.mirror.entry_count())
            .finish()
    }
}

fn ttl_ms(window: u64) -> u64 {
    if window == 0 {
        0
    } else {
        u64::try_from(WINDOW_TTL.as_millis()).unwrap_or(u64::MAX)
    }
}

impl RedisBudgets {
    /// Budgets counted in `state`, known by their index in the budget layer: replicas must
    /// configure the same budgets in the same order. [`named`](Self::named) lifts that.
    pub fn new(state: &RedisState) -> Self {
        Self::named(state, Vec::<String>::new())
    }

    /// Budgets counted in `state`, each known by its name in `names` (given in the budget
    /// layer's order): replicas whose configs list them in another order, or a config
    /// reloaded with a budget added before the others, count each budget in its own
    /// counters. A name is any stable text that tells budgets apart (a key's name, the
    /// unit and the window); only its digest reaches Redis. A budget past the end of
    /// `names` is known by its index.
    pub fn named<N: AsRef<str>>(state: &RedisState, names: impl IntoIterator<Item = N>) -> Self {
        let names = names
            .into_iter()
            .map(|name| crate::writes::digest(name.as_ref().as_bytes())[..32].to_owned())
            .collect();
        Self {
            core: Arc::new(Core {
                state: state.clone(),
                names,
                local: InMemoryBudgets::new(),
                mirror: moka::sync::Cache::new(MIRRORED),
            }),
        }
    }
}

impl RedisBudgets {
    /// The same counters in Redis for a budget layer whose budgets are now `names` (a
    /// reloaded config's): each budget of a name goes on counting where it stood.
    pub fn renamed<N: AsRef<str>>(&self, names: impl IntoIterator<Item = N>) -> Self {
        Self::named(&self.core.state, names)
    }
}

impl Core {
    /// The part of budget `budget`'s keys that tells it apart.
    fn name(&self, budget: usize) -> std::borrow::Cow<'_, str> {
        match self.names.get(budget) {
            Some(name) => name.into(),
            None => budget.to_string().into(),
        }
    }

    fn key(&self, budget: usize, window: u64) -> String {
        // Every budget in one slot: a call's budgets are reserved by one script.
        let name = self.name(budget);
        self.state.tagged("budgets", &format!("{name}:{window}"))
    }

    async fn reserve(&self, lines: &[Line]) -> Result<(), Refused> {
        let mut invocation = RESERVE.prepare_invoke();
        for line in lines {
            invocation.key(self.key(line.budget, line.window));
        }
        for line in lines {
            invocation
                .arg(&*line.value)
                .arg(line.amount)
                .arg(line.limit);
        }
        for line in lines {
            invocation.arg(ttl_ms(line.window));
        }
        match self.state.run::<Vec<u64>>(&invocation).await {
            Ok(reply) if reply.len() == 3 + lines.len() && reply[0] == 1 => {
                for (line, used) in lines.iter().zip(&reply[3..]) {
                    self.remember(line.budget, &line.value, line.window, *used);
                }
                Ok(())
            }
            Ok(reply) if reply.len() == 3 && reply[0] == 0 => {
                let index = usize::try_from(reply[1]).unwrap_or(0).min(lines.len() - 1);
                let line = &lines[index];
                self.remember(line.budget, &line.value, line.window, reply[2]);
                Err(Refused::over(index, reply[2]))
            }
            _ => match self.state.without_redis() {
                Ok(()) => self.local.reserve(lines).await,
                Err(_) => Err(Refused::unavailable()),
            },
        }
    }

    fn remember(&self, budget: usize, value: &Arc<str>, window: u64, used: u64) {
        self.mirror
            .insert((budget, Arc::clone(value), window), used);
    }

    async fn settle(&self, line: Line, used: u64, now_window: u64) {
        let same = line.window == now_window;
        let mut invocation = SETTLE.prepare_invoke();
        invocation
            .key(self.key(line.budget, line.window))
            .key(self.key(line.budget, now_window))
            .arg(&*line.value)
            .arg(line.amount)
            .arg(used)
            .arg(u8::from(same))
            .arg(ttl_ms(now_window));
        for pause in SETTLE_RETRIES {
            if let Ok(after) = self.state.run::<u64>(&invocation).await {
                self.remember(line.budget, &line.value, now_window, after);
                return;
            }
            tokio::time::sleep(pause).await;
        }
        tracing::error!(
            target: "seawall::redis",
            budget = line.budget,
            window = now_window,
            used,
            "a budget settlement could not reach Redis and is counted in this process only"
        );
    }
}

impl BudgetStore for RedisBudgets {
    type Reserve = Reserving;

    fn reserve(&self, lines: &[Line]) -> Self::Reserve {
        let core = Arc::clone(&self.core);
        let lines = lines.to_vec();
        let (answer, receive) = oneshot::channel();
        // On its own task, so that a caller dropped meanwhile does not leave the
        // reservation behind: the task gives it back.
        tokio::spawn(async move {
            let result = core.reserve(&lines).await;
            if let Err(Ok(())) = answer.send(result) {
                for line in lines {
                    let window = line.window;
                    core.settle(line, 0, window).await;
                }
            }
        });
        Reserving { receive }
    }

    fn settle(&self, line: &Line, used: u64, now_window: u64) -> Option<u64> {
        // This replica's own spending, for when Redis is away.
        self.core.local.settle(line, used, now_window);
        let core = Arc::clone(&self.core);
        let owned = line.clone();
        tokio::spawn(async move { core.settle(owned, used, now_window).await });
        // The use after, as far as this process knows now.
        let known = self.used(line.budget, &line.value, now_window);
        Some(if line.window == now_window {
            known.saturating_sub(line.amount).saturating_add(used)
        } else {
            known.saturating_add(used)
        })
    }

    fn used(&self, budget: usize, value: &str, window: u64) -> u64 {
        let key = (budget, Arc::<str>::from(value), window);
        match self.core.mirror.get(&key) {
            Some(used) => used,
            None => self.core.local.used(budget, value, window),
        }
    }

    fn first_alert(&self, budget: usize, value: &str, window: u64, mark: u32) -> bool {
        self.core.local.first_alert(budget, value, window, mark)
    }

    /// Once over every replica: the first to mark the alert in Redis sends it. While Redis
    /// is away, each replica sends it once (a duplicate rather than a lost alert).
    fn alert_once(
        &self,
        budget: usize,
        value: &str,
        window: u64,
        mark: u32,
        send: Box<dyn FnOnce() + Send>,
    ) {
        if !self.core.local.first_alert(budget, value, window, mark) {
            return;
        }
        let core = Arc::clone(&self.core);
        let name = core.name(budget);
        let key = core
            .state
            .tagged("budgets", &format!("alerts:{name}:{window}"));
        let field = format!("{mark}:{value}");
        tokio::spawn(async move {
            let mut invocation = ALERT.prepare_invoke();
            invocation.key(key).arg(field).arg(ttl_ms(window));
            match core.state.run::<i64>(&invocation).await {
                Ok(1) => send(),
                Ok(_) => {}
                Err(_) => {
                    if core.state.without_redis().is_ok() {
                        send();
                    }
                }
            }
        });
    }
}

/// A reservation on its way from Redis.
#[derive(Debug)]
pub struct Reserving {
    receive: oneshot::Receiver<Result<(), Refused>>,
}

impl Future for Reserving {
    type Output = Result<(), Refused>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receive)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(Refused::unavailable())))
    }
}
