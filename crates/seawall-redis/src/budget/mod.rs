//! Budgets counted in Redis, so that replicas spend one budget between them.

mod lease;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use redis::Script;
use seawall::budget::{BudgetStore, InMemoryBudgets, Line, Refused};
use tokio::sync::oneshot;

use self::lease::Leases;
use crate::client::RedisState;

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("reserve.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle.lua")));
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
/// trip). Where a limit is large enough to share (64 calls' amounts or more), the call also
/// asks for a lease per budget: up to 64 more calls' amounts (at most 1/32 of the limit and
/// half the room left), counted as spent in Redis, from which this replica reserves the
/// next calls and into which it settles them without a round trip. What a lease holds
/// unused goes back 200 ms after it was granted, so the replicas together never pass a
/// limit; near a limit, a call may be refused while another replica holds a lease it will
/// not use, for at most that long. One lease is asked for at a time per replica; calls
/// meanwhile reserve alone.
///
/// Settlements outside a lease go in the background, retried while Redis is away. Reads
/// that must not wait (status headers, alert thresholds) use the last use the server
/// answered, less what this replica's leases hold. An alert goes out once per window over
/// every replica: the first to mark it in Redis sends it.
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
    leases: Leases,
    /// A reservation is asking for leases.
    asking: AtomicBool,
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
        let budgets = Self {
            core: Arc::new(Core {
                state: state.clone(),
                names,
                local: InMemoryBudgets::new(),
                mirror: moka::sync::Cache::new(MIRRORED),
                leases: Leases::default(),
                asking: AtomicBool::new(false),
            }),
        };
        let holder: std::sync::Weak<Core> = Arc::downgrade(&budgets.core);
        state.hold_leases(holder);
        budgets
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

    /// Reserves `lines` on the server, asking for their leases when `leasing`.
    async fn reserve(self: &Arc<Self>, lines: &[Line], leasing: bool) -> Result<(), Refused> {
        let mut invocation = RESERVE.prepare_invoke();
        for line in lines {
            invocation.key(self.key(line.budget, line.window));
        }
        // A lease asked for replaces the line's lease in force, whose credit the script
        // takes back first so that the limit sees only what was spent.
        let mut surrendered = Vec::new();
        for line in lines {
            let (wanted, back) = if leasing {
                (lease::wanted(line), self.leases.surrender(line))
            } else {
                (0, 0)
            };
            surrendered.push(back);
            invocation
                .arg(&*line.value)
                .arg(line.amount)
                .arg(line.limit)
                .arg(wanted)
                .arg(back);
        }
        for line in lines {
            invocation.arg(ttl_ms(line.window));
        }
        match self.state.run::<Vec<u64>>(&invocation).await {
            Ok(reply) if reply.len() == 3 + 2 * lines.len() && reply[0] == 1 => {
                for (line, answer) in lines.iter().zip(reply[3..].chunks_exact(2)) {
                    let (used, leased) = (answer[0], answer[1]);
                    self.remember(line.budget, &line.value, line.window, used);
                    if leased > 0 {
                        self.grant(line, leased);
                    }
                }
                Ok(())
            }
            Ok(reply) if reply.len() == 3 && reply[0] == 0 => {
                let index = usize::try_from(reply[1]).unwrap_or(0).min(lines.len() - 1);
                let line = &lines[index];
                self.remember(line.budget, &line.value, line.window, reply[2]);
                Err(Refused::over(index, reply[2]))
            }
            Ok(_) => match self.state.without_redis() {
                Ok(()) => self.local.reserve(lines).await,
                Err(_) => Err(Refused::unavailable()),
            },
            Err(_) => {
                // The server took nothing back: the surrendered credit is this replica's
                // still.
                for (line, back) in lines.iter().zip(surrendered) {
                    if back > 0 && !self.leases.put(line, back) {
                        self.give_back(line, back);
                    }
                }
                match self.state.without_redis() {
                    Ok(()) => self.local.reserve(lines).await,
                    Err(_) => Err(Refused::unavailable()),
                }
            }
        }
    }

    /// Puts a lease of `credit` in force for `line`, ended after its lifetime.
    fn grant(self: &Arc<Self>, line: &Line, credit: u64) {
        let (id, replaced) = self.leases.grant(line, credit);
        if replaced > 0 {
            self.give_back(line, replaced);
        }
        let this = Arc::clone(self);
        let line = line.clone();
        tokio::spawn(async move {
            tokio::time::sleep(lease::LIFETIME).await;
            let left = this.leases.end(&line, id);
            if left > 0 {
                this.settle(
                    Line::new(line.budget, line.value, line.window, left, 0),
                    0,
                    line.window,
                )
                .await;
            }
        });
    }

    /// Gives `amount` reserved on the server for `line`'s budget, value and window back.
    fn give_back(self: &Arc<Self>, line: &Line, amount: u64) {
        let this = Arc::clone(self);
        let line = Line::new(line.budget, Arc::clone(&line.value), line.window, amount, 0);
        tokio::spawn(async move {
            let window = line.window;
            this.settle(line, 0, window).await;
        });
    }

    /// The use as far as this process knows: the server's last answer, less what this
    /// replica's leases hold (the server counts them as spent; they are not, yet). The
    /// value is taken shared, so that a settlement's read allocates nothing.
    fn used(&self, budget: usize, value: &Arc<str>, window: u64) -> u64 {
        match self.mirror.get(&(budget, Arc::clone(value), window)) {
            Some(used) => used.saturating_sub(self.leases.credit(budget, value, window)),
            None => self.local.used(budget, value, window),
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

impl crate::client::LeaseHolder for Core {
    fn give_back_all(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for ((budget, value, window), held) in self.leases.end_all() {
                self.settle(Line::new(budget, value, window, held, 0), 0, window)
                    .await;
            }
        })
    }
}

