//! A rate limiter's counters in Redis: one script call per admission, and the last state the
//! server answered kept in process for the reads that must not wait.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::Script;
use seawall::rate_limit::{
    Capacity, InMemoryState, LimiterState, ProviderRefill, RateLimitConfig, Refused, Reserve,
    Weight,
};
use seawall_core::{QuotaSnapshot, QuotaWindow};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::client::RedisState;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("limiter.lua")));

/// Units that never fit (the script's infinity).
const INF: i64 = 1 << 52;
/// The script's margin after a reported reset, in microseconds.
const ROUNDING: i64 = 1_000;

/// One dimension as the server last stored it (microseconds on the server's clock).
#[derive(Debug, Clone, Copy, Default)]
struct Dim {
    tat: i64,
    left: i64,
    limit: i64,
    reset: i64,
    from: i64,
    flight: i64,
}

/// The server's last answer, and when it came on this process's clock.
#[derive(Debug, Clone, Copy)]
struct Mirror {
    received: Instant,
    server_now: i64,
    dims: [Dim; 4],
}

/// A limiter's state shared by every replica through Redis.
///
/// Every reservation is one script call (one round trip, pipelined with the other calls in
/// flight on the connection) that checks and takes the weight in every dimension at once,
/// on the server's clock. Settlements and provider reports are sent in the background. The
/// provider's report is written to the shared state, so every replica converges on the
/// account's real quota, and units in flight are summed over the replicas.
///
/// Waits predicted without a round trip (`wait_for`, `capacity`: failover skips, queue
/// checks, status) come from the server's last answer, aged on this process's clock.
/// Waiters queue FIFO within a process; across processes, the head of each process's
/// queue retries when its predicted wait ends, so a replica is not starved but the order
/// between replicas is first come at the server.
///
/// When Redis cannot answer within the timeout, [`FailMode`](crate::FailMode) decides:
/// admit on an in-process state with the same limits (which provider reports keep
/// current), or refuse.
#[derive(Debug, Clone)]
pub struct RedisLimiterState {
    core: Arc<Core>,
}

#[derive(Debug)]
struct Core {
    state: RedisState,
    key: String,
    /// The script's arguments that every call repeats: refill, period, limits.
    head: Arc<[i64; 10]>,
    mirror: ArcSwap<Mirror>,
    local: Arc<InMemoryState>,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(INF)
}

/// A value the provider did not report: sent as `u64::MAX`, which the script reads as -1
/// after the conversion below.
const NONE: u64 = u64::MAX;

/// A script argument: units, or -1 for [`NONE`].
fn arg(units: u64) -> i64 {
    if units == NONE {
        -1
    } else {
        i64::try_from(units).unwrap_or(INF)
    }
}

fn units(weight: &Weight) -> [u64; 4] {
    [
        weight.requests,
        weight.tokens,
        weight.input_tokens,
        weight.output_tokens,
    ]
}

impl RedisLimiterState {
    /// The state of `target`'s limiter with `config`'s limits and refill, in `state`.
    pub fn new(state: &RedisState, target: &str, config: &RateLimitConfig) -> Self {
        let rates = config.limits.rates();
        let period = config.limits.longest_period();
        let mut head = [0; 10];
        head[0] = i64::from(config.provider_refill == ProviderRefill::Continuous);
        head[1] = micros(period).max(1);
        for (i, rate) in rates.iter().enumerate() {
            if let Some(rate) = rate {
                head[2 + 2 * i] = i64::try_from(rate.limit).unwrap_or(INF);
                head[3 + 2 * i] = micros(rate.per);
            }
        }
        let local = InMemoryState::new(&config.limits).with_provider_refill(config.provider_refill);
        let core = Core {
            state: state.clone(),
            key: state.key("limiter", target),
            head: Arc::new(head),
            mirror: ArcSwap::from_pointee(Mirror {
                received: Instant::now(),
                server_now: 0,
                dims: [Dim::default(); 4],
            }),
            local: Arc::new(local),
        };
        Self {
            core: Arc::new(core),
        }
    }
}

impl Core {
    fn continuous(&self) -> bool {
        self.head[0] == 1
    }

    fn period(&self) -> i64 {
        self.head[1]
    }

