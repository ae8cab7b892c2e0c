use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::{BreakerState, Classifier, TargetId};

use super::layer::BreakerLayer;

/// Something that happened to a breaker, for the [event callback](BreakerBuilder::on_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// The health breaker changed state.
    Transition {
        /// The target.
        target: TargetId,
        /// The state before.
        from: BreakerState,
        /// The state after.
        to: BreakerState,
        /// For a transition to `Open`: how long the break lasts (`None` when forced open
        /// until reset).
        open_for: Option<Duration>,
    },
    /// A 429 or an exhausted quota parked the target (or parked it longer).
    CooldownStarted {
        /// The target.
        target: TargetId,
        /// How long from now the target is parked.
        wait: Duration,
    },
}

pub(crate) type EventCallback = Arc<dyn Fn(&BreakerEvent) + Send + Sync>;

/// Trip on the ratio of failures among the calls of a sliding time window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FailureRatio {
    pub(crate) ratio: f64,
    pub(crate) window: Duration,
    pub(crate) min_calls: u32,
}

/// The numbers of a breaker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BreakerSettings {
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_ratio: Option<FailureRatio>,
    pub(crate) slow_call: Option<Duration>,
    pub(crate) slow_first_token: Option<Duration>,
    pub(crate) half_open_probes: u32,
    pub(crate) break_base: Duration,
    pub(crate) break_max: Duration,
    pub(crate) break_growth: f64,
    pub(crate) default_cooldown: Duration,
    pub(crate) capacity_cooldown: bool,
}

impl BreakerSettings {
    /// Whether a call's start time is needed (to spot slow calls or slow first tokens).
    pub(crate) fn times_calls(&self) -> bool {
        self.slow_call.is_some() || self.slow_first_token.is_some()
    }

    /// The break after `breaks` earlier opens without a close in between.
    pub(crate) fn break_duration(&self, breaks: u32) -> Duration {
        let exponent = i32::try_from(breaks.min(64)).unwrap_or(64);
        let factor = self.break_growth.powi(exponent);
        Duration::try_from_secs_f64(self.break_base.as_secs_f64() * factor)
            .unwrap_or(self.break_max)
            .min(self.break_max)
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: Some(FailureRatio {
                ratio: 0.5,
                window: Duration::from_secs(30),
                min_calls: 20,
            }),
            slow_call: None,
            slow_first_token: None,
            half_open_probes: 1,
            break_base: Duration::from_secs(5),
            break_max: Duration::from_secs(20),
            break_growth: 2.0,
            default_cooldown: Duration::ZERO,
            capacity_cooldown: true,
        }
    }
}

/// Configures a [`BreakerLayer`]; from [`BreakerLayer::builder`].
#[derive(Clone)]
pub struct BreakerBuilder {
    target: TargetId,
    settings: BreakerSettings,
    classifier: Option<Classifier>,
    on_event: Option<EventCallback>,
}

impl fmt::Debug for BreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("target", &self.target)
            .field("settings", &self.settings)
            .field("classifier", &self.classifier)
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

impl BreakerBuilder {
    pub(crate) fn new(target: TargetId) -> Self {
        Self {
            target,
            settings: BreakerSettings::default(),
            classifier: None,
            on_event: None,
        }
    }

    /// Trip after this many health failures in a row (default 5; 0 turns it off).
    #[must_use]
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.settings.consecutive_failures = failures;
        self
    }

    /// Trip when at least `ratio` (0 to 1) of the calls of the last `window` failed, once
    /// the window holds at least `min_calls` calls (default: 0.5 over 30 s, 20 calls).
    #[must_use]
    pub fn failure_ratio(mut self, ratio: f64, window: Duration, min_calls: u32) -> Self {
        self.settings.failure_ratio = Some(FailureRatio {
            ratio: if ratio.is_nan() {
                1.0
            } else {
                ratio.clamp(0.0, 1.0)
            },
            window: window.max(Duration::from_millis(10)),
            min_calls: min_calls.max(1),
        });
        self
    }

    /// Trip on consecutive failures only.
    #[must_use]
    pub fn no_failure_ratio(mut self) -> Self {
        self.settings.failure_ratio = None;
        self
    }

    /// A call whose response took longer than `threshold` counts as a health failure (off
    /// by default). For a stream this is the time to its head; see
    /// [`slow_first_token`](Self::slow_first_token).
    #[must_use]
    pub fn slow_call(mut self, threshold: Duration) -> Self {
        self.settings.slow_call = Some(threshold);
        self
    }

    /// A streamed call whose first content event came later than `threshold` after the
    /// call started counts as a health failure (off by default).
    #[must_use]
    pub fn slow_first_token(mut self, threshold: Duration) -> Self {
        self.settings.slow_first_token = Some(threshold);
        self
    }

    /// How many probes a half-open breaker admits at once; that many must succeed for it
    /// to close (default 1, at least 1).
    #[must_use]
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.settings.half_open_probes = probes.max(1);
        self
    }

    /// The first break lasts `base`; each reopening without a close in between multiplies
    /// it by the [growth](Self::break_growth) up to `max` (default 5 s growing to 20 s).
    #[must_use]
    pub fn break_duration(mut self, base: Duration, max: Duration) -> Self {
        self.settings.break_base = base;
        self.settings.break_max = max.max(base);
        self
    }

    /// The factor between successive breaks (default 2; 1 keeps them constant).
    #[must_use]
    pub fn break_growth(mut self, growth: f64) -> Self {
        self.settings.break_growth = if growth.is_finite() {
            growth.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// How long a 429 or exhausted quota without any server wait (no retry-after, no quota
    /// reset) parks the target. The default is zero, no parking: such a failure says
    /// nothing about how long the target is out, and a cooldown longer than the retry
    /// layer's backoff would reject its retry on this target.
    #[must_use]
    pub fn default_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.default_cooldown = cooldown;
        self
    }

    /// Whether a 429, an exhausted quota, or a response whose quota headers say nothing is
    /// left parks the target (default true). Turn it off when a
    /// [`RateLimiter`](crate::rate_limit::RateLimiter) in the same stack follows the
    /// provider's reports: it holds calls until the reset itself, and lets those that can
    /// wait that long queue for it instead of being refused at once. A 429 then counts as
    /// neither a success nor a failure.
    #[must_use]
    pub fn capacity_cooldown(mut self, enabled: bool) -> Self {
        self.settings.capacity_cooldown = enabled;
        self
    }

    /// Decides what counts with `classifier` instead of the stack's (the one in the
    /// request context, or the built-in table). A [`TargetStack`](crate::stack::TargetStack)
    /// or a failover router given a classifier hands it down on its own; set it here only
    /// on a breaker used without them.
    #[must_use]
    pub fn classifier(mut self, classifier: impl Into<Classifier>) -> Self {
        self.classifier = Some(classifier.into());
        self
    }

    /// Calls `callback` on every transition and capacity cooldown (after the state
    /// changed, outside any lock; a panic in it is contained and logged).
    #[must_use]
    pub fn on_event(mut self, callback: impl Fn(&BreakerEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(callback));
        self
    }

    /// The layer, with its shared state.
    pub fn build(self) -> BreakerLayer {
        BreakerLayer::from_parts(self.target, self.settings, self.classifier, self.on_event)
    }
}
