//! What the limiters' and the budgets' leases share: their size and life, and a lease's
//! credit in one dimension, which a lease out of force closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// At most this many calls' worth is leased beyond the call that asks.
pub(crate) const MAX_CALLS: u64 = 64;
/// A lease takes at most this fraction of a limit (1/32), so that replicas holding leases
/// leave most of a limit to be shared call by call.
pub(crate) const SHARE: u64 = 32;
/// Fewer calls than this are not worth a lease: the call is reserved alone.
pub(crate) const MIN_CALLS: u64 = 2;
/// How long a lease's unused credit is held before it goes back to the server.
pub(crate) const LIFETIME: Duration = Duration::from_millis(200);

/// A closed credit: nothing can be taken from it or put back into it.
const CLOSED: u64 = u64::MAX;

/// What a lease still holds in one dimension.
#[derive(Debug)]
pub(crate) struct Credit(AtomicU64);

impl Credit {
    pub(crate) fn new(units: u64) -> Self {
        Self(AtomicU64::new(units.min(CLOSED - 1)))
    }

    /// Takes `units`, if it holds them and is open.
    pub(crate) fn take(&self, units: u64) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                if left == CLOSED {
                    None
                } else {
                    left.checked_sub(units)
                }
            })
            .is_ok()
    }

    /// Puts `units` back, if it is open.
    pub(crate) fn put(&self, units: u64) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                (left != CLOSED).then(|| left.saturating_add(units).min(CLOSED - 1))
            })
            .is_ok()
    }

    /// Empties it, open; returns what it held.
    pub(crate) fn empty(&self) -> u64 {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                (left != CLOSED && left > 0).then_some(0)
            })
            .unwrap_or(0)
    }

    /// Closes it; returns what it held (nothing the second time).
    pub(crate) fn close(&self) -> u64 {
        match self.0.swap(CLOSED, Ordering::AcqRel) {
            CLOSED => 0,
            left => left,
        }
    }

    /// What it holds (nothing once closed).
    pub(crate) fn get(&self) -> u64 {
        match self.0.load(Ordering::Acquire) {
            CLOSED => 0,
            left => left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_credit_gives_nothing_and_takes_nothing_back() {
        let credit = Credit::new(5);
        assert!(credit.take(2));
        assert!(!credit.take(4));
        assert!(credit.put(1));
        assert_eq!(credit.get(), 4);
        assert_eq!(credit.close(), 4);
        assert_eq!(credit.close(), 0, "closed once");
        assert!(!credit.take(0) || credit.get() == 0);
        assert!(!credit.put(1));
        assert_eq!(credit.empty(), 0);
        assert_eq!(credit.get(), 0);
    }
}