    /// Stores a reply `[admitted, wait, now, dims...]` as the mirror; returns admitted and
    /// wait.
    fn remember(&self, reply: &[i64]) -> Option<(bool, i64)> {
        if reply.len() != 27 {
            return None;
        }
        let mut dims = [Dim::default(); 4];
        for (i, dim) in dims.iter_mut().enumerate() {
            let b = 3 + 6 * i;
            *dim = Dim {
                tat: reply[b],
                left: reply[b + 1],
                limit: reply[b + 2],
                reset: reply[b + 3],
                from: reply[b + 4],
                flight: reply[b + 5],
            };
        }
        self.mirror.store(Arc::new(Mirror {
            received: Instant::now(),
            server_now: reply[2],
            dims,
        }));
        Some((reply[0] == 1, reply[1]))
    }

    /// Sends one script call in the background, and keeps its answer.
    fn send(self: &Arc<Self>, op: &'static str, args: Vec<u64>) {
        let this = Arc::clone(self);
        let args: Vec<i64> = args.into_iter().map(arg).collect();
        tokio::spawn(async move {
            if let Ok(reply) = this.call(op, &args).await {
                this.remember(&reply);
            }
        });
    }

    async fn call(&self, op: &str, args: &[i64]) -> Result<Vec<i64>, crate::client::Unreachable> {
        let mut invocation = SCRIPT.prepare_invoke();
        invocation.key(&self.key).arg(op);
        for value in self.head.iter().chain(args) {
            invocation.arg(*value);
        }
        self.state.run(&invocation).await
    }

    /// The wait before `need_ahead + weight` fits each dimension, on the mirror.
    fn predicted_wait(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration {
        let mirror = self.mirror.load();
        if mirror.server_now == 0 {
            return Duration::ZERO;
        }
        let at = mirror.server_now + micros(now.saturating_duration_since(mirror.received));
        let mut wait = 0;
        for (i, (ahead, units)) in units(ahead).into_iter().zip(units(weight)).enumerate() {
            if units == 0 {
                continue;
            }
            let units = i64::try_from(units).unwrap_or(INF);
            let ahead = i64::try_from(ahead).unwrap_or(INF);
            let (rate, per) = (self.head[2 + 2 * i], self.head[3 + 2 * i]);
            let dim = self.rolled(mirror.dims[i], at);
            if per > 0 {
                let cost = |units: i64| -> i64 {
                    if rate == 0 {
                        INF
                    } else {
                        (i128::from(units) * i128::from(per) + i128::from(rate) - 1)
                            .div_euclid(i128::from(rate))
                            .try_into()
                            .unwrap_or(INF)
                    }
                };
                let earliest = dim.tat.max(at) + cost(ahead) + cost(units) - per;
                wait = wait.max(earliest - at);
            }
            let need = dim.flight + ahead + units;
            if need > self.available(&dim, at) {
                wait = wait.max(self.provider_wait(&dim, need, at));
            }
        }
        Duration::from_micros(u64::try_from(wait).unwrap_or(0))
    }

    fn rolled(&self, mut dim: Dim, at: i64) -> Dim {
        if dim.reset > 0 && at >= dim.reset {
            if dim.limit >= 0 {
                let period = self.period();
                dim.left = dim.limit;
                dim.from = dim.reset;
                dim.reset += period * ((at - dim.reset) / period + 1);
            } else {
                dim.reset = 0;
            }
        }
        dim
    }

    fn available(&self, dim: &Dim, at: i64) -> i64 {
        if dim.reset == 0 {
            return INF;
        }
        if self.continuous() && dim.limit > dim.left && dim.reset > dim.from {
            let grown = i128::from(dim.limit - dim.left) * i128::from(at - dim.from)
                / i128::from(dim.reset - dim.from);
            return dim
                .limit
                .min(dim.left + i64::try_from(grown).unwrap_or(INF));
        }
        dim.left
    }

    fn provider_wait(&self, dim: &Dim, need: i64, at: i64) -> i64 {
        if self.continuous() && dim.limit > dim.left && need <= dim.limit && dim.reset > dim.from {
            let span = i128::from(dim.reset - dim.from);
            let grow = i128::from(need - dim.left) * span;
            let when = dim.from
                + i64::try_from(grow.div_euclid(i128::from(dim.limit - dim.left)) + 1)
                    .unwrap_or(INF);
            return (when - at).max(1);
        }
        (dim.reset - at + ROUNDING).max(1)
    }
}

impl Core {
    /// Reserves on the server; without it, as the fail mode says.
    async fn reserve(self: Arc<Self>, weight: Weight) -> Result<(), Refused> {
        let args = units(&weight).map(arg);
        if let Ok(reply) = self.call("reserve", &args).await
            && let Some((admitted, wait)) = self.remember(&reply)
        {
            return if admitted {
                Ok(())
            } else {
                let wait = u64::try_from(wait).unwrap_or(1).max(1);
                Err(Refused::Wait(Duration::from_micros(wait)))
            };
        }
        match self.state.without_redis() {
            Ok(()) => self
                .local
                .reserve_now(Instant::now(), &weight)
                .map_err(Refused::Wait),
            Err(_) => Err(Refused::Unavailable),
        }
    }
}

impl LimiterState for RedisLimiterState {
    fn try_reserve(&self, _now: Instant, weight: &Weight) -> Reserve {
        let core = Arc::clone(&self.core);
        let weight = *weight;
        let (answer, receive) = oneshot::channel();
        // The round trip runs on its own task, so that a caller dropped meanwhile does not
        // leave the server's reservation behind: the task gives it back.
        tokio::spawn(async move {
            let result = Arc::clone(&core).reserve(weight).await;
            if let Err(Ok(())) = answer.send(result) {
                core.send("settle", [[0; 4], units(&weight), units(&weight)].concat());
            }
        });
        Reserve::Pending(Box::pin(async move {
            receive.await.unwrap_or(Err(Refused::Unavailable))
        }))
    }

