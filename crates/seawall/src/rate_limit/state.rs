//! Where a limiter's counters live: in process by default, behind a trait so that a shared
//! store (Redis) can hold them for many replicas.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use seawall_core::QuotaSnapshot;
use tokio::time::Instant;

use super::config::{Limits, Rate};
use super::gcra::GcraCell;
use super::provider_window::{ProviderRefill, ProviderWindow};

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
    /// Requests that could be admitted now, if requests are limited (by configuration or
    /// by the provider's report).
    pub requests: Option<u64>,
    /// Tokens that could be admitted now, if tokens are limited.
    pub tokens: Option<u64>,
    /// Input tokens that could be admitted now, if they are limited separately.
    pub input_tokens: Option<u64>,
    /// Output tokens that could be admitted now, if they are limited separately.
    pub output_tokens: Option<u64>,
    /// The time until every dimension is full again, the provider's windows included.
    pub time_to_refill: Duration,
}

/// Why a store did not reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// Not now: the call would fit after this wait.
    Wait(Duration),
    /// The store could not be asked, and it is set to refuse rather than guess.
    Unavailable,
}

/// A reservation a shared store answers after a round trip.
pub type PendingReserve = Pin<Box<dyn Future<Output = Result<(), Refused>> + Send>>;

/// A store's answer to a reservation: at once (in process), or after a round trip to a
/// shared store.
#[non_exhaustive]
pub enum Reserve {
    /// Reserved, or the wait after which the call would fit.
    Ready(Result<(), Duration>),
    /// The answer is on its way. A store whose future is dropped unfinished gives back
    /// what the server may have reserved for it.
    Pending(PendingReserve),
}

impl fmt::Debug for Reserve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// The counters of one target's limiter.
///
/// Every method is atomic with respect to the others: a reservation is taken in every
/// dimension or in none. The in-process [`InMemoryState`] does it with compare-and-swap
/// on one GCRA cell and one provider window per dimension; a shared store does it with one
/// script per call. The FIFO wait queue is not part of the state: it orders the callers of
/// one process.
///
/// Only the reservation may wait for a server; the other methods answer from what the
/// store knows at once (a shared store: its last answer from the server) and send their
/// writes in the background, so that a reservation dropped in `Drop` still settles.
pub trait LimiterState: Send + Sync + fmt::Debug + 'static {
    /// Reserves `weight` in every dimension at `now`, or reserves nothing and says the wait
    /// after which it would fit.
    fn try_reserve(&self, now: Instant, weight: &Weight) -> Reserve;

    /// The wait before `weight` would be admitted at `now` if `ahead` were reserved first.
    /// Reserves nothing.
    fn wait_for(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration;

    /// Charges `debit` (used beyond the reservation) and gives back `refund` (reserved and
    /// not used).
    fn reconcile(&self, now: Instant, debit: &Weight, refund: &Weight);

    /// Takes the provider's own report: what it says is left is a ceiling until its reset,
    /// beside the configured limits (which stay ceilings of their own). `counted` is the
    /// weight of the call the report came with, which the report includes; zero for a
    /// report that came with no call of ours.
    fn sync(&self, now: Instant, quota: &QuotaSnapshot, counted: &Weight);

    /// A call of `weight` ended without a report from the provider, which did not count it.
    fn release(&self, weight: &Weight);

    /// What is left now.
    fn capacity(&self, now: Instant) -> Capacity;
}

/// The in-process state: per dimension, one lock-free GCRA cell for the configured limit
/// and one provider window for the provider's tightest report and the units it has not
/// counted yet. A call is admitted when it fits both.
///
/// Times are measured on tokio's clock from the instant the state was created.
#[derive(Debug)]
pub struct InMemoryState {
    base: Instant,
    requests: Option<GcraCell>,
    tokens: Option<GcraCell>,
    input_tokens: Option<GcraCell>,
    output_tokens: Option<GcraCell>,
    provider: [ProviderWindow; 4],
    refill: ProviderRefill,
    /// How long a provider window lasts after its reset while no new report comes: the
    /// longest configured period, or a minute.
    period: u64,
}

/// How many units of each dimension a weight holds, in the order of the cells.
const DIMENSIONS: [fn(&Weight) -> u64; 4] = [
    |w| w.requests,
    |w| w.tokens,
    |w| w.input_tokens,
    |w| w.output_tokens,
];

