//! The status page: per target, what its breaker, cooldown and limiter are doing, its
//! latency and error rate, and the recent failovers; per key, its budgets. `/status` is a
//! self-contained HTML page (no external assets) that reads `/status.json` every two
//! seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use seawall_core::{AttemptOutcome, OpenReason, Trail};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The page: markup, style and script in one file.
pub(crate) const PAGE: &str = include_str!("status.html");

/// How many failovers the page lists.
const RECENT: usize = 20;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A fixed-bucket histogram of durations, for the page's quantiles.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
    }

    /// The `q` quantile (0 to 1) in seconds, as the upper bound of its bucket (the last
    /// bound for values past it); `None` before the first value.
    fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count.load(Relaxed);
        if count == 0 {
            return None;
        }
        let rank = (q * count as f64).ceil().max(1.0) as u64;
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            if cumulative >= rank {
                return Some(*bound);
            }
        }
        BUCKETS.last().copied()
    }
}

/// What the calls' trails told about each target.
#[derive(Debug, Default)]
pub(crate) struct TargetStats {
    latency: Histogram,
    attempts: AtomicU64,
    failures: AtomicU64,
}

/// One move from a target to the next within a call.
#[derive(Debug, Clone)]
struct Failover {
    at: u64,
    from: String,
    to: String,
    why: String,
}

/// The gateway's per-target figures and its recent failovers.
#[derive(Debug)]
pub(crate) struct Board {
    targets: Vec<Arc<TargetStats>>,
    index: HashMap<String, usize>,
    failovers: Mutex<VecDeque<Failover>>,
}

