//! Where a limiter's counters live: in process by default, behind a trait so that a shared
//! store (Redis) can hold them for many replicas.

use std::fmt;
use std::time::Duration;

use seawall_core::{QuotaSnapshot, QuotaWindow};
use tokio::time::Instant;

use super::config::{Limits, Rate};
use super::gcra::GcraCell;

/// What one call weighs in each limited dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Weight {
    /// Requests (1 for a call).
    pub requests: u64,
    /// Input plus output tokens.
    pub tokens: u64,
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl Weight {
    /// The weight of one call with `input` prompt tokens and `output` output tokens.
    pub const fn call(input: u64, output: u64) -> Self {
        Self {
            requests: 1,
            tokens: input.saturating_add(output),
            input_tokens: input,
            output_tokens: output,
        }
    }

    /// The weight of the tokens only (no request), for reconciliation.
    pub const fn tokens(input: u64, output: u64) -> Self {
        Self {
            requests: 0,
            ..Self::call(input, output)
        }
    }

    /// Field-by-field sum.
    #[must_use]
    pub const fn plus(self, other: Self) -> Self {
        Self {
            requests: self.requests.saturating_add(other.requests),
            tokens: self.tokens.saturating_add(other.tokens),
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
        }
    }

    /// Field-by-field difference, saturating at zero.
    #[must_use]
    pub const fn minus(self, other: Self) -> Self {
        Self {
            requests: self.requests.saturating_sub(other.requests),
            tokens: self.tokens.saturating_sub(other.tokens),
            input_tokens: self.input_tokens.saturating_sub(other.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(other.output_tokens),
        }
    }
}

/// What is left in each limited dimension at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capacity {
    /// Requests that could be admitted now, if requests are limited.
    pub requests: Option<u64>,
    /// Tokens that could be admitted now, if tokens are limited.
    pub tokens: Option<u64>,
    /// Input tokens that could be admitted now, if they are limited separately.
    pub input_tokens: Option<u64>,
    /// Output tokens that could be admitted now, if they are limited separately.
    pub output_tokens: Option<u64>,
    /// The time until every dimension is full again.
    pub time_to_refill: Duration,
}

/// The counters of one target's limiter.
///
/// Every method is atomic with respect to the others: a reservation is taken in every
/// dimension or in none. The in-process [`InMemoryState`] does it with compare-and-swap
/// on one GCRA cell per dimension; a shared store does it with one script per call. The
/// FIFO wait queue is not part of the state: it orders the callers of one process.
pub trait LimiterState: Send + Sync + fmt::Debug + 'static {
    /// Reserves `weight` in every dimension at `now`, or reserves nothing and returns the
    /// wait after which it would fit.
    fn try_reserve(&self, now: Instant, weight: &Weight) -> Result<(), Duration>;

    /// The wait before `weight` would be admitted at `now` if `ahead` were reserved first.
    /// Reserves nothing.
    fn wait_for(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration;

    /// Charges `debit` (used beyond the reservation) and gives back `refund` (reserved and
    /// not used).
    fn reconcile(&self, now: Instant, debit: &Weight, refund: &Weight);

    /// Corrects the remaining capacity from the provider's own report. `in_flight` is what
    /// this process has admitted and the provider may not have counted yet.
    fn sync(&self, now: Instant, quota: &QuotaSnapshot, in_flight: &Weight);

    /// What is left now.
    fn capacity(&self, now: Instant) -> Capacity;
}

/// The in-process state: one lock-free GCRA cell per limited dimension.
///
/// Times are measured on tokio's clock from the instant the state was created.
#[derive(Debug)]
pub struct InMemoryState {
    base: Instant,
    requests: Option<GcraCell>,
    tokens: Option<GcraCell>,
    input_tokens: Option<GcraCell>,
    output_tokens: Option<GcraCell>,
}

/// One limited dimension: its cell, and how many of its units a weight holds.
type Dimension<'a> = (Option<&'a GcraCell>, fn(&Weight) -> u64);

