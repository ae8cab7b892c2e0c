//! What the provider last reported about one limited dimension: how much is left and when
//! the window is full again. Its report is a ceiling until that reset; then the window
//! refills in the provider's shape.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};

use seawall_core::QuotaWindow;

/// How a provider's capacity comes back between two of its reports.
///
/// | provider | what it documents | use |
/// |---|---|---|
/// | OpenAI | a token bucket: `x-ratelimit-reset-*` is the time until the limit is full again, and a recording shows `12ms` after one request of a 5,000 RPM limit | [`Continuous`](Self::Continuous) |
/// | Anthropic | a token bucket ("continuously replenished up to your maximum"); `anthropic-ratelimit-*-reset` is when it is full | [`Continuous`](Self::Continuous) |
/// | Gemini | per-minute and per-day quotas, reported only in a 429's `RetryInfo` | [`UntilReset`](Self::UntilReset) |
/// | OpenAI-compatible servers, proxies, the simulator | unknown, or fixed windows | [`UntilReset`](Self::UntilReset) |
///
/// [`UntilReset`](Self::UntilReset) is the default because it is right for every provider:
/// against a token bucket it only admits less between two reports, and every response
/// brings a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProviderRefill {
    /// Nothing comes back before the reported reset; then the whole reported limit (a fixed
    /// window).
    #[default]
    UntilReset,
    /// What is left grows linearly to the reported limit at the reported reset (a token
    /// bucket).
    Continuous,
}

/// The bits of the state word that count units in flight; the rest is the report's
/// generation.
const FLIGHT_BITS: u32 = 48;
const FLIGHT_MASK: u64 = (1 << FLIGHT_BITS) - 1;
const GENERATION: u64 = 1 << FLIGHT_BITS;
/// `reset` of a window the provider never reported on.
const INACTIVE: u64 = 0;
/// `limit` the provider did not report.
const UNKNOWN: u64 = u64::MAX;
/// How much later than reported a window is taken to reset: the headers' resolution.
const RESET_ROUNDING: u64 = 1_000_000;
/// A wait that never ends: the call is heavier than the provider's whole limit.
pub(crate) const NEVER: u64 = u64::MAX;

/// One dimension's tightest report from the provider, and the units this process has sent
/// that no report has counted yet.
///
/// A call's units are *in flight* from its admission until its own response brings a
/// report (which counts it) or it ends without one. What may be admitted is the report's
/// capacity less what is in flight: a call the provider counted already but whose report
/// has not come back is subtracted twice, which errs on the safe side until it does.
/// Reports can arrive in another order than the provider wrote them, so a report replaces
/// the current one only if it leaves less room now; within a fixed window, the lowest
/// remaining is the newest.
///
/// Admission adds to the in-flight count with one compare-and-swap on the state word; it
/// never locks. A report is written under a mutex that only writers take: it bumps the
/// word's generation before and after, so an admission that read a half-written report
/// fails its compare-and-swap and reads again.
#[derive(Debug)]
pub(crate) struct ProviderWindow {
    /// `generation << 48 | units in flight`. An odd generation: a report is being written.
    word: AtomicU64,
    /// Units left when reported.
    left: AtomicU64,
    /// The provider's limit per window, or [`UNKNOWN`].
    limit: AtomicU64,
    /// When the report was taken (nanoseconds on the state's clock).
    from: AtomicU64,
    /// When the window is full again, or [`INACTIVE`].
    reset: AtomicU64,
    others_per_second: AtomicU64,
    /// Written only under `writer`.
    accounts: Mutex<Accounts>,
    writer: Mutex<()>,
}

/// The previous report of the current window: what the provider counted between it and
/// the next, less the reporting call, others spent.
#[derive(Debug, Default)]
struct Accounts {
    /// What it said was left, and when.
    previous: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Report {
    left: u64,
    limit: Option<u64>,
    from: u64,
    reset: u64,
    /// Units per second that other clients of the account (other replicas) spent in this
    /// window, as far as the reports tell: what is left shrinks at that pace after the
    /// report, until the next one.
    others_per_second: u64,
}

fn in_flight(word: u64) -> u64 {
    word & FLIGHT_MASK
}

fn scale(units: u64, numerator: u64, denominator: u64) -> u64 {
    if denominator == 0 {
        return units;
    }
    u64::try_from(u128::from(units) * u128::from(numerator) / u128::from(denominator))
        .unwrap_or(u64::MAX)
}

impl Report {
    /// What the provider would admit at `now`, before subtracting what is in flight.
    fn capacity(&self, refill: ProviderRefill, now: u64) -> u64 {
        let since = now.saturating_sub(self.from);
        let others = scale(self.others_per_second, since, 1_000_000_000);
        self.provider_capacity(refill, now).saturating_sub(others)
    }

