//! Where budgets are counted: behind [`BudgetStore`], in-process by default.

use std::future::{Future, Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One budget a call counts against: which budget, for which value of its scope, in which
/// window, how much.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Line {
    /// The budget's index among the layer's budgets.
    pub budget: usize,
    /// The scope's value (a key's name, a user id; empty for the global scope).
    pub value: Arc<str>,
    /// The window's index (hours, days or months since the epoch; 0 for a lifetime).
    pub window: u64,
    /// The amount, in the budget's unit (tokens, or nano-dollars).
    pub amount: u64,
    /// The budget's limit per window, in the same unit.
    pub limit: u64,
}

impl Line {
    /// `amount` of `budget` for `value` in `window`, within `limit`.
    pub fn new(budget: usize, value: Arc<str>, window: u64, amount: u64, limit: u64) -> Self {
        Self {
            budget,
            value,
            window,
            amount,
            limit,
        }
    }
}

/// A reservation the store refused: the line that did not fit and what its budget had used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refused {
    /// The index of the line, in the slice given to [`BudgetStore::reserve`].
    pub line: usize,
    /// What the budget had used in the window (reserved and settled).
    pub used: u64,
    /// The store could not be asked and is set to refuse rather than guess (a shared
    /// store that fails closed); `line` and `used` mean nothing then.
    pub unavailable: bool,
}

impl Refused {
    /// Line `line` did not fit: its budget had used `used`.
    pub const fn over(line: usize, used: u64) -> Self {
        Self {
            line,
            used,
            unavailable: false,
        }
    }

    /// The store could not be asked.
    pub const fn unavailable() -> Self {
        Self {
            line: 0,
            used: 0,
            unavailable: true,
        }
    }
}

/// The counters behind the budget layer.
///
/// A store adds reservations all or nothing, settles them with what was used, and answers
/// what a budget has used. Reserving may be asynchronous (a shared store asks a server);
/// settling never waits (a shared store finishes it in the background), so that a stream
/// dropped by its caller settles in `Drop`.
pub trait BudgetStore: Send + Sync + 'static {
    /// The future of a reservation.
    type Reserve: Future<Output = Result<(), Refused>> + Send + Unpin + 'static;

    /// Adds each line's amount to its budget's use in its window, unless one of them would
    /// pass its limit: then adds nothing and says which.
    fn reserve(&self, lines: &[Line]) -> Self::Reserve;

    /// Replaces `line`'s reserved amount by `used`. When `line.window` is over (the call
    /// ended in the next window), `used` counts in `now_window`. Returns what the budget has
    /// used after, when the store knows it at once.
    fn settle(&self, line: &Line, used: u64, now_window: u64) -> Option<u64>;

    /// What `budget` has used for `value` in `window`.
    fn used(&self, budget: usize, value: &str, window: u64) -> u64;

    /// Marks alert `mark` (a small index) as sent for `budget`/`value` in `window`; true the
    /// first time only, so each alert goes out once per window.
    fn first_alert(&self, budget: usize, value: &str, window: u64, mark: u32) -> bool;

    /// Calls `send` if alert `mark` has not gone out for `budget`/`value` in `window`, over
    /// every process that shares the store. A shared store may decide after a round trip,
    /// in the background; by default, [`first_alert`](Self::first_alert) decides at once.
    fn alert_once(
        &self,
        budget: usize,
        value: &str,
        window: u64,
        mark: u32,
        send: Box<dyn FnOnce() + Send>,
    ) {
        if self.first_alert(budget, value, window, mark) {
            send();
        }
    }
}

/// Budgets counted in this process: one atomic word per budget and scope value, updated
/// by compare-and-swap, in a lock-free map (no lock to read or to count).
///
/// A word holds the window (its index modulo 4,095) and the amount used in it (52 bits:
/// 4.5 × 10¹⁵ tokens, or $4.5M in nano-dollars), so rolling into a new window and adding
/// to it are one step. Values whose window is over are swept as new values arrive (every
/// 4,096 new values), so a budget per user does not grow without bound, and no value lives
/// long enough for its window to come round again; lifetime budgets are kept.
#[derive(Default)]
pub struct InMemoryBudgets {
    cells: papaya::HashMap<(usize, Arc<str>), Cell, foldhash::fast::RandomState>,
    /// The latest window each budget was seen in when a value was added.
    latest: papaya::HashMap<usize, AtomicU64, foldhash::fast::RandomState>,
    added: AtomicU64,
}

