use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How the router orders the targets of each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// In the order they were added: a fallback chain (expensive → cheap → local).
    #[default]
    Priority,
    /// A random order drawn by weight: a target of weight 3 comes first three times as
    /// often as one of weight 1 (weighted sampling without replacement).
    Weighted,
    /// Fastest first, by a moving average of each target's latency (time to first token
    /// for streams) that decays with time, like tower's `PeakEwma`: a slower sample (or a
    /// failure, counted as its latency plus the
    /// [failure penalty](super::FailoverBuilder::failure_penalty)) raises the estimate at
    /// once, faster ones lower it over the [decay time](super::FailoverBuilder::latency_decay),
    /// and a target that gets no calls sees its estimate fade toward zero over that time.
    /// So a target that failed or was slow is tried again after a while and, once it
    /// has recovered, gets its share back; one that is still slow sinks again. Targets not
    /// measured yet come first, in priority order, so they get measured.
    LeastLatency,
    /// Power of two choices: two targets drawn at random, the faster (by the decaying
    /// moving average of [`LeastLatency`](Self::LeastLatency)) first, then the others
    /// fastest first. Spreads load while avoiding slow targets.
    PowerOfTwoChoices,
}

/// The latency estimates of a router's targets, one [`LatencyEwma`] each, on tokio's clock.
///
/// Like [`tower::load::PeakEwma`]: a sample above the estimate replaces it at once (a
/// target that got slower or failed sinks now); a lower one pulls it down by
/// `1 - exp(-elapsed / decay)`, `elapsed` being the time since the previous sample; and
/// read between samples, the estimate fades toward zero by `exp(-elapsed / decay)`. So a
/// target that stops getting calls because it failed or was slow is tried again after a
/// while (its estimate fades below the others'), and one that has recovered gets its share
/// back; one that is still slow or failing measures high again and sinks again.
///
/// [`tower::load::PeakEwma`]: https://docs.rs/tower/latest/tower/load/struct.PeakEwma.html
#[derive(Debug)]
pub(crate) struct Latencies {
    /// Time 0 of the cells' timestamps.
    epoch: Instant,
    /// The decay time constant, in milliseconds.
    decay_ms: f64,
    cells: Vec<LatencyEwma>,
}

impl Latencies {
    pub(crate) fn new(targets: usize, decay: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            // At least a millisecond, the resolution of the timestamps.
            decay_ms: (decay.as_secs_f64() * 1e3).max(1.0),
            cells: (0..targets).map(|_| LatencyEwma::default()).collect(),
        }
    }

    /// Milliseconds from the epoch to `now`.
    pub(crate) fn millis(&self, now: Instant) -> u64 {
        let millis = now.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(millis).unwrap_or(u64::MAX)
    }

    /// Target `index`'s estimate at `now_ms`, in nanoseconds; 0 when never measured (or
    /// faded to nothing).
    pub(crate) fn estimate(&self, index: usize, now_ms: u64) -> f64 {
        match self.cells[index].load() {
            Some((value, at)) => value * self.decay(at, now_ms),
            None => 0.0,
        }
    }

    /// Whether target `index` has been measured.
    pub(crate) fn measured(&self, index: usize) -> bool {
        self.cells[index].load().is_some()
    }

    /// Records a sample of target `index`'s latency, now.
    pub(crate) fn observe(&self, index: usize, sample: Duration) {
        self.observe_at(index, sample, Instant::now());
    }

    /// Records a sample of target `index`'s latency taken at `now` (a reading the caller
    /// has already made).
    pub(crate) fn observe_at(&self, index: usize, sample: Duration, now: Instant) {
        let now_ms = self.millis(now);
        let sample = sample.as_secs_f64() * 1e9;
        self.cells[index].update(now_ms, |previous| match previous {
            Some((value, at)) if sample <= value => {
                let decay = self.decay(at, now_ms);
                value * decay + sample * (1.0 - decay)
            }
            // The first sample, or a peak.
            _ => sample,
        });
    }

    /// `exp(-elapsed / decay)` from `at` to `now` (both in milliseconds).
    fn decay(&self, at: u64, now: u64) -> f64 {
        let elapsed = now.saturating_sub(at) as f64;
        (-elapsed / self.decay_ms).exp()
    }
}

/// One target's estimate and when it was last sampled, in one atomic word so that the
/// pair changes together without a lock: the timestamp (milliseconds from the epoch, plus
/// one so that 0 means never sampled) in the high 40 bits, the estimate (nanoseconds, an
/// `f32` without its sign bit and its 8 lowest mantissa bits: 2⁻¹⁵ relative precision) in
/// the low 24.
#[derive(Debug, Default)]
pub(crate) struct LatencyEwma(AtomicU64);

const VALUE_BITS: u32 = 24;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
const MAX_STAMP: u64 = (1 << (64 - VALUE_BITS)) - 1;

impl LatencyEwma {
    /// The estimate (nanoseconds) and the time of its last sample (milliseconds).
    fn load(&self) -> Option<(f64, u64)> {
        unpack(self.0.load(Ordering::Relaxed))
    }

