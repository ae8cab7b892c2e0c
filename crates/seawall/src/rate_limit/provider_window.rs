//! What the provider last reported about one limited dimension: how much is left and when
//! the window is full again. Its report is a ceiling until that reset; then the window
//! refills in the provider's shape.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};

use seawall_core::QuotaWindow;

/// How a provider's capacity comes back between two of its reports.
///
/// | provider | what it documents | use |
/// |---|---|---|
/// | OpenAI | a token bucket: `x-ratelimit-reset-*` is the time until the limit is full again, and a recording shows `12ms` after one request of a 5,000 RPM limit | [`Continuous`](Self::Continuous) |
/// | Anthropic | a token bucket ("continuously replenished up to your maximum"); `anthropic-ratelimit-*-reset` is when it is full | [`Continuous`](Self::Continuous) |
/// | Gemini | per-minute and per-day quotas, reported only in a 429's `RetryInfo` | [`UntilReset`](Self::UntilReset) |
/// | OpenAI-compatible servers, proxies | unknown | [`UntilReset`](Self::UntilReset) |
/// | the simulator | fixed windows; token buckets with `refill = "bucket"` | either, to match |
///
/// [`UntilReset`](Self::UntilReset) is the default because it is right for every provider:
/// against a token bucket it spends the bucket and then waits for it to be full, which
/// serves the same tokens per window with longer waits. [`Continuous`](Self::Continuous)
/// against a fixed window would send calls to collect 429s.
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
/// remaining is the newest. What the provider counted beyond this process's calls is other
/// clients' (replicas') spending: it is projected forward at its pace, and this process
/// takes only its share of what a report leaves.
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
    share: AtomicU64,
    /// Units this process has admitted, in total.
    sent: AtomicU64,
    /// Units this process's calls used beyond what they reserved (negative: short of it)
    /// in the current window, for [`Accounts::roll`].
    usage_correction: AtomicI64,
    /// Written only under `writer`.
    accounts: Mutex<Accounts>,
    writer: Mutex<()>,
}

/// Who spends the provider's windows, as the reports tell.
#[derive(Debug, Default)]
struct Accounts {
    /// The previous report of this window: what the provider counted between it and the
    /// next, less what this process may have sent in between, others spent.
    previous: Option<Previous>,
    /// Units of this process the reports of this window counted.
    window_mine: u64,
    /// The lowest remaining this window's reports gave (the newest), and the limit.
    window_lowest: Option<(u64, u64)>,
    /// The reset of the window that ended last.
    rolled_at: u64,
    /// Units of this process in the windows that ended, each older one weighing half.
    mine: u64,
    /// Units others spent in the windows that ended, likewise.
    others: u64,
}

/// The previous report of a window, and where this process stood then.
#[derive(Debug, Clone, Copy)]
struct Previous {
    /// What it said was left.
    remaining: u64,
    /// When it came.
    at: u64,
    /// Units this process had sent by then, in total.
    sent: u64,
    /// Units in flight then: they may have landed after it.
    in_flight: u64,
}

/// A whole share, in the 1/1024ths [`Accounts::share`] counts in.
const WHOLE: u64 = 1024;

impl Accounts {
    /// This process's share of what the account spends lately, in 1/1024ths: all of it
    /// until others are seen; then 15/16 of its measured part, never less than 1/16. The
    /// margin keeps replicas whose measured parts add up to a little more than the whole
    /// (windows are measured apart) from overshooting together.
    fn share(&self) -> u64 {
        match self.mine.saturating_add(self.others) {
            _ if self.others == 0 => WHOLE,
            total => (scale(self.mine, WHOLE, total) * 15 / 16).max(WHOLE / 16),
        }
    }

    /// At a reset: what the provider counted in the window that ended (its limit less
    /// the lowest remaining reported) splits into this process's units and the others';
    /// older windows weigh half as much.
    /// `correction` is what this process's calls used beyond (or, negative, short of) what
    /// they reserved, as their usage came in.
    ///
    /// The new window starts as if reported full at its reset, so that its first report
    /// already tells what others spent since.
    fn roll(&mut self, ended: &Report, sent: u64, in_flight: u64, correction: i64) {
        if self.rolled_at == ended.reset {
            return;
        }
        self.rolled_at = ended.reset;
        if let Some((lowest, limit)) = self.window_lowest.take() {
            let spent = limit.saturating_sub(lowest);
            let mine = self.window_mine.saturating_add_signed(correction);
            self.mine = self.mine / 2 + mine;
            self.others = self.others / 2 + spent.saturating_sub(mine);
        }
        self.window_mine = 0;
        self.previous = ended.limit.map(|limit| Previous {
            remaining: limit,
            at: ended.reset,
            sent,
            in_flight,
        });
    }
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
    /// This process's share (in 1/1024ths) of what is left: replicas that all see the same
    /// room take their part of it each, not all of it each.
    share: u64,
}