#[derive(Default)]
struct Cell {
    used: AtomicU64,
    alerted: AtomicU64,
}

/// A borrowed key, hashed as the owned `(usize, Arc<str>)` is.
#[derive(Hash)]
struct KeyRef<'a>(usize, &'a str);

impl papaya::Equivalent<(usize, Arc<str>)> for KeyRef<'_> {
    fn equivalent(&self, key: &(usize, Arc<str>)) -> bool {
        self.0 == key.0 && self.1 == &*key.1
    }
}

/// New values between two sweeps of the values whose window is over.
const SWEEP_EVERY: u64 = 4_096;

const TAG_BITS: u32 = 12;
const AMOUNT_BITS: u32 = 64 - TAG_BITS;
const AMOUNT_MAX: u64 = (1 << AMOUNT_BITS) - 1;
/// Tags run 1..=TAGS; 0 marks a word no window has written yet.
const TAGS: u64 = (1 << TAG_BITS) - 1;

fn tag(window: u64) -> u64 {
    window % TAGS + 1
}

fn pack(window_tag: u64, amount: u64) -> u64 {
    (window_tag << AMOUNT_BITS) | amount.min(AMOUNT_MAX)
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> AMOUNT_BITS, word & AMOUNT_MAX)
}

/// Whether window tag `stored` is later than `now` (another thread read the clock after
/// this one): up to half the tag space ahead counts as later.
fn later(stored: u64, now: u64) -> bool {
    let ahead = (stored + TAGS - now) % TAGS;
    stored != 0 && ahead != 0 && ahead < TAGS / 2
}

/// What a word holds for the window `now`: its tag and amount, or `now`'s tag and zero if
/// it holds an earlier window (or none).
fn current(word: u64, now: u64) -> (u64, u64) {
    let (stored, amount) = unpack(word);
    if stored == tag(now) || later(stored, tag(now)) {
        (stored, amount)
    } else {
        (tag(now), 0)
    }
}

impl InMemoryBudgets {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops what every budget `keep` refuses has counted (a budget no longer configured),
    /// freeing its values; the budgets kept are untouched.
    pub fn retain_budgets(&self, keep: impl Fn(usize) -> bool) {
        self.cells.pin().retain(|(budget, _), _| keep(*budget));
        self.latest.pin().retain(|budget, _| keep(*budget));
    }

    /// Runs `f` on the cell of `budget` and `value`, adding it (in `window`) if it is new.
    fn with_cell<R>(
        &self,
        budget: usize,
        value: &Arc<str>,
        window: u64,
        f: impl FnOnce(&Cell) -> R,
    ) -> R {
        let cells = self.cells.pin();
        if let Some(cell) = cells.get(&KeyRef(budget, value)) {
            return f(cell);
        }
        let result = f(cells.get_or_insert_with((budget, Arc::clone(value)), Cell::default));
        drop(cells);
        self.added_value(budget, window);
        result
    }

    /// Runs `f` on the cell of `budget` and `value`, if there is one.
    fn existing<R>(&self, budget: usize, value: &str, f: impl FnOnce(&Cell) -> R) -> Option<R> {
        self.cells.pin().get(&KeyRef(budget, value)).map(f)
    }

    /// A value was added in `window` of `budget`: notes the window, and now and then drops
    /// the values that count nothing.
    fn added_value(&self, budget: usize, window: u64) {
        let latest = self.latest.pin();
        latest
            .get_or_insert_with(budget, || AtomicU64::new(window))
            .fetch_max(window, Ordering::AcqRel);
        if self.added.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        // A word that holds an earlier window than its budget's latest counts nothing
        // (nor do its alert marks): dropping it changes no budget. Lifetime budgets stay in
        // window 0 and are never dropped.
        self.cells.pin().retain(|(budget, _), cell| {
            let Some(now) = latest.get(budget).map(|w| tag(w.load(Ordering::Acquire))) else {
                return true;
            };
            let live = |word: u64| {
                let (stored, _) = unpack(word);
                stored == now || later(stored, now)
            };
            live(cell.used.load(Ordering::Acquire)) || live(cell.alerted.load(Ordering::Acquire))
        });
    }