impl BudgetStore for RedisBudgets {
    type Reserve = Reserving;

    fn reserve(&self, lines: &[Line]) -> Self::Reserve {
        match self.core.leases.take(lines) {
            Ok(true) => return Reserving::ready(),
            Ok(false) => {}
            Err(orphans) => {
                for (line, amount) in orphans {
                    self.core.give_back(&line, amount);
                }
            }
        }
        let core = Arc::clone(&self.core);
        let lines = lines.to_vec();
        let leasing = lines.iter().any(|line| lease::wanted(line) > 0)
            && !core.asking.swap(true, Ordering::AcqRel);
        let (answer, receive) = oneshot::channel();
        // On its own task, so that a caller dropped meanwhile does not leave the
        // reservation behind: the task gives it back.
        tokio::spawn(async move {
            let result = core.reserve(&lines, leasing).await;
            if leasing {
                core.asking.store(false, Ordering::Release);
            }
            if let Err(Ok(())) = answer.send(result) {
                for line in lines {
                    let window = line.window;
                    core.settle(line, 0, window).await;
                }
            }
        });
        Reserving {
            receive: Some(receive),
        }
    }

    fn settle(&self, line: &Line, used: u64, now_window: u64) -> Option<u64> {
        // This replica's own spending, for when Redis is away.
        self.core.local.settle(line, used, now_window);
        // Within the line's lease, when it has one: what was not used goes back into it, and
        // what was used beyond the reservation comes out of it.
        let within_lease = line.window == now_window
            && if used <= line.amount {
                self.core.leases.put(line, line.amount - used)
            } else {
                self.core.leases.cover(line, used - line.amount)
            };
        if within_lease {
            return Some(self.core.used(line.budget, &line.value, now_window));
        }
        let core = Arc::clone(&self.core);
        let owned = line.clone();
        tokio::spawn(async move { core.settle(owned, used, now_window).await });
        // The use after, as far as this process knows now.
        let known = self.core.used(line.budget, &line.value, now_window);
        Some(if line.window == now_window {
            known.saturating_sub(line.amount).saturating_add(used)
        } else {
            known.saturating_add(used)
        })
    }

    fn used(&self, budget: usize, value: &str, window: u64) -> u64 {
        self.core.used(budget, &Arc::from(value), window)
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

/// A reservation taken from this replica's leases, or on its way from Redis.
#[derive(Debug)]
pub struct Reserving {
    /// `None`: taken from the leases.
    receive: Option<oneshot::Receiver<Result<(), Refused>>>,
}

impl Reserving {
    fn ready() -> Self {
        Self { receive: None }
    }
}

impl Future for Reserving {
    type Output = Result<(), Refused>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.receive {
            None => Poll::Ready(Ok(())),
            Some(receive) => Pin::new(receive)
                .poll(cx)
                .map(|answer| answer.unwrap_or(Err(Refused::unavailable()))),
        }
    }
}