fn cell(rate: Option<Rate>) -> Option<GcraCell> {
    rate.map(|rate| {
        let window = u64::try_from(rate.per.as_nanos()).unwrap_or(u64::MAX);
        GcraCell::new(rate.limit, window)
    })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl InMemoryState {
    /// Full cells for `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            base: Instant::now(),
            requests: cell(limits.requests),
            tokens: cell(limits.tokens),
            input_tokens: cell(limits.input_tokens),
            output_tokens: cell(limits.output_tokens),
        }
    }

    fn at(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.base))
    }

    fn cells(&self) -> [Dimension<'_>; 4] {
        [
            (self.requests.as_ref(), |w| w.requests),
            (self.tokens.as_ref(), |w| w.tokens),
            (self.input_tokens.as_ref(), |w| w.input_tokens),
            (self.output_tokens.as_ref(), |w| w.output_tokens),
        ]
    }
}

impl LimiterState for InMemoryState {
    fn try_reserve(&self, now: Instant, weight: &Weight) -> Result<(), Duration> {
        let at = self.at(now);
        let cells = self.cells();
        for (i, (cell, units)) in cells.iter().enumerate() {
            let Some(cell) = cell else { continue };
            if let Err(wait) = cell.try_reserve(at, units(weight)) {
                // Give back what the earlier dimensions took, then report the longest
                // wait over all dimensions, so the caller sleeps once.
                for (earlier, units) in &cells[..i] {
                    if let Some(earlier) = earlier {
                        earlier.refund(units(weight));
                    }
                }
                let rest = cells[i + 1..]
                    .iter()
                    .filter_map(|(cell, units)| cell.map(|c| c.wait_for(at, 0, units(weight))))
                    .max()
                    .unwrap_or(0);
                return Err(Duration::from_nanos(wait.max(rest)));
            }
        }
        Ok(())
    }

    fn wait_for(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration {
        let at = self.at(now);
        let wait = self
            .cells()
            .iter()
            .filter_map(|(cell, units)| cell.map(|c| c.wait_for(at, units(ahead), units(weight))))
            .max()
            .unwrap_or(0);
        Duration::from_nanos(wait)
    }

    fn reconcile(&self, now: Instant, debit: &Weight, refund: &Weight) {
        let at = self.at(now);
        for (cell, units) in self.cells() {
            let Some(cell) = cell else { continue };
            if units(debit) > 0 {
                cell.debit(at, units(debit));
            }
            if units(refund) > 0 {
                cell.refund(units(refund));
            }
        }
    }

    fn sync(&self, now: Instant, quota: &QuotaSnapshot, in_flight: &Weight) {
        let at = self.at(now);
        let pairs: [(Option<&GcraCell>, Option<QuotaWindow>, u64); 4] = [
            (self.requests.as_ref(), quota.requests, in_flight.requests),
            (self.tokens.as_ref(), quota.tokens, in_flight.tokens),
            (
                self.input_tokens.as_ref(),
                quota.input_tokens,
                in_flight.input_tokens,
            ),
            (
                self.output_tokens.as_ref(),
                quota.output_tokens,
                in_flight.output_tokens,
            ),
        ];
        for (cell, window, in_flight) in pairs {
            let (Some(cell), Some(window)) = (cell, window) else {
                continue;
            };
            let Some(remaining) = window.remaining else {
                continue;
            };
            // The provider has not seen what is still in flight here.
            cell.set_available(at, remaining.saturating_sub(in_flight).min(cell.limit()));
            if remaining == 0
                && let Some(reset) = window.reset_after
            {
                cell.block_until(at.saturating_add(nanos(reset)));
            }
        }
    }

    fn capacity(&self, now: Instant) -> Capacity {
        let at = self.at(now);
        let available = |cell: &Option<GcraCell>| cell.as_ref().map(|c| c.available(at));
        let refill = self
            .cells()
            .iter()
            .filter_map(|(cell, _)| cell.map(|c| c.time_to_full(at)))
            .max()
            .unwrap_or(0);
        Capacity {
            requests: available(&self.requests),
            tokens: available(&self.tokens),
            input_tokens: available(&self.input_tokens),
            output_tokens: available(&self.output_tokens),
            time_to_refill: Duration::from_nanos(refill),
        }
    }
}