    /// Adds `amount` within `limit`; on refusal, what was used.
    fn try_add(cell: &Cell, window: u64, amount: u64, limit: u64) -> Result<(), u64> {
        let mut word = cell.used.load(Ordering::Acquire);
        loop {
            let (stored, used) = current(word, window);
            let after = used.saturating_add(amount);
            if after > limit.min(AMOUNT_MAX) {
                return Err(used);
            }
            match cell.used.compare_exchange_weak(
                word,
                pack(stored, after),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => word = seen,
            }
        }
    }

    /// Replaces `reserved` (made in `window`) by `used`; in the current window if `window`
    /// is over. Returns the amount after.
    fn adjust(cell: &Cell, window: u64, reserved: u64, used: u64, now_window: u64) -> u64 {
        let mut word = cell.used.load(Ordering::Acquire);
        loop {
            let (stored, amount) = current(word, now_window);
            let same_window = stored == tag(window) && tag(window) == tag(now_window);
            let after = if same_window {
                amount.saturating_sub(reserved).saturating_add(used)
            } else {
                // The reservation's window is over: what was used counts now.
                amount.saturating_add(used)
            };
            match cell.used.compare_exchange_weak(
                word,
                pack(stored, after),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return after.min(AMOUNT_MAX),
                Err(seen) => word = seen,
            }
        }
    }
}

impl BudgetStore for InMemoryBudgets {
    type Reserve = Ready<Result<(), Refused>>;

    fn reserve(&self, lines: &[Line]) -> Self::Reserve {
        for (index, line) in lines.iter().enumerate() {
            let added = self.with_cell(line.budget, &line.value, line.window, |cell| {
                Self::try_add(cell, line.window, line.amount, line.limit)
            });
            if let Err(used) = added {
                // All or none: take back what this call added so far.
                for line in &lines[..index] {
                    self.with_cell(line.budget, &line.value, line.window, |cell| {
                        Self::adjust(cell, line.window, line.amount, 0, line.window)
                    });
                }
                return ready(Err(Refused::over(index, used)));
            }
        }
        ready(Ok(()))
    }

    fn settle(&self, line: &Line, used: u64, now_window: u64) -> Option<u64> {
        Some(
            self.with_cell(line.budget, &line.value, now_window, |cell| {
                Self::adjust(cell, line.window, line.amount, used, now_window)
            }),
        )
    }

    fn used(&self, budget: usize, value: &str, window: u64) -> u64 {
        self.existing(budget, value, |cell| {
            let (stored, amount) = current(cell.used.load(Ordering::Acquire), window);
            if stored == tag(window) { amount } else { 0 }
        })
        .unwrap_or(0)
    }

    fn first_alert(&self, budget: usize, value: &str, window: u64, mark: u32) -> bool {
        self.existing(budget, value, |cell| {
            let bit = 1u64 << mark.min(AMOUNT_BITS - 1);
            let mut word = cell.alerted.load(Ordering::Acquire);
            loop {
                let (stored, marks) = current(word, window);
                if stored == tag(window) && marks & bit != 0 {
                    return false;
                }
                match cell.alerted.compare_exchange_weak(
                    word,
                    pack(tag(window), marks | bit),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return true,
                    Err(seen) => word = seen,
                }
            }
        })
        .unwrap_or(false)
    }
}