/// Whether two state words belong to the same report.
fn same_generation(a: u64, b: u64) -> bool {
    (a ^ b) >> FLIGHT_BITS == 0
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
    /// No report: the provider never said, or its window ended with no limit known.
    const NONE: Report = Report {
        left: 0,
        limit: None,
        from: 0,
        reset: INACTIVE,
        others_per_second: 0,
        share: WHOLE,
    };

    /// What the provider would admit at `now`, before subtracting what is in flight.
    fn capacity(&self, refill: ProviderRefill, now: u64) -> u64 {
        scale(self.unshared_capacity(refill, now), self.share, WHOLE)
    }

    /// What is left at `now` for anyone: the provider's figure less what others are
    /// spending since the report.
    fn unshared_capacity(&self, refill: ProviderRefill, now: u64) -> u64 {
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
    fn rolled(&self, now: u64, period: u64, share: u64) -> Option<Report> {
        self.limit.map(|limit| Report {
            left: limit,
            limit: Some(limit),
            from: self.reset,
            reset: self.reset.saturating_add(period).max(now + 1),
            others_per_second: 0,
            share,
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
            share: AtomicU64::new(WHOLE),
            sent: AtomicU64::new(0),
            usage_correction: AtomicI64::new(0),
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
            share: self.share.load(SeqCst),
        };
        // A writer that started meanwhile changed the generation: the fields may be torn.
        same_generation(self.word.load(SeqCst), word)
            .then_some((word, (report.reset != INACTIVE).then_some(report)))
    }

    /// Replaces the report. The caller holds `writer`. The in-flight count is kept.
    fn write(&self, report: Option<Report>) {
        self.word.fetch_add(GENERATION, SeqCst);
        let report = report.unwrap_or(Report::NONE);
        self.share.store(report.share, SeqCst);
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
                    if same_generation(self.word.load(SeqCst), word) {
                        self.write(self.roll(&report, now, period));
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
                // A call larger than this replica's share of a whole window would never go:
                // it may go alone, when there is room for it at all.
                let alone = in_flight(word) == 0
                    && report
                        .limit
                        .is_some_and(|limit| units > scale(limit, report.share, WHOLE))
                    && units <= report.unshared_capacity(refill, now);
                if need > report.capacity(refill, now) && !alone {
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
                self.sent.fetch_add(units, SeqCst);
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
                share: WHOLE,
            };
            let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let current = loop {
                if let Some((_, current)) = self.read() {
                    // Past its reset, the current report stands for the whole limit.
                    break match current {
                        Some(current) if now >= current.reset => self.roll(&current, now, period),
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
            let mut accounts = self.accounts();
            accounts.window_mine = accounts.window_mine.saturating_add(counted);
            if let Some(limit) = window.limit {
                let lowest = accounts
                    .window_lowest
                    .map_or(remaining, |(l, _)| l.min(remaining));
                accounts.window_lowest = Some((lowest, limit));
            }
            if tighter {
                // What the provider counted since the previous report, less this call: what
                // others spent, at the pace they spent it.
                let sent = self.sent.load(SeqCst);
                let in_flight_now = in_flight(self.word.load(SeqCst));
                if let Some(previous) = accounts.previous.filter(|_| current.is_some()) {
                    // This process's calls that can have landed between the two reports:
                    // those out at the previous one and those sent since.
                    let mine = sent
                        .saturating_sub(previous.sent)
                        .saturating_add(previous.in_flight);
                    let others = previous
                        .remaining
                        .saturating_sub(remaining)
                        .saturating_sub(mine);
                    let elapsed = now.saturating_sub(previous.at).max(1_000_000);
                    report.others_per_second = scale(others, 1_000_000_000, elapsed);
                }
                accounts.previous = Some(Previous {
                    remaining,
                    at: now,
                    sent,
                    // The reporting call is counted in this report.
                    in_flight: in_flight_now.saturating_sub(counted),
                });
                report.share = accounts.share();
                drop(accounts);
                self.write(Some(report));
            }
        }
        self.release(counted);
    }

    /// Closes the window `ended` in the accounts, and returns the report the next one
    /// starts from. The caller holds `writer`.
    fn roll(&self, ended: &Report, now: u64, period: u64) -> Option<Report> {
        let mut accounts = self.accounts();
        accounts.roll(
            ended,
            self.sent.load(SeqCst),
            in_flight(self.word.load(SeqCst)),
            self.usage_correction.swap(0, SeqCst),
        );
        ended.rolled(now, period, accounts.share())
    }

    /// A call used `debit` units beyond its reservation and `refund` fewer: what this
    /// process spent is its real usage, not its reservations.
    pub(crate) fn correct_usage(&self, debit: u64, refund: u64) {
        let delta = i64::try_from(debit)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(refund).unwrap_or(i64::MAX));
        if delta != 0 {
            self.usage_correction.fetch_add(delta, SeqCst);
        }
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
