//! The metric families, and how one finished call is counted in them.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use seawall_core::{AttemptOutcome, BreakerState, Prices, RecoveryOutcome, TargetId, Trail};

use crate::breaker::{BreakerEvent, BreakerHandle};
use crate::rate_limit::RateLimiter;

/// Upper bounds of the latency buckets, in seconds: from a cache hit to a long generation.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A label value: a shared string (a target's id is one already), cloned by reference
/// count when a family looks it up.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Label(TargetId);

impl Label {
    fn new(value: &str) -> Self {
        Self(TargetId::from(value))
    }
}

// Hashes as its text does (an `Arc<str>` hashes as its `str`), so the interned model names
// are found by `&str`.
impl std::borrow::Borrow<str> for Label {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    model: Label,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetModel {
    target: Label,
    model: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    target: Label,
    model: Label,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HopLabels {
    from: Label,
    to: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    target: Label,
    model: Label,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    key: Label,
    model: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecoveryLabels {
    target: Label,
    path: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    target: Label,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HedgeLabels {
    target: Label,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: Label,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// How many distinct model names become label values by default; see
/// [`CallMetrics::max_models`].
const MAX_MODELS: usize = 500;

/// How a call ended, for [`CallRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallOutcome {
    /// The call was answered (a stream: it reached its end).
    Answered,
    /// The call failed; the cause's name (`rate_limited`, `deadline_exceeded`, ...).
    Failed(&'static str),
    /// The caller dropped the call (or its stream) before the end.
    Abandoned,
}

impl CallOutcome {
    /// The `outcome` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Failed(cause) => cause,
            Self::Abandoned => "abandoned",
        }
    }
}

/// One finished call, as [`CallMetrics::record`] counts it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CallRecord<'a> {
    /// The model the caller asked for (a group name at the gateway).
    pub model: &'a str,
    /// The caller's key (its name, never its secret), for the cost by key.
    pub key: Option<&'a str>,
    /// The call's trail: attempts, skips, charges, recoveries, cache status.
    pub trail: &'a Trail,
    /// How it ended.
    pub outcome: CallOutcome,
    /// From the call to its answer (a stream: to its last event).
    pub duration: Duration,
    /// For a stream: from the call to its first content.
    pub time_to_first_token: Option<Duration>,
}

impl<'a> CallRecord<'a> {
    /// A call to `model` that ended with `outcome` after `duration`, as `trail` tells it.
    pub fn new(model: &'a str, trail: &'a Trail, outcome: CallOutcome, duration: Duration) -> Self {
        Self {
            model,
            key: None,
            trail,
            outcome,
            duration,
            time_to_first_token: None,
        }
    }

    /// The caller's key name.
    #[must_use]
    pub fn key(mut self, key: Option<&'a str>) -> Self {
        self.key = key;
        self
    }