impl std::fmt::Debug for InMemoryBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBudgets")
            .field("values", &self.cells.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(budget: usize, window: u64, amount: u64, limit: u64) -> Line {
        Line {
            budget,
            value: Arc::from("k"),
            window,
            amount,
            limit,
        }
    }

    #[test]
    fn retain_budgets_clears_the_budgets_dropped_and_keeps_the_others() {
        let store = InMemoryBudgets::new();
        assert!(store.reserve(&[line(0, 0, 30, 100)]).into_inner().is_ok());
        assert!(store.reserve(&[line(1, 0, 40, 100)]).into_inner().is_ok());
        store.retain_budgets(|budget| budget == 1);
        assert_eq!(store.used(0, "k", 0), 0);
        assert_eq!(store.used(1, "k", 0), 40);
    }

    fn reserve(store: &InMemoryBudgets, lines: &[Line]) -> Result<(), Refused> {
        let mut future = store.reserve(lines);
        let waker = std::task::Waker::noop();
        match std::pin::Pin::new(&mut future).poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => unreachable!("in-memory reservations are ready"),
        }
    }

    #[test]
    fn reservations_are_all_or_none_and_settle_both_ways() {
        let store = InMemoryBudgets::new();
        let tokens = line(0, 7, 60, 100);
        let money = line(1, 7, 5, 10);
        assert_eq!(reserve(&store, &[tokens.clone(), money.clone()]), Ok(()));
        // The second line does not fit: the first is taken back.
        let refused = reserve(&store, &[line(0, 7, 30, 100), line(1, 7, 6, 10)]).unwrap_err();
        assert_eq!(refused, Refused::over(1, 5));
        assert_eq!(store.used(0, "k", 7), 60);
        // Used less than reserved: refunded; more: debited.
        assert_eq!(store.settle(&tokens, 20, 7), Some(20));
        assert_eq!(store.settle(&money, 9, 7), Some(9));
        assert_eq!(store.used(1, "k", 7), 9);
    }

    #[test]
    fn a_new_window_starts_empty_and_late_settlements_count_in_it() {
        let store = InMemoryBudgets::new();
        let old = line(0, 7, 90, 100);
        reserve(&store, std::slice::from_ref(&old)).unwrap();
        assert_eq!(store.used(0, "k", 8), 0);
        // The call ends in window 8: its 30 tokens count there, its reservation is gone.
        assert_eq!(store.settle(&old, 30, 8), Some(30));
        assert_eq!(store.used(0, "k", 8), 30);
        assert_eq!(store.used(0, "k", 7), 0);
        reserve(&store, &[line(0, 8, 70, 100)]).unwrap();
        assert!(reserve(&store, &[line(0, 8, 1, 100)]).is_err());
        // A later window whose tag is higher, or lower after wrapping, starts empty.
        for later in [9, 8 + 2_000, 8 + 4_094, 8 + 4_096] {
            assert_eq!(store.used(0, "k", later), 0, "window {later}");
        }
    }

    #[test]
    fn a_fresh_value_starts_in_the_window_it_is_first_used_in() {
        // Tags wrap: the first window a value is used in may have any tag.
        for window in [0, 1, 2_047, 2_048, 4_094, 4_095, 24_323] {
            let store = InMemoryBudgets::new();
            reserve(&store, &[line(0, window, 5, 10)]).unwrap();
            assert_eq!(store.used(0, "k", window), 5, "window {window}");
            assert_eq!(store.used(0, "k", window + 1), 0, "window {window} + 1");
            reserve(&store, &[line(0, window + 1, 10, 10)]).unwrap();
        }
    }

    #[test]
    fn values_whose_window_is_over_are_swept_and_lifetime_ones_kept() {
        let store = InMemoryBudgets::new();
        let named = |value: &str, line: Line| Line {
            value: Arc::from(value),
            ..line
        };
        // Budget 0 counts per window, budget 1 for a lifetime (window 0).
        reserve(&store, &[named("old", line(0, 7, 5, 10))]).unwrap();
        reserve(&store, &[named("kept", line(1, 0, 5, 10))]).unwrap();
        for i in 0..SWEEP_EVERY - 2 {
            reserve(&store, &[named(&format!("user-{i}"), line(0, 8, 1, 10))]).unwrap();
        }
        assert_eq!(
            store.cells.len() as u64,
            SWEEP_EVERY - 1,
            "window 7's value went"
        );
        assert_eq!(store.used(1, "kept", 0), 5);
        assert_eq!(store.used(0, "user-1", 8), 1);
    }

    #[test]
    fn an_alert_goes_out_once_per_window() {
        let store = InMemoryBudgets::new();
        reserve(&store, &[line(0, 3, 1, 10)]).unwrap();
        assert!(store.first_alert(0, "k", 3, 0));
        assert!(!store.first_alert(0, "k", 3, 0));
        assert!(store.first_alert(0, "k", 3, 1));
        assert!(store.first_alert(0, "k", 4, 0));
    }
}
