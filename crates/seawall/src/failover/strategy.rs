use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// Fastest first, by an exponentially weighted moving average of each target's
    /// latency (time to first token for streams). Targets not measured yet come first,
    /// in priority order, so they get measured.
    LeastLatency,
    /// Power of two choices: two targets drawn at random, the faster (by moving average)
    /// first, then the others fastest first. Spreads load while avoiding slow targets.
    PowerOfTwoChoices,
}

/// A target's moving average latency, in nanoseconds (as `f64` bits; 0 when unmeasured).
#[derive(Debug, Default)]
pub(crate) struct LatencyEwma(AtomicU64);

/// The weight of a new sample.
const ALPHA: f64 = 0.3;

impl LatencyEwma {
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn observe(&self, sample: Duration) {
        let sample = sample.as_secs_f64() * 1e9;
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let current = f64::from_bits(bits);
                let next = if current == 0.0 {
                    sample
                } else {
                    current + ALPHA * (sample - current)
                };
                Some(next.to_bits())
            });
    }
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
    latency: &[LatencyEwma],
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
        Strategy::LeastLatency => {
            plan.sort_by(|&a, &b| latency[a].get().total_cmp(&latency[b].get()));
        }
        Strategy::PowerOfTwoChoices => {
            plan.sort_by(|&a, &b| latency[a].get().total_cmp(&latency[b].get()));
            if n >= 2 {
                let a = rng.below(n);
                let b = (a + 1 + rng.below(n - 1)) % n;
                let (la, lb) = (latency[a].get(), latency[b].get());
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

    #[test]
    fn weighted_order_follows_the_weights() {
        let rng = Rng::new(7);
        let latency: Vec<LatencyEwma> = (0..2).map(|_| LatencyEwma::default()).collect();
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
