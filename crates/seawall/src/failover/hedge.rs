//! Hedging: when to send a second attempt while the first is still running, and the
//! per-target first-token estimates that set the delay.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tower::retry::budget::{Budget, TpsBudget};

/// Hedged requests: after a delay with no content from an attempt, the router sends the
/// call to the next target of the plan as well, and the first attempt to produce content
/// (a response; for a stream, its first content event) wins while the others are dropped.
///
/// Off unless set with [`FailoverBuilder::hedge`](super::FailoverBuilder::hedge).
///
/// - **Delay**: fixed ([`Hedge::after`]), or a quantile of the target's observed time to
///   first content ([`Hedge::quantile`]; the last [`SAMPLES`](Hedge::SAMPLES) attempts per target), bounded
///   by [`floor`](Hedge::floor) and [`ceiling`](Hedge::ceiling); until a target has
///   [`min_samples`](Hedge::min_samples) samples, the fixed delay is used.
/// - **Budget**: each hedge withdraws from a retry budget, so hedges cannot storm: the
///   one given with [`budget`](Hedge::budget), else the retry budget of the slow
///   attempt's target (set by [`TargetStack`](crate::stack::TargetStack) or
///   [`Target::retry_budget`](super::Target::retry_budget)), else a [`TpsBudget`] of the
///   router's own, which every hedged call deposits into. An empty budget sends no hedge.
/// - **Gates**: the hedge goes to the next target of the plan that passes its gates, like
///   a failover (skips are recorded); it counts as a hop.
/// - **Streams** hedge only before their commit point (their first content event): once a
///   stream has been returned, nothing is hedged.
/// - At most [`max_extra`](Hedge::max_extra) hedges are in flight beside the first
///   attempt (default 1). A failed attempt does not end the call while another runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct Hedge {
    pub(crate) after: Duration,
    pub(crate) quantile: Option<f64>,
    pub(crate) floor: Duration,
    pub(crate) ceiling: Duration,
    pub(crate) min_samples: u32,
    pub(crate) max_extra: u32,
    pub(crate) budget: Option<Arc<dyn Budget + Send + Sync>>,
}

const SAMPLES: usize = 64;

impl Hedge {
    /// How many recent first-token times each target keeps for [`Hedge::quantile`].
    pub const SAMPLES: usize = SAMPLES;

    /// Hedges after `delay` with no content.
    pub fn after(delay: Duration) -> Self {
        Self {
            after: delay,
            quantile: None,
            floor: Duration::ZERO,
            ceiling: Duration::MAX,
            min_samples: 20,
            max_extra: 1,
            budget: None,
        }
    }

    /// Hedges after the `q` quantile (`0.95` for p95; clamped to `0..=1`) of the slow
    /// attempt's target's recent times to first content, once it has
    /// [`min_samples`](Self::min_samples); until then after the fixed delay this was built
    /// with.
    #[must_use]
    pub fn quantile(mut self, q: f64) -> Self {
        self.quantile = Some(if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) });
        self
    }

    /// The shortest delay a quantile gives (default zero).
    #[must_use]
    pub fn floor(mut self, floor: Duration) -> Self {
        self.floor = floor;
        self
    }

    /// The longest delay a quantile gives (default none).
    #[must_use]
    pub fn ceiling(mut self, ceiling: Duration) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// The samples a target needs before its quantile is used (default 20, at most
    /// [`SAMPLES`](Self::SAMPLES), at least 1).
    #[must_use]
    pub fn min_samples(mut self, samples: u32) -> Self {
        self.min_samples = samples.clamp(1, SAMPLES as u32);
        self
    }

    /// The most hedges in flight beside the first attempt (default 1, at least 1).
    #[must_use]
    pub fn max_extra(mut self, extra: u32) -> Self {
        self.max_extra = extra.max(1);
        self
    }

    /// Spends hedges from `budget` (typically the one the targets' retry layers share,
    /// [`RetryLayer::shared_budget`](crate::retry::RetryLayer::shared_budget)).
    #[must_use]
    pub fn budget<B: Budget + Send + Sync + 'static>(mut self, budget: Arc<B>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The delay before hedging an attempt on the target whose estimates are `samples`.
    pub(crate) fn delay(&self, samples: &FirstTokens) -> Duration {
        let Some(q) = self.quantile else {
            return self.after;
        };
        match samples.quantile(q, self.min_samples) {
            Some(estimate) => estimate.clamp(self.floor, self.ceiling.max(self.floor)),
            None => self.after,
        }
    }
}