    /// Replaces the estimate with `next(previous)`, stamped `now_ms`.
    fn update(&self, now_ms: u64, next: impl Fn(Option<(f64, u64)>) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let previous = unpack(word);
                // Never stamp a sample earlier than the one it follows.
                let at = previous.map_or(now_ms, |(_, at)| at.max(now_ms));
                Some(pack(next(previous), at))
            });
    }
}

fn pack(nanos: f64, at_ms: u64) -> u64 {
    let value = u64::from((nanos.max(0.0) as f32).to_bits() >> 8) & VALUE_MASK;
    let stamp = at_ms.saturating_add(1).min(MAX_STAMP);
    (stamp << VALUE_BITS) | value
}

fn unpack(word: u64) -> Option<(f64, u64)> {
    let stamp = word >> VALUE_BITS;
    if stamp == 0 {
        return None;
    }
    let value = f32::from_bits(((word & VALUE_MASK) as u32) << 8);
    Some((f64::from(value), stamp - 1))
}

/// A small lock-free random source (SplitMix64) for the weighted and P2C strategies.
#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in (0, 1].
    pub(crate) fn unit(&self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    pub(crate) fn below(&self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Fills `plan` with the target indices in the order `strategy` gives.
pub(crate) fn plan_into(
    strategy: Strategy,
    weights: &[u32],
    latency: &Latencies,
    rng: &Rng,
    plan: &mut Vec<usize>,
) {
    let n = weights.len();
    plan.clear();
    plan.extend(0..n);
    match strategy {
        Strategy::Priority => {}
        Strategy::Weighted => {
            // Efraimidis–Spirakis: key = -ln(u) / w, smallest first; weight 0 goes last.
            let mut keys: Vec<(f64, usize)> = (0..n)
                .map(|i| {
                    let key = match weights[i] {
                        0 => f64::INFINITY,
                        w => -rng.unit().ln() / f64::from(w),
                    };
                    (key, i)
                })
                .collect();
            keys.sort_by(|a, b| a.0.total_cmp(&b.0));
            plan.clear();
            plan.extend(keys.into_iter().map(|(_, i)| i));
        }
        Strategy::LeastLatency | Strategy::PowerOfTwoChoices => {
            // Each estimate read once (an `exp` each), on the stack for usual plan sizes.
            const CACHED: usize = 16;
            let now = latency.millis(Instant::now());
            let mut cache = [0.0; CACHED];
            let cached = n <= CACHED;
            if cached {
                for (index, slot) in cache.iter_mut().enumerate().take(n) {
                    *slot = latency.estimate(index, now);
                }
            }
            let estimate = |index: usize| {
                if cached {
                    cache[index]
                } else {
                    latency.estimate(index, now)
                }
            };
            plan.sort_by(|&a, &b| estimate(a).total_cmp(&estimate(b)));
            if strategy == Strategy::PowerOfTwoChoices && n >= 2 {
                let a = rng.below(n);
                let b = (a + 1 + rng.below(n - 1)) % n;
                let (la, lb) = (estimate(a), estimate(b));
                let first = if lb < la { b } else { a };
                if let Some(position) = plan.iter().position(|&i| i == first) {
                    plan[..=position].rotate_right(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_estimate_rises_to_a_peak_at_once_and_fades_with_time() {
        let latency = Latencies::new(1, Duration::from_secs(10));
        let at = |latency: &Latencies| latency.estimate(0, latency.millis(Instant::now())) / 1e9;
        assert!(!latency.measured(0));
        assert_eq!(at(&latency), 0.0);

        latency.observe(0, Duration::from_millis(100));
        assert!((at(&latency) - 0.1).abs() < 1e-5, "{}", at(&latency));
        // A peak replaces the estimate.
        latency.observe(0, Duration::from_secs(5));
        assert!((at(&latency) - 5.0).abs() < 1e-3, "{}", at(&latency));
        // Unsampled, it fades by exp(-elapsed / decay).
        tokio::time::advance(Duration::from_secs(10)).await;
        let faded = 5.0 * (-1.0f64).exp();
        assert!((at(&latency) - faded).abs() < 1e-3, "{}", at(&latency));
        // A lower sample pulls the estimate toward it by 1 - exp(-elapsed / decay).
        latency.observe(0, Duration::from_millis(100));
        let pulled = faded + 0.1 * (1.0 - (-1.0f64).exp());
        assert!((at(&latency) - pulled).abs() < 1e-3, "{}", at(&latency));
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(latency.measured(0));
        assert!(at(&latency) < 1e-20, "{}", at(&latency));
    }

    #[test]
    fn weighted_order_follows_the_weights() {
        let rng = Rng::new(7);
        let latency = Latencies::new(2, Duration::from_secs(10));
        let mut plan = Vec::new();
        let mut heavy_first = 0;
        for _ in 0..4000 {
            plan_into(Strategy::Weighted, &[1, 3], &latency, &rng, &mut plan);
            if plan[0] == 1 {
                heavy_first += 1;
            }
        }
        // Expected 3 in 4, i.e. 3000 of 4000.
        assert!((2850..3150).contains(&heavy_first), "{heavy_first}");
    }
}