impl Board {
    /// A board for `targets`, in the gateway's order, that goes on with `previous`'s figures for the targets it
    /// names, and its recent failovers (a reload).
    pub(crate) fn carrying(targets: &[String], previous: Option<&Board>) -> Self {
        let carried = |name: &String| {
            previous
                .and_then(|p| p.index.get(name).map(|&i| Arc::clone(&p.targets[i])))
                .unwrap_or_default()
        };
        let failovers = previous.map_or_else(
            || VecDeque::with_capacity(RECENT),
            |p| {
                p.failovers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            },
        );
        Self {
            targets: targets.iter().map(carried).collect(),
            index: targets
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), i))
                .collect(),
            failovers: Mutex::new(failovers),
        }
    }

    /// Counts one call's attempts (latency, failures) and notes its failovers.
    pub(crate) fn record(&self, trail: &Trail) {
        let mut previous: Option<(&str, String)> = None;
        for attempt in &trail.attempts {
            let why = match &attempt.outcome {
                AttemptOutcome::Skipped { reason } => format!("skipped: {reason}"),
                AttemptOutcome::Failed { cause, .. } => cause.as_str().to_owned(),
                _ => String::new(),
            };
            if let Some(stats) = self
                .index
                .get(attempt.target.as_str())
                .map(|&i| &self.targets[i])
                && !matches!(attempt.outcome, AttemptOutcome::Skipped { .. })
            {
                stats.attempts.fetch_add(1, Relaxed);
                stats.latency.observe(attempt.latency);
                if matches!(attempt.outcome, AttemptOutcome::Failed { .. }) {
                    stats.failures.fetch_add(1, Relaxed);
                }
            }
            if let Some((from, reason)) = previous.take()
                && from != attempt.target.as_str()
            {
                self.note(Failover {
                    at: unix_now(),
                    from: from.to_owned(),
                    to: attempt.target.as_str().to_owned(),
                    why: reason,
                });
            }
            // An attempt that lost a hedge race was not failed over from.
            if attempt.outcome != AttemptOutcome::Cancelled {
                previous = Some((attempt.target.as_str(), why));
            }
        }
    }

    /// How many attempts the trails showed on target `i` (its retries not included).
    pub(crate) fn attempts(&self, i: usize) -> u64 {
        self.targets
            .get(i)
            .map_or(0, |stats| stats.attempts.load(Relaxed))
    }

    fn note(&self, failover: Failover) {
        let mut recent = self
            .failovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(failover);
    }

    /// The figures of target `i`.
    fn target_json(&self, i: usize) -> Value {
        let Some(stats) = self.targets.get(i) else {
            return Value::Null;
        };
        let attempts = stats.attempts.load(Relaxed);
        let failures = stats.failures.load(Relaxed);
        let millis = |q: f64| stats.latency.quantile(q).map(|s| s * 1e3);
        json!({
            "attempts": attempts,
            "failures": failures,
            "error_rate": (attempts > 0).then(|| failures as f64 / attempts as f64),
            "latency_ms": {"p50": millis(0.5), "p95": millis(0.95)},
        })
    }

    fn failovers_json(&self) -> Value {
        let recent = self
            .failovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .rev()
            .map(|f| json!({"at": f.at, "from": f.from, "to": f.to, "why": f.why}))
            .collect()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds, or `None` for a wait that lasts until an operator acts.
fn seconds(wait: Duration) -> Option<f64> {
    (wait != Duration::MAX).then_some(wait.as_secs_f64())
}

/// `/status.json`.
pub(crate) fn json(shared: &crate::server::Shared) -> Vec<u8> {
    let now = Instant::now();
    let targets: Vec<_> = shared
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (mut open_for, mut cooldown) = (None, None);
            let mut forced = false;
            if let Err(open) = t.breaker.check(now) {
                match open.reason {
                    OpenReason::OutOfCapacity => cooldown = seconds(open.retry_in),
                    _ => {
                        forced = open.retry_in == Duration::MAX;
                        open_for = seconds(open.retry_in);
                    }
                }
            }
            let limiter = t.limiter.as_ref().map(|l| {
                let s = l.snapshot();
                json!({
                    "requests_admitted": s.requests_admitted,
                    "requests_in_flight": s.requests_in_flight,
                    "tokens_reserved": s.tokens_reserved,
                    "tokens_used": s.tokens_used,
                    "tokens_in_flight": s.tokens_in_flight,
                    "queue_len": s.queue_len,
                    "requests_left": s.capacity.requests,
                    "tokens_left": s.capacity.tokens,
                    "refill_s": s.capacity.time_to_refill.as_secs_f64(),
                })
            });
            let mut target = json!({
                "name": t.name,
                "breaker": t.breaker.state().as_str(),
                "open_for_s": open_for,
                "forced_open": forced,
                "cooldown_s": cooldown,
                "limiter": limiter,
            });
            if let (Value::Object(target), Value::Object(stats)) =
                (&mut target, shared.board.target_json(i))
            {
                target.extend(stats);
            }
            target
        })
        .collect();
    let keys: Vec<_> = shared
        .keys
        .values()
        .map(|k| {
            let budgets: Vec<_> = shared
                .budgets
                .status("key", &k.name)
                .into_iter()
                .map(|status| {
                    json!({
                        "budget": status.budget,
                        "window": status.window.as_str(),
                        "used": amount_json(status.used),
                        "limit": amount_json(status.limit),
                        "remaining": amount_json(status.remaining),
                        "resets_at": status
                            .resets_at
                            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                            .map(|at| at.as_secs()),
                    })
                })
                .collect();
            json!({ "name": k.name, "budgets": budgets })
        })
        .collect();
    let body = json!({
        "ready": shared.ready.load(Relaxed),
        "targets": targets,
        "recent_failovers": shared.board.failovers_json(),
        "keys": keys,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `{"tokens": n}` or `{"usd": x}`.
fn amount_json(amount: seawall::budget::Amount) -> Value {
    match amount {
        seawall::budget::Amount::Usd(cost) => json!({ "usd": cost.usd() }),
        seawall::budget::Amount::Tokens(tokens) => json!({ "tokens": tokens }),
        _ => Value::Null,
    }
}
