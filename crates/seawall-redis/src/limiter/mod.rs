//! A rate limiter's counters in Redis: a script call per admission, or per lease of many
//! admissions; the writes after calls gathered into one call; and the last state the server
//! answered kept in process for the reads that must not wait.

mod lease;
mod mirror;
mod pending;

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

use self::lease::Leases;
use self::mirror::{Dim, Mirror};
use self::pending::{Pending, Report};
use crate::client::RedisState;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("limiter.lua")));

/// Units that never fit (the script's infinity).
const INF: i64 = 1 << 52;
/// The script's margin after a reported reset, in microseconds.
const ROUNDING: i64 = 1_000;

/// A limiter's state shared by every replica through Redis.
///
/// A reservation is one script call (one round trip, pipelined with the other calls in
/// flight on the connection) that checks and takes the weight in every dimension at once,
/// on the server's clock. Where the configured limits are large enough to share (64 calls
/// or more per period), the call also asks for a lease: up to 64 more calls' units (at most
/// 1/32 of a configured limit and half the room left), which this replica then admits
/// without a round trip; what a lease holds unused goes back to the server 200 ms after it
/// was granted. The server counts leased units as taken, so the replicas together never
/// pass a limit; a replica may wait while another holds units it will not use, for at most
/// the lease's life.
///
/// Settlements, releases and provider reports are gathered for 2 ms and sent as one script
/// call. The provider's report is written to the shared state, so every replica converges
/// on the account's real quota, and units in flight are summed over the replicas.
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
    leases: Leases,
    pending: Pending,
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

/// The calls' units a `lease` reply granted beyond the call's own.
fn leased(reply: &[i64]) -> u64 {
    reply
        .get(27)
        .map_or(0, |&calls| u64::try_from(calls).unwrap_or(0))
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
            leases: Leases::default(),
            pending: Pending::default(),
        };
        let core = Arc::new(core);
        let holder: std::sync::Weak<Core> = Arc::downgrade(&core);
        state.hold_leases(holder);
        Self { core }
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
        if reply.len() < 27 {
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

    /// Sends one script call, and keeps its answer.
    async fn send(&self, op: &'static str, args: Vec<u64>) {
        let args: Vec<i64> = args.into_iter().map(arg).collect();
        if let Ok(reply) = self.call(op, &args).await {
            self.remember(&reply);
        }
    }

    async fn call(&self, op: &str, args: &[i64]) -> Result<Vec<i64>, crate::client::Unreachable> {
        let mut invocation = SCRIPT.prepare_invoke();
        invocation.key(&self.key).arg(op);
        for value in self.head.iter().chain(args) {
            invocation.arg(*value);
        }
        self.state.run(&invocation).await
    }
}

impl Core {
    /// Reserves on the server, asking for a lease of `lease_calls` more calls when not 0;
    /// without the server, as the fail mode says.
    async fn reserve(self: &Arc<Self>, weight: Weight, lease_calls: u64) -> Result<(), Refused> {
        let units = units(&weight);
        let (op, args) = if lease_calls == 0 {
            ("reserve", units.map(arg).to_vec())
        } else {
            let mut args = units.map(arg).to_vec();
            args.push(arg(lease_calls));
            ("lease", args)
        };
        if let Ok(reply) = self.call(op, &args).await
            && let Some((admitted, wait)) = self.remember(&reply)
        {
            return if admitted {
                let leased = leased(&reply);
                if leased > 0 {
                    self.grant_within_reports(units.map(|units| units.saturating_mul(leased)));
                }
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
        match self.core.leases.take(units(weight)) {
            Ok(true) => {
                if self.core.leases.running_low() {
                    self.core.renew(weight);
                }
                return Reserve::Ready(Ok(()));
            }
            Ok(false) => {}
            Err(orphans) => self.core.give_back_units(orphans),
        }
        let core = Arc::clone(&self.core);
        let weight = *weight;
        let lease_calls = match lease::calls_for(&core.head, units(&weight)) {
            0 => 0,
            calls if core.leases.start_asking() => calls,
            _ => 0,
        };
        let (answer, receive) = oneshot::channel();
        // The round trip runs on its own task, so that a caller dropped meanwhile does not
        // leave the server's reservation behind: the task gives it back.
        tokio::spawn(async move {
            let result = core.reserve(weight, lease_calls).await;
            if lease_calls > 0 {
                core.leases.done_asking();
            }
            if let Err(Ok(())) = answer.send(result) {
                core.give_back_units(units(&weight));
            }
        });
        Reserve::Pending(Box::pin(async move {
            receive.await.unwrap_or(Err(Refused::Unavailable))
        }))
    }

    fn wait_for(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration {
        let need = units(&ahead.plus(*weight));
        let credit = self.core.leases.credit();
        if need
            .iter()
            .zip(credit)
            .all(|(need, credit)| *need <= credit)
        {
            return Duration::ZERO;
        }
        self.core.predicted_wait(now, ahead, weight)
    }

    fn reconcile(&self, _now: Instant, debit: &Weight, refund: &Weight) {
        self.core.settle_later(units(debit), units(refund), [0; 4]);
    }

    fn sync(&self, now: Instant, quota: &QuotaSnapshot, counted: &Weight) {
        // Reports are facts: the in-process state keeps them too, for when Redis is away.
        self.core.local.sync(now, quota, counted);
        let mut report: Report = [0; 16];
        let reported = [
            quota.requests,
            quota.tokens,
            quota.input_tokens,
            quota.output_tokens,
        ];
        for (window, args) in reported.into_iter().zip(report.chunks_exact_mut(4)) {
            let QuotaWindow {
                limit,
                remaining,
                reset_after,
                ..
            } = window.unwrap_or_default();
            let limit = limit.unwrap_or(NONE);
            args.copy_from_slice(&match remaining {
                Some(remaining) => [
                    1,
                    remaining,
                    limit,
                    reset_after.map_or(NONE, |after| {
                        u64::try_from(after.as_micros()).unwrap_or(NONE - 1)
                    }),
                ],
                None => [0, 0, limit, NONE],
            });
        }
        // A report that ends a lease is news the other replicas need now, not in 2 ms.
        let urgent = self
            .core
            .end_lease_beyond(reported.map(|window| window.and_then(|w| w.remaining)));
        self.core.report_later(report, units(counted), urgent);
    }

    fn release(&self, weight: &Weight) {
        self.core.settle_later([0; 4], [0; 4], units(weight));
    }

    fn capacity(&self, now: Instant) -> Capacity {
        // What this replica's lease holds is its own to admit.
        let mut capacity = self.core.capacity(now);
        let credit = self.core.leases.credit();
        for (slot, credit) in [
            &mut capacity.requests,
            &mut capacity.tokens,
            &mut capacity.input_tokens,
            &mut capacity.output_tokens,
        ]
        .into_iter()
        .zip(credit)
        {
            if let Some(left) = slot {
                *left = left.saturating_add(credit);
            }
        }
        capacity
    }
}