    fn wait_for(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration {
        self.core.predicted_wait(now, ahead, weight)
    }

    fn reconcile(&self, _now: Instant, debit: &Weight, refund: &Weight) {
        let args = [units(debit), units(refund), [0; 4]].concat();
        self.core.send("settle", args);
    }

    fn sync(&self, now: Instant, quota: &QuotaSnapshot, counted: &Weight) {
        // Reports are facts: the in-process state keeps them too, for when Redis is away.
        self.core.local.sync(now, quota, counted);
        let mut args: Vec<u64> = units(counted).to_vec();
        let reported = [
            quota.requests,
            quota.tokens,
            quota.input_tokens,
            quota.output_tokens,
        ];
        for window in reported {
            let QuotaWindow {
                limit,
                remaining,
                reset_after,
                ..
            } = window.unwrap_or_default();
            let limit = limit.unwrap_or(NONE);
            match remaining {
                Some(remaining) => args.extend([
                    1,
                    remaining,
                    limit,
                    reset_after.map_or(NONE, |after| {
                        u64::try_from(after.as_micros()).unwrap_or(NONE - 1)
                    }),
                ]),
                None => args.extend([0, 0, limit, NONE]),
            }
        }
        self.core.send("sync", args);
    }

    fn release(&self, weight: &Weight) {
        let args = [[0; 4], [0; 4], units(weight)].concat();
        self.core.send("settle", args);
    }

    fn capacity(&self, now: Instant) -> Capacity {
        self.core.capacity(now)
    }
}

impl Core {
    fn capacity(&self, now: Instant) -> Capacity {
        let mirror = self.mirror.load();
        let at = mirror.server_now + micros(now.saturating_duration_since(mirror.received));
        let mut left = [None; 4];
        let mut refill = 0i64;
        for (i, slot) in left.iter_mut().enumerate() {
            let (rate, per) = (self.head[2 + 2 * i], self.head[3 + 2 * i]);
            let dim = self.rolled(mirror.dims[i], at);
            let configured = (per > 0).then(|| {
                let busy = (dim.tat.max(at) - at).min(per);
                refill = refill.max(dim.tat - at);
                (i128::from(per - busy) * i128::from(rate) / i128::from(per)) as i64
            });
            let provider = (dim.reset > 0).then(|| {
                refill = refill.max(dim.reset - at);
                (self.available(&dim, at) - dim.flight).max(0)
            });
            *slot = match (configured, provider) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|units| u64::try_from(units).unwrap_or(0));
        }
        let mut capacity = self.local.capacity(now);
        [
            capacity.requests,
            capacity.tokens,
            capacity.input_tokens,
            capacity.output_tokens,
        ] = left;
        capacity.time_to_refill = Duration::from_micros(u64::try_from(refill).unwrap_or(0));
        capacity
    }
}
