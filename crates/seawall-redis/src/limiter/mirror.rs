//! What the server last answered, kept in process: the waits and the capacity that must
//! be read without a round trip (failover skips, queue checks, status) come from it, aged
//! on this process's clock.

use std::time::Duration;

use seawall::rate_limit::{Capacity, LimiterState, Weight};
use tokio::time::Instant;

use super::{Core, INF, ROUNDING, micros, units};

/// One dimension as the server last stored it (microseconds on the server's clock).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Dim {
    pub(super) tat: i64,
    pub(super) left: i64,
    pub(super) limit: i64,
    pub(super) reset: i64,
    pub(super) from: i64,
    pub(super) flight: i64,
}

/// The server's last answer, and when it came on this process's clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mirror {
    pub(super) received: Instant,
    pub(super) server_now: i64,
    pub(super) dims: [Dim; 4],
}

impl Core {
    /// The wait before `ahead + weight` fits each dimension, on the mirror.
    pub(super) fn predicted_wait(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration {
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
    pub(super) fn capacity(&self, now: Instant) -> Capacity {
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
