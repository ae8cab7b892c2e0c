//! A lock-free GCRA cell: one atomic "theoretical arrival time" per limited dimension.

use std::sync::atomic::{AtomicU64, Ordering};

/// One limit (so many units per window) with continuous refill, as a single atomic.
///
/// Times are nanoseconds from the owning state's base instant. The cell admits `n` units
/// at `now` when, after adding their cost to the theoretical arrival time (TAT), the TAT is
/// at most one window ahead of `now`: the full limit can be spent at once, and it refills
/// continuously at `limit / window`.
///
/// Every operation is a compare-and-swap loop; nothing here locks.
#[derive(Debug)]
pub(crate) struct GcraCell {
    tat: AtomicU64,
    limit: u64,
    window: u64,
}

impl GcraCell {
    /// A full cell: `limit` units per `window` nanoseconds.
    pub(crate) fn new(limit: u64, window: u64) -> Self {
        Self {
            tat: AtomicU64::new(0),
            limit,
            window,
        }
    }

    /// The time `units` take to refill, rounded up so the cell never admits more than its
    /// limit. A zero limit makes every unit infinitely expensive.
    pub(crate) fn cost(&self, units: u64) -> u64 {
        if units == 0 {
            return 0;
        }
        if self.limit == 0 {
            return u64::MAX;
        }
        let cost = (u128::from(units) * u128::from(self.window)).div_ceil(u128::from(self.limit));
        u64::try_from(cost).unwrap_or(u64::MAX)
    }

    /// The wait before `units` would be admitted at `now` if `ahead` units were reserved
    /// first. Zero when they would be admitted now. Reserves nothing.
    pub(crate) fn wait_for(&self, now: u64, ahead: u64, units: u64) -> u64 {
        let tat = self.tat.load(Ordering::Acquire).max(now);
        let new_tat = tat
            .saturating_add(self.cost(ahead))
            .saturating_add(self.cost(units));
        new_tat.saturating_sub(self.window).saturating_sub(now)
    }

    /// Reserves `units` at `now`, or returns the wait (in nanoseconds) after which they
    /// would fit.
    pub(crate) fn try_reserve(&self, now: u64, units: u64) -> Result<(), u64> {
        let cost = self.cost(units);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let new_tat = tat.max(now).saturating_add(cost);
            let earliest = new_tat.saturating_sub(self.window);
            if earliest > now {
                return Err(earliest - now);
            }
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Charges `units` that were used beyond the reservation. Never refused: the units are
    /// spent already; later calls wait longer.
    pub(crate) fn debit(&self, now: u64, units: u64) {
        let cost = self.cost(units);
        self.update(|tat| tat.max(now).saturating_add(cost));
    }

    /// Gives back `units` that were reserved and not used.
    pub(crate) fn refund(&self, units: u64) {
        let cost = self.cost(units);
        self.update(|tat| tat.saturating_sub(cost));
    }

    /// The units that could be admitted at `now`.
    pub(crate) fn available(&self, now: u64) -> u64 {
        if self.window == 0 {
            return self.limit;
        }
        let busy = self.tat.load(Ordering::Acquire).max(now) - now;
        let free = self.window.saturating_sub(busy);
        u64::try_from(u128::from(free) * u128::from(self.limit) / u128::from(self.window))
            .unwrap_or(u64::MAX)
    }

    /// The time until the cell is full again.
    pub(crate) fn time_to_full(&self, now: u64) -> u64 {
        self.tat.load(Ordering::Acquire).saturating_sub(now)
    }

    fn update(&self, f: impl Fn(u64) -> u64) {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            match self
                .tat
                .compare_exchange_weak(tat, f(tat), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GcraCell;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn spends_the_whole_limit_at_once_then_refills_continuously() {
        let cell = GcraCell::new(100, 60 * SECOND);
        assert_eq!(cell.try_reserve(0, 100), Ok(()));
        // One unit refills every 0.6 s.
        assert_eq!(cell.try_reserve(0, 1), Err(600_000_000));
        assert_eq!(cell.try_reserve(600_000_000, 1), Ok(()));
        assert_eq!(cell.available(600_000_000), 0);
        assert_eq!(cell.available(60 * SECOND + 600_000_000), 100);
    }

    #[test]
    fn refund_and_debit_move_capacity_both_ways() {
        let cell = GcraCell::new(1000, 60 * SECOND);
        cell.try_reserve(0, 800).unwrap();
        assert_eq!(cell.available(0), 200);
        cell.refund(300);
        assert_eq!(cell.available(0), 500);
        cell.debit(0, 400);
        assert_eq!(cell.available(0), 100);
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::GcraCell;

        const WINDOW: u64 = 60 * super::SECOND;
        const LIMIT: u64 = 1_000;

        #[derive(Debug, Clone)]
        enum Op {
            Advance(u64),
            Reserve(u64),
            Refund(u64),
            Debit(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..WINDOW / 4).prop_map(Op::Advance),
                (1..=LIMIT).prop_map(Op::Reserve),
                (0..=LIMIT).prop_map(Op::Refund),
                (0..=LIMIT / 4).prop_map(Op::Debit),
            ]
        }

        proptest! {
            /// Whatever the order of calls: the cell never holds more than its limit, and
            /// what it admitted (less what came back) never passes the limit plus the
            /// refill of the time elapsed.
            #[test]
            fn never_admits_past_capacity_and_refunds_never_overfill(ops in prop::collection::vec(op(), 1..200)) {
                let cell = GcraCell::new(LIMIT, WINDOW);
                let (mut now, mut held, mut admitted) = (0u64, 0u64, 0u64);
                for op in ops {
                    match op {
                        Op::Advance(dt) => now += dt,
                        Op::Reserve(n) => {
                            let before = cell.available(now);
                            match cell.try_reserve(now, n) {
                                Ok(()) => {
                                    prop_assert!(n <= before, "admitted {n} with {before} free");
                                    held += n;
                                    admitted += n;
                                }
                                Err(wait) => prop_assert!(wait > 0),
                            }
                        }
                        Op::Refund(n) => {
                            let n = n.min(held);
                            cell.refund(n);
                            held -= n;
                            admitted -= n;
                        }
                        // Units used beyond a reservation: charged, never refused, and they
                        // only make later admissions wait longer.
                        Op::Debit(n) => cell.debit(now, n),
                    }
                    prop_assert!(cell.available(now) <= LIMIT);
                    let refill = u64::try_from(u128::from(now) * u128::from(LIMIT) / u128::from(WINDOW)).unwrap();
                    prop_assert!(admitted <= LIMIT + refill + 1, "{admitted} > {LIMIT} + {refill}");
                }
            }
        }
    }
}