    /// The stream's time to first content.
    #[must_use]
    pub fn time_to_first_token(mut self, ttft: Option<Duration>) -> Self {
        self.time_to_first_token = ttft;
        self
    }
}

/// Per-target and per-model metrics of calls, in a [`prometheus_client`] registry.
///
/// Register it once with [`register`](Self::register) (under the prefix of your choice),
/// then count each call with [`MetricsLayer`](super::MetricsLayer) around your stack, or
/// by hand with [`record`](Self::record) where you already hold the call's trail. Breaker
/// transitions arrive through [`breaker_events`](Self::breaker_events); breaker states
/// and limiter queues are read at scrape time from the handles given to
/// [`watch_breaker`](Self::watch_breaker) and [`watch_limiter`](Self::watch_limiter).
///
/// The families (names as registered, before your prefix):
///
/// | family | labels | what |
/// |---|---|---|
/// | `calls_total` | model, outcome | calls by requested model and how they ended |
/// | `call_duration_seconds` | model | end to end; p95 per model from its buckets |
/// | `call_time_to_first_token_seconds` | model | streams: to the first content |
/// | `attempts_total` | target, model, outcome | `succeeded`, a cause (`rate_limited` is an upstream 429), `skipped`, or `cancelled` (lost to a hedge) |
/// | `hedges_total` | target, result | hedged attempts: `won`, `lost`, `failed` |
/// | `attempt_duration_seconds` | target, model | one attempt, send to answer or failure |
/// | `attempt_time_to_first_token_seconds` | target, model | streams |
/// | `failovers_total` | from, to | a call moving from one target to another |
/// | `limiter_wait_seconds` | model | time calls waited in rate limiters |
/// | `tokens_total` | target, model, kind | `input` / `output` tokens charged |
/// | `cost_usd_total` | key, model | priced charges (needs [`prices`](Self::prices)) |
/// | `cache_total` | result | `hit`, `miss`, `stale`, `replayed` (idempotency) |
/// | `stream_recoveries_total` | target, path, outcome | mid-stream recoveries |
/// | `breaker_transitions_total` | target, to | health breaker state changes |
/// | `capacity_cooldowns_total` | target | 429s or exhausted quotas that parked a target |
/// | `breaker_state` | target | 0 closed, 1 half-open, 2 open (scrape time) |
/// | `limiter_queue_length` | target | calls waiting in the target's limiter (scrape time) |
///
/// Label values are escaped by the encoder. Model names come from the calls, so they are
/// bounded ([`max_models`](Self::max_models)); target and key names come from your
/// configuration.
pub struct CallMetrics {
    calls: Family<CallLabels, Counter>,
    call_duration: Histograms<ModelLabels>,
    call_ttft: Histograms<ModelLabels>,
    attempts: Family<AttemptLabels, Counter>,
    attempt_duration: Histograms<TargetModel>,
    attempt_ttft: Histograms<TargetModel>,
    failovers: Family<HopLabels, Counter>,
    limiter_wait: Histograms<ModelLabels>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    cache: Family<ResultLabels, Counter>,
    recoveries: Family<RecoveryLabels, Counter>,
    transitions: Family<TransitionLabels, Counter>,
    cooldowns: Family<TargetLabels, Counter>,
    hedges: Family<HedgeLabels, Counter>,
    watched: Arc<Watched>,
    prices: Option<Prices>,
    /// The model names seen so far, interned: a known name costs a lookup, not an
    /// allocation, and past `max_models` names the rest are counted as `other`.
    models: papaya::HashSet<Label, foldhash::fast::RandomState>,
    /// The key names seen so far, interned the same way (and bounded alike).
    keys: papaya::HashSet<Label, foldhash::fast::RandomState>,
    max_models: usize,
    other: Label,
    /// The empty label value (a charge with no target).
    none: Label,
}

/// The handles read at scrape time.
#[derive(Default)]
struct Watched {
    breakers: Mutex<Vec<BreakerHandle>>,
    limiters: Mutex<Vec<RateLimiter>>,
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched").finish_non_exhaustive()
    }
}

impl Collector for Watched {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let breakers = self
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if !breakers.is_empty() {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "breaker_state",
                "Health breaker state per target: 0 closed, 1 half-open, 2 open.",
                None,
                gauge.metric_type(),
            )?;
            for breaker in &breakers {
                let state = match breaker.state() {
                    BreakerState::Closed => 0,
                    BreakerState::HalfOpen => 1,
                    _ => 2,
                };
                let labels = TargetLabels {
                    target: Label::new(breaker.target().as_str()),
                };
                ConstGauge::new(state).encode(family.encode_family(&labels)?)?;
            }
        }
        let limiters = self
            .limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if !limiters.is_empty() {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "limiter_queue_length",
                "Calls waiting in a target's rate limiter.",
                None,
                gauge.metric_type(),
            )?;
            for limiter in &limiters {
                let labels = TargetLabels {
                    target: Label::new(limiter.target().as_str()),
                };
                let queue = i64::try_from(limiter.snapshot().queue_len).unwrap_or(i64::MAX);
                ConstGauge::new(queue).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CallMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallMetrics").finish_non_exhaustive()
    }
}

impl CallMetrics {
    /// Empty families, not yet registered.
    pub fn new() -> Self {
        Self {
            calls: Family::default(),
            call_duration: Family::new_with_constructor(latency_histogram),
            call_ttft: Family::new_with_constructor(latency_histogram),
            attempts: Family::default(),
            attempt_duration: Family::new_with_constructor(latency_histogram),
            attempt_ttft: Family::new_with_constructor(latency_histogram),
            failovers: Family::default(),
            limiter_wait: Family::new_with_constructor(latency_histogram),
            tokens: Family::default(),
            cost: Family::default(),
            cache: Family::default(),
            recoveries: Family::default(),
            transitions: Family::default(),
            cooldowns: Family::default(),
            hedges: Family::default(),
            watched: Arc::default(),
            prices: None,
            models: papaya::HashSet::default(),
            keys: papaya::HashSet::default(),
            max_models: MAX_MODELS,
            other: Label::new("other"),
            none: Label::new(""),
        }
    }