fn cell(rate: Option<Rate>) -> Option<GcraCell> {
    rate.map(|rate| GcraCell::new(rate.limit, nanos(rate.per)))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl InMemoryState {
    /// Full cells for `limits`, no report from the provider yet, and the conservative
    /// [`ProviderRefill::UntilReset`].
    pub fn new(limits: &Limits) -> Self {
        let period = limits.longest_period();
        Self {
            base: Instant::now(),
            requests: cell(limits.requests),
            tokens: cell(limits.tokens),
            input_tokens: cell(limits.input_tokens),
            output_tokens: cell(limits.output_tokens),
            provider: std::array::from_fn(|_| ProviderWindow::new()),
            refill: ProviderRefill::UntilReset,
            period: nanos(period),
        }
    }

    /// Sets how the provider's capacity comes back between its reports.
    #[must_use]
    pub fn with_provider_refill(mut self, refill: ProviderRefill) -> Self {
        self.refill = refill;
        self
    }

    fn at(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.base))
    }

    fn cells(&self) -> [Option<&GcraCell>; 4] {
        [
            self.requests.as_ref(),
            self.tokens.as_ref(),
            self.input_tokens.as_ref(),
            self.output_tokens.as_ref(),
        ]
    }

    fn configured_wait(&self, at: u64, ahead: &Weight, weight: &Weight) -> u64 {
        self.cells()
            .into_iter()
            .zip(DIMENSIONS)
            .filter_map(|(cell, units)| cell.map(|c| c.wait_for(at, units(ahead), units(weight))))
            .max()
            .unwrap_or(0)
    }

    fn provider_wait(&self, at: u64, ahead: &Weight, weight: &Weight) -> u64 {
        self.provider
            .iter()
            .zip(DIMENSIONS)
            .map(|(window, units)| {
                window.wait_for(at, units(ahead), units(weight), self.refill, self.period)
            })
            .max()
            .unwrap_or(0)
    }

    /// Reserves `weight` in the configured cells, or nothing.
    fn try_reserve_configured(&self, at: u64, weight: &Weight) -> Result<(), ()> {
        let cells = self.cells();
        for (i, (cell, units)) in cells.iter().zip(DIMENSIONS).enumerate() {
            let Some(cell) = cell else { continue };
            if cell.try_reserve(at, units(weight)).is_err() {
                self.refund_configured(&cells[..i], weight);
                return Err(());
            }
        }
        Ok(())
    }

    fn refund_configured(&self, cells: &[Option<&GcraCell>], weight: &Weight) {
        for (cell, units) in cells.iter().zip(DIMENSIONS) {
            if let Some(cell) = cell {
                cell.refund(units(weight));
            }
        }
    }

    /// Reserves `weight` in the provider windows, or nothing.
    fn try_reserve_provider(&self, at: u64, weight: &Weight) -> Result<(), ()> {
        for (i, (window, units)) in self.provider.iter().zip(DIMENSIONS).enumerate() {
            match window.try_reserve(at, units(weight), self.refill, self.period) {
                Ok(()) => {}
                Err(_) => {
                    for (window, units) in self.provider.iter().zip(DIMENSIONS).take(i) {
                        window.release(units(weight));
                    }
                    return Err(());
                }
            }
        }
        Ok(())
    }
}

impl InMemoryState {
    /// Reserves `weight` in every dimension at `now`, or reserves nothing and returns the
    /// wait after which it would fit.
    ///
    /// # Errors
    ///
    /// The wait, when `weight` does not fit now.
    pub fn reserve_now(&self, now: Instant, weight: &Weight) -> Result<(), Duration> {
        let at = self.at(now);
        let admitted = self.try_reserve_configured(at, weight).and_then(|()| {
            self.try_reserve_provider(at, weight)
                .inspect_err(|()| self.refund_configured(&self.cells(), weight))
        });
        admitted.map_err(|()| {
            // The longest wait over every dimension, so the caller sleeps once.
            let none = Weight::default();
            let wait = self
                .configured_wait(at, &none, weight)
                .max(self.provider_wait(at, &none, weight));
            // A race may have freed the room meanwhile: look again soon rather than never.
            Duration::from_nanos(wait.max(1))
        })
    }
}

impl LimiterState for InMemoryState {
    fn try_reserve(&self, now: Instant, weight: &Weight) -> Reserve {
        Reserve::Ready(self.reserve_now(now, weight))
    }

    fn wait_for(&self, now: Instant, ahead: &Weight, weight: &Weight) -> Duration {
        let at = self.at(now);
        let wait = self
            .configured_wait(at, ahead, weight)
            .max(self.provider_wait(at, ahead, weight));
        Duration::from_nanos(wait)
    }

    fn reconcile(&self, now: Instant, debit: &Weight, refund: &Weight) {
        let at = self.at(now);
        for (cell, units) in self.cells().into_iter().zip(DIMENSIONS) {
            let Some(cell) = cell else { continue };
            if units(debit) > 0 {
                cell.debit(at, units(debit));
            }
            if units(refund) > 0 {
                cell.refund(units(refund));
            }
        }
        for (window, units) in self.provider.iter().zip(DIMENSIONS) {
            window.correct_usage(units(debit), units(refund));
        }
    }

    fn sync(&self, now: Instant, quota: &QuotaSnapshot, counted: &Weight) {
        let at = self.at(now);
        let reported = [
            quota.requests,
            quota.tokens,
            quota.input_tokens,
            quota.output_tokens,
        ];
        for ((window, reported), units) in self.provider.iter().zip(reported).zip(DIMENSIONS) {
            match reported {
                Some(reported) => {
                    window.sync(at, &reported, units(counted), self.refill, self.period);
                }
                None => window.release(units(counted)),
            }
        }
    }

    fn release(&self, weight: &Weight) {
        for (window, units) in self.provider.iter().zip(DIMENSIONS) {
            window.release(units(weight));
        }
    }

    fn capacity(&self, now: Instant) -> Capacity {
        let at = self.at(now);
        let mut refill = 0;
        let mut left = [None; 4];
        for ((slot, cell), window) in left.iter_mut().zip(self.cells()).zip(&self.provider) {
            let configured = cell.map(|c| {
                refill = refill.max(c.time_to_full(at));
                c.available(at)
            });
            let provider =
                window
                    .capacity(at, self.refill, self.period)
                    .map(|(units, until_full)| {
                        refill = refill.max(until_full);
                        units
                    });
            *slot = match (configured, provider) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let [requests, tokens, input_tokens, output_tokens] = left;
        Capacity {
            requests,
            tokens,
            input_tokens,
            output_tokens,
            time_to_refill: Duration::from_nanos(refill),
        }
    }
}