impl fmt::Debug for Hedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("after", &self.after)
            .field("quantile", &self.quantile)
            .field("floor", &self.floor)
            .field("ceiling", &self.ceiling)
            .field("min_samples", &self.min_samples)
            .field("max_extra", &self.max_extra)
            .field("budget", &self.budget.is_some())
            .finish()
    }
}

/// The router's hedging state: the policy, the fallback budget, one estimator per target.
pub(crate) struct Hedging {
    pub(crate) policy: Hedge,
    /// Used when neither the policy nor the target has a budget; deposited per call.
    pub(crate) own_budget: TpsBudget,
    pub(crate) first_tokens: Vec<FirstTokens>,
}

impl Hedging {
    pub(crate) fn new(policy: Hedge, targets: usize) -> Self {
        Self {
            policy,
            own_budget: TpsBudget::default(),
            first_tokens: (0..targets).map(|_| FirstTokens::default()).collect(),
        }
    }
}

/// A target's last [`Hedge::SAMPLES`] times to first content, in microseconds: a ring of atomics
/// (no lock), read by copying it to the stack.
pub(crate) struct FirstTokens {
    samples: [AtomicU32; SAMPLES],
    count: AtomicU64,
}

impl Default for FirstTokens {
    fn default() -> Self {
        Self {
            samples: std::array::from_fn(|_| AtomicU32::new(0)),
            count: AtomicU64::new(0),
        }
    }
}

impl FirstTokens {
    /// Adds a sample (saturating at about 71 minutes).
    pub(crate) fn observe(&self, elapsed: Duration) {
        let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        let slot = self.count.fetch_add(1, Ordering::Relaxed) % SAMPLES as u64;
        // The slot is below SAMPLES.
        #[allow(clippy::cast_possible_truncation)]
        self.samples[slot as usize].store(micros, Ordering::Relaxed);
    }

    /// The `q` quantile (nearest rank) of the samples, once there are `min` of them.
    pub(crate) fn quantile(&self, q: f64, min: u32) -> Option<Duration> {
        let count = self.count.load(Ordering::Relaxed);
        if count < u64::from(min) {
            return None;
        }
        #[allow(clippy::cast_possible_truncation)]
        let n = count.min(SAMPLES as u64) as usize;
        let mut copy = [0u32; SAMPLES];
        for (to, from) in copy.iter_mut().zip(&self.samples).take(n) {
            *to = from.load(Ordering::Relaxed);
        }
        // Nearest rank: the smallest sample with at least q·n samples at or below it.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        let (_, value, _) = copy[..n].select_nth_unstable(rank);
        Some(Duration::from_micros(u64::from(*value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_the_nearest_rank_of_the_recent_samples() {
        let samples = FirstTokens::default();
        assert_eq!(samples.quantile(0.95, 1), None);
        for ms in 1..=100 {
            samples.observe(Duration::from_millis(ms));
        }
        // Only the last 64 are kept: 37..=100 ms.
        assert_eq!(samples.quantile(0.0, 1), Some(Duration::from_millis(37)));
        assert_eq!(samples.quantile(0.5, 1), Some(Duration::from_millis(68)));
        assert_eq!(samples.quantile(0.95, 1), Some(Duration::from_millis(97)));
        assert_eq!(samples.quantile(1.0, 1), Some(Duration::from_millis(100)));
    }

    #[test]
    fn delay_falls_back_until_enough_samples_then_is_bounded() {
        let policy = Hedge::after(Duration::from_millis(300))
            .quantile(0.9)
            .min_samples(10)
            .floor(Duration::from_millis(50))
            .ceiling(Duration::from_secs(2));
        let samples = FirstTokens::default();
        for _ in 0..9 {
            samples.observe(Duration::from_millis(10));
        }
        assert_eq!(policy.delay(&samples), Duration::from_millis(300));
        samples.observe(Duration::from_millis(10));
        assert_eq!(policy.delay(&samples), Duration::from_millis(50), "floor");
        for _ in 0..SAMPLES {
            samples.observe(Duration::from_secs(9));
        }
        assert_eq!(policy.delay(&samples), Duration::from_secs(2), "ceiling");
    }
}