    /// Names at most `models` distinct models in labels (500 by default), and as many key
    /// names; calls to further ones are counted under `other`. A bound on the series a caller who
    /// chooses the model name (a pattern group passes it through) can create.
    #[must_use]
    pub fn max_models(mut self, models: usize) -> Self {
        self.max_models = models;
        self
    }

    /// `name` as a model label value: interned, or `other` once the bound is reached.
    fn model(&self, name: &str) -> Label {
        self.intern(&self.models, name)
    }

    /// `name` from `set`, added when there is room (`other` once the bound is reached): a
    /// name seen before costs a lookup, not an allocation.
    fn intern(
        &self,
        set: &papaya::HashSet<Label, foldhash::fast::RandomState>,
        name: &str,
    ) -> Label {
        let names = set.pin();
        if let Some(label) = names.get(name) {
            return label.clone();
        }
        if names.len() >= self.max_models {
            return self.other.clone();
        }
        let label = Label::new(name);
        names.insert(label.clone());
        label
    }

    /// Prices each charge of a call for `cost_usd_total` (unpriced models are left out).
    #[must_use]
    pub fn prices(mut self, prices: Prices) -> Self {
        self.prices = Some(prices);
        self
    }

    /// Registers every family in `registry` (add your prefix with
    /// [`Registry::with_prefix`] or [`Registry::sub_registry_with_prefix`]).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "calls",
            "Calls by requested model and how they ended",
            self.calls.clone(),
        );
        registry.register_with_unit(
            "call_duration",
            "Call latency, from the call to its answer (streams: to the last event)",
            Unit::Seconds,
            self.call_duration.clone(),
        );
        registry.register_with_unit(
            "call_time_to_first_token",
            "Streamed calls: from the call to the first content",
            Unit::Seconds,
            self.call_ttft.clone(),
        );
        registry.register(
            "attempts",
            "Attempts per target and model, by outcome (succeeded, a failure cause, skipped, cancelled); rate_limited counts upstream 429s",
            self.attempts.clone(),
        );
        registry.register_with_unit(
            "attempt_duration",
            "One attempt on a target, from send to answer or failure",
            Unit::Seconds,
            self.attempt_duration.clone(),
        );
        registry.register_with_unit(
            "attempt_time_to_first_token",
            "Streamed attempts: from send to the first content",
            Unit::Seconds,
            self.attempt_ttft.clone(),
        );
        registry.register(
            "failovers",
            "Calls that moved from one target to another",
            self.failovers.clone(),
        );
        registry.register_with_unit(
            "limiter_wait",
            "Time calls waited in target rate limiters",
            Unit::Seconds,
            self.limiter_wait.clone(),
        );
        registry.register(
            "tokens",
            "Tokens charged per target and model, by kind (input, output)",
            self.tokens.clone(),
        );
        registry.register(
            "cost_usd",
            "Cost of the calls' attempts at their models' prices, by key and model (unpriced models excluded)",
            self.cost.clone(),
        );
        registry.register(
            "cache",
            "Calls the response cache answered (hit, stale) or passed on (miss), and idempotent replays",
            self.cache.clone(),
        );
        registry.register(
            "stream_recoveries",
            "Streams broken mid-way and how their recovery went",
            self.recoveries.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Health breaker state changes, by the state entered",
            self.transitions.clone(),
        );
        registry.register(
            "capacity_cooldowns",
            "429s or exhausted quotas that parked a target",
            self.cooldowns.clone(),
        );
        registry.register(
            "hedges",
            "Hedged attempts per target: won (answered first), lost (cancelled), failed",
            self.hedges.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&self.watched)));
    }

    /// Reads `breaker`'s state at every scrape (`breaker_state`).
    pub fn watch_breaker(&self, breaker: BreakerHandle) {
        self.watched
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(breaker);
    }

    /// Reads `limiter`'s queue at every scrape (`limiter_queue_length`).
    pub fn watch_limiter(&self, limiter: RateLimiter) {
        self.watched
            .limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(limiter);
    }

    /// Counts a breaker's event: give the returned closure to
    /// [`BreakerBuilder::on_event`](crate::breaker::BreakerBuilder::on_event).
    pub fn breaker_events(self: &Arc<Self>) -> impl Fn(&BreakerEvent) + Send + Sync + 'static {
        let metrics = Arc::clone(self);
        move |event| metrics.breaker_event(event)
    }

    /// Counts one breaker event.
    pub fn breaker_event(&self, event: &BreakerEvent) {
        match event {
            BreakerEvent::Transition { target, to, .. } => {
                self.transitions
                    .get_or_create(&TransitionLabels {
                        target: Label::new(target.as_str()),
                        to: to.as_str(),
                    })
                    .inc();
            }
            BreakerEvent::CooldownStarted { target, .. } => {
                self.cooldowns
                    .get_or_create(&TargetLabels {
                        target: Label::new(target.as_str()),
                    })
                    .inc();
            }
        }
    }

    /// Counts one finished call.
    pub fn record(&self, call: &CallRecord<'_>) {
        let trail = call.trail;
        let model = self.model(call.model);
        self.calls
            .get_or_create(&CallLabels {
                model: model.clone(),
                outcome: call.outcome.as_str(),
            })
            .inc();
        let by_model = ModelLabels { model };
        self.call_duration
            .get_or_create(&by_model)
            .observe(call.duration.as_secs_f64());
        if let Some(ttft) = call.time_to_first_token {
            self.call_ttft
                .get_or_create(&by_model)
                .observe(ttft.as_secs_f64());
        }
        if !trail.limiter_wait.is_zero() {
            self.limiter_wait
                .get_or_create(&by_model)
                .observe(trail.limiter_wait.as_secs_f64());
        }
        self.attempts_of(trail);
        self.charges_of(trail, call.key);
        if let Some(cache) = trail.cache {
            self.cache
                .get_or_create(&ResultLabels {
                    result: cache.as_str(),
                })
                .inc();
        }
        for recovery in &trail.recoveries {
            let (path, outcome) = match &recovery.outcome {
                RecoveryOutcome::Recovered { path, .. } => (path.as_str(), "recovered"),
                RecoveryOutcome::Failed { .. } => ("none", "failed"),
                _ => ("none", "pending"),
            };
            self.recoveries
                .get_or_create(&RecoveryLabels {
                    target: Label(recovery.broken_target.clone()),
                    path,
                    outcome,
                })
                .inc();
        }
    }

    fn attempts_of(&self, trail: &Trail) {
        // The target of the last attempt sent, for the failovers.
        let mut previous: Option<&seawall_core::TargetId> = None;
        for attempt in &trail.attempts {
            let target = Label(attempt.target.clone());
            let model = self.model(&attempt.model);
            let outcome = match &attempt.outcome {
                AttemptOutcome::Succeeded => "succeeded",
                AttemptOutcome::Failed { cause, .. } => cause.as_str(),
                AttemptOutcome::Skipped { .. } => "skipped",
                AttemptOutcome::Cancelled => "cancelled",
                _ => "other",
            };
            if attempt.hedge {
                self.hedges
                    .get_or_create(&HedgeLabels {
                        target: target.clone(),
                        result: match attempt.outcome {
                            AttemptOutcome::Succeeded => "won",
                            AttemptOutcome::Cancelled => "lost",
                            _ => "failed",
                        },
                    })
                    .inc();
            }
            self.attempts
                .get_or_create(&AttemptLabels {
                    target: target.clone(),
                    model: model.clone(),
                    outcome,
                })
                .inc();
            if matches!(attempt.outcome, AttemptOutcome::Skipped { .. }) {
                continue;
            }
            if let Some(from) = previous
                && *from != attempt.target
            {
                self.failovers
                    .get_or_create(&HopLabels {
                        from: Label(from.clone()),
                        to: target.clone(),
                    })
                    .inc();
            }
            previous = Some(&attempt.target);
            let by_target = TargetModel { target, model };
            self.attempt_duration
                .get_or_create(&by_target)
                .observe(attempt.latency.as_secs_f64());
            if let Some(ttft) = attempt.time_to_first_token {
                self.attempt_ttft
                    .get_or_create(&by_target)
                    .observe(ttft.as_secs_f64());
            }
        }
    }

    fn charges_of(&self, trail: &Trail, key: Option<&str>) {
        let key = self.intern(&self.keys, key.unwrap_or(""));
        for charge in &trail.charges {
            let target = charge
                .target
                .clone()
                .map_or_else(|| self.none.clone(), Label);
            let model = self.model(&charge.model);
            for (kind, tokens) in [
                ("input", charge.usage.input_tokens),
                ("output", charge.usage.output_tokens),
            ] {
                if tokens > 0 {
                    self.tokens
                        .get_or_create(&TokenLabels {
                            target: target.clone(),
                            model: model.clone(),
                            kind,
                        })
                        .inc_by(tokens);
                }
            }
            if let Some(cost) = self
                .prices
                .as_ref()
                .and_then(|prices| prices.cost(&charge.model, &charge.usage))
            {
                self.cost
                    .get_or_create(&CostLabels {
                        key: key.clone(),
                        model,
                    })
                    .inc_by(cost.usd());
            }
        }
    }
}