    /// What the provider would admit at `now` if nobody else spent anything.
    fn provider_capacity(&self, refill: ProviderRefill, now: u64) -> u64 {
        match (refill, self.limit) {
            (ProviderRefill::Continuous, Some(limit)) if limit > self.left => {
                let elapsed = now.saturating_sub(self.from);
                let span = self.reset.saturating_sub(self.from);
                let grown = scale(limit - self.left, elapsed, span);
                self.left.saturating_add(grown).min(limit)
            }
            _ => self.left,
        }
    }

    /// The wait at `now` until `need` units (in-flight ones included) fit, within this
    /// report.
    fn wait(&self, refill: ProviderRefill, need: u64, now: u64) -> u64 {
        let until_reset = self.reset.saturating_sub(now);
        match (refill, self.limit) {
            (ProviderRefill::Continuous, Some(limit)) if limit > self.left && need <= limit => {
                let span = self.reset.saturating_sub(self.from);
                let at = self.from.saturating_add(
                    (u128::from(need - self.left) * u128::from(span))
                        .div_ceil(u128::from(limit - self.left))
                        .try_into()
                        .unwrap_or(u64::MAX),
                );
                at.saturating_sub(now).min(until_reset)
            }
            _ => until_reset,
        }
    }

    /// The report the window turns into at its reset: the whole limit, until the next
    /// report or one `period` later. With no limit reported, none.
    fn rolled(&self, now: u64, period: u64) -> Option<Report> {
        self.limit.map(|limit| Report {
            left: limit,
            limit: Some(limit),
            from: self.reset,
            reset: self.reset.saturating_add(period).max(now + 1),
            others_per_second: 0,
        })
    }
}

impl ProviderWindow {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            left: AtomicU64::new(0),
            limit: AtomicU64::new(UNKNOWN),
            from: AtomicU64::new(0),
            reset: AtomicU64::new(INACTIVE),
            others_per_second: AtomicU64::new(0),
            accounts: Mutex::new(Accounts::default()),
            writer: Mutex::new(()),
        }
    }

    /// The report valid for `word`, or `None` while one is being written.
    fn read(&self) -> Option<(u64, Option<Report>)> {
        let word = self.word.load(SeqCst);
        if (word >> FLIGHT_BITS) % 2 == 1 {
            return None;
        }
        let limit = self.limit.load(SeqCst);
        let report = Report {
            left: self.left.load(SeqCst),
            limit: (limit != UNKNOWN).then_some(limit),
            from: self.from.load(SeqCst),
            reset: self.reset.load(SeqCst),
            others_per_second: self.others_per_second.load(SeqCst),
        };
        // A writer that started meanwhile changed the generation: the fields may be torn.
        let same = (self.word.load(SeqCst) ^ word) >> FLIGHT_BITS == 0;
        same.then_some((word, (report.reset != INACTIVE).then_some(report)))
    }

    /// Replaces the report. The caller holds `writer`. The in-flight count is kept.
    fn write(&self, report: Option<Report>) {
        self.word.fetch_add(GENERATION, SeqCst);
        let report = report.unwrap_or(Report {
            left: 0,
            limit: None,
            from: 0,
            reset: INACTIVE,
            others_per_second: 0,
        });
        self.left.store(report.left, SeqCst);
        self.others_per_second
            .store(report.others_per_second, SeqCst);
        self.limit.store(report.limit.unwrap_or(UNKNOWN), SeqCst);
        self.from.store(report.from, SeqCst);
        self.reset.store(report.reset, SeqCst);
        self.word.fetch_add(GENERATION, SeqCst);
    }

    /// The report to admit against at `now`, rolled over if its reset has passed.
    fn current(&self, now: u64, period: u64) -> (u64, Option<Report>) {
        loop {
            let Some((word, report)) = self.read() else {
                std::hint::spin_loop();
                continue;
            };
            match report {
                Some(report) if now >= report.reset => {
                    // Rare: once per window. Only the first admission past the reset rolls.
                    let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
                    if (self.word.load(SeqCst) ^ word) >> FLIGHT_BITS == 0 {
                        self.accounts().previous = None;
                        self.write(report.rolled(now, period));
                    }
                }
                report => return (word, report),
            }
        }
    }

    /// Adds `units` to what is in flight at `now` if the provider's report leaves room, or
    /// returns the wait (in nanoseconds, [`NEVER`] for a call heavier than the whole
    /// limit).
    pub(crate) fn try_reserve(
        &self,
        now: u64,
        units: u64,
        refill: ProviderRefill,
        period: u64,
    ) -> Result<(), u64> {
        if units == 0 {
            return Ok(());
        }
        loop {
            let (word, report) = self.current(now, period);
            if let Some(report) = report {
                let need = in_flight(word).saturating_add(units);
                if need > report.capacity(refill, now) {
                    if report.limit.is_some_and(|limit| units > limit) {
                        return Err(NEVER);
                    }
                    return Err(report.wait(refill, need, now));
                }
            }
            // Counted even with no report yet, so the first report leaves room for it.
            let next = word + units.min(FLIGHT_MASK - in_flight(word));
            if self
                .word
                .compare_exchange_weak(word, next, SeqCst, SeqCst)
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// Takes `units` out of what is in flight: a report counted them, or the call ended
    /// without one (then the provider did not count it either).
    pub(crate) fn release(&self, units: u64) {
        if units == 0 {
            return;
        }
        let _ = self.word.fetch_update(SeqCst, SeqCst, |word| {
            Some(word - units.min(in_flight(word)))
        });
    }

    /// The wait at `now` before `units` would fit behind `ahead` more, reserving nothing.
    pub(crate) fn wait_for(
        &self,
        now: u64,
        ahead: u64,
        units: u64,
        refill: ProviderRefill,
        period: u64,
    ) -> u64 {
        let (word, Some(report)) = self.current(now, period) else {
            return 0;
        };
        let need = in_flight(word).saturating_add(ahead).saturating_add(units);
        if need <= report.capacity(refill, now) {
            return 0;
        }
        match report.limit {
            Some(limit) if units > limit => NEVER,
            // More than the rest of this window and the whole next one: whole windows more.
            Some(limit) if ahead.saturating_add(units) > limit => report
                .reset
                .saturating_sub(now)
                .saturating_add(period.saturating_mul(ahead.saturating_add(units) / limit.max(1))),
            _ => report.wait(refill, need, now),
        }
    }

    /// Takes the provider's report at `now` if it leaves less room than the current one
    /// (or there is none), then releases `counted`: the reporting call's own units, which
    /// the report includes.
    pub(crate) fn sync(
        &self,
        now: u64,
        window: &QuotaWindow,
        counted: u64,
        refill: ProviderRefill,
        period: u64,
    ) {
        if let Some(remaining) = window.remaining {
            // Providers round the reset down to the millisecond (OpenAI's `412ms`) or to the
            // second: a window taken to end that much later never ends before theirs.
            let reset_after = window.reset_after.map_or(period, |d| {
                u64::try_from(d.as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_add(RESET_ROUNDING)
            });
            let mut report = Report {
                left: remaining,
                limit: window.limit,
                from: now,
                reset: now.saturating_add(reset_after.max(1)),
                others_per_second: 0,
            };
            let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let current = loop {
                if let Some((_, current)) = self.read() {
                    // Past its reset, the current report stands for the whole limit.
                    break match current {
                        Some(current) if now >= current.reset => {
                            self.accounts().previous = None;
                            current.rolled(now, period)
                        }
                        current => current,
                    };
                }
                std::hint::spin_loop();
            };
            // Reports arrive out of the order the provider wrote them: within a window the
            // lowest remaining is the newest. Others' spending is not part of that order.
            let tighter = current.is_none_or(|current| {
                report.provider_capacity(refill, now) <= current.provider_capacity(refill, now)
            });
            if tighter {
                let mut accounts = self.accounts();
                // What the provider counted since the previous report, less this call: what
                // others spent, at the pace they spent it.
                if let Some((previous, at)) = accounts.previous.filter(|_| current.is_some()) {
                    let others = previous.saturating_sub(remaining).saturating_sub(counted);
                    let elapsed = now.saturating_sub(at).max(1_000_000);
                    report.others_per_second = scale(others, 1_000_000_000, elapsed);
                }
                accounts.previous = Some((remaining, now));
                drop(accounts);
                self.write(Some(report));
            }
        }
        self.release(counted);
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Units left at `now` and the time until the window is full, if the provider reported.
    pub(crate) fn capacity(
        &self,
        now: u64,
        refill: ProviderRefill,
        period: u64,
    ) -> Option<(u64, u64)> {
        let (word, report) = self.current(now, period);
        let report = report?;
        let left = report.capacity(refill, now).saturating_sub(in_flight(word));
        Some((left, report.reset.saturating_sub(now)))
    }
}
