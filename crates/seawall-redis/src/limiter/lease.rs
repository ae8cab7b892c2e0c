//! Leases: units reserved on the server beyond one call, for this replica to admit the next
//! calls without a round trip.
//!
//! A reservation that misses the lease asks the server for its own units and up to
//! [`MAX_CALLS`] more calls of the same units (at most half the room left in any dimension,
//! and at most a [`SHARE`]th of each configured limit). The server counts them as taken and
//! in flight, so the sum over every replica still never passes a limit; what a lease holds
//! unused is given back when it ends ([`LIFETIME`] after it was granted, or when a newer
//! lease replaces it). Limits too small to spare that much are reserved a call at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use seawall::rate_limit::LimiterState;

use super::Core;

/// At most this many calls' units are leased beyond the call that asks.
const MAX_CALLS: u64 = 64;
/// A lease takes at most this fraction of a configured limit (1/32), so that replicas
/// holding leases leave most of a limit to be shared call by call.
const SHARE: u64 = 32;
/// Fewer calls than this are not worth a lease: the call is reserved alone.
const MIN_CALLS: u64 = 2;
/// How long a lease's unused units are held before they go back to the server.
pub(super) const LIFETIME: Duration = Duration::from_millis(200);

/// Units this replica may admit without asking, per dimension.
#[derive(Debug, Default)]
pub(super) struct Lease {
    credit: [AtomicU64; 4],
}

/// The lease in force, if any, and whether a reservation is asking for the next one.
#[derive(Debug, Default)]
pub(super) struct Leases {
    current: ArcSwapOption<Lease>,
    asking: AtomicBool,
}

impl Leases {
    /// Takes `units` from the lease in force, in every dimension or in none.
    pub(super) fn take(&self, units: [u64; 4]) -> bool {
        let Some(lease) = self.current.load_full() else {
            return false;
        };
        for (i, &need) in units.iter().enumerate() {
            if need == 0 {
                continue;
            }
            let taken = lease.credit[i].fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(need)
            });
            if taken.is_err() {
                for (slot, &given) in lease.credit.iter().zip(&units).take(i) {
                    slot.fetch_add(given, Ordering::AcqRel);
                }
                return false;
            }
        }
        true
    }

    /// The units the lease in force still holds.
    pub(super) fn credit(&self) -> [u64; 4] {
        self.current.load().as_ref().map_or([0; 4], |lease| {
            lease
                .credit
                .each_ref()
                .map(|slot| slot.load(Ordering::Acquire))
        })
    }

    /// Claims the right to ask for the next lease: one reservation at a time asks.
    pub(super) fn start_asking(&self) -> bool {
        !self.asking.swap(true, Ordering::AcqRel)
    }

    pub(super) fn done_asking(&self) {
        self.asking.store(false, Ordering::Release);
    }
}

/// How many more calls of `units` to ask a lease for, under `head`'s configured limits
/// (`[limit, period]` per dimension from index 2); 0 for no lease. A dimension the call
/// weighs in must have a configured limit: one bounded only by the provider's reports may
/// have none known yet.
pub(super) fn calls_for(head: &[i64; 10], units: [u64; 4]) -> u64 {
    let mut calls = MAX_CALLS;
    for (i, &need) in units.iter().enumerate() {
        if need == 0 {
            continue;
        }
        let (limit, per) = (head[2 + 2 * i], head[3 + 2 * i]);
        if per <= 0 {
            return 0;
        }
        let limit = u64::try_from(limit).unwrap_or(0);
        calls = calls.min(limit / SHARE / need);
    }
    if calls < MIN_CALLS { 0 } else { calls }
}

impl Core {
    /// Ends the lease in force when it holds more than the provider says is left in a
    /// dimension (`remaining`, where reported): the provider's account has less room than
    /// the lease was granted from. Says whether it did.
    pub(super) fn end_lease_beyond(self: &Arc<Self>, remaining: [Option<u64>; 4]) -> bool {
        let credit = self.leases.credit();
        let beyond = remaining
            .iter()
            .zip(credit)
            .any(|(left, credit)| left.is_some_and(|left| credit > left));
        if beyond && let Some(lease) = self.leases.current.swap(None) {
            self.give_back(lease);
            return true;
        }
        false
    }

    /// Puts a lease of `credit` in force, less what this replica's own latest provider
    /// reports say is not there (a report may not have reached the server yet): that part
    /// goes back at once.
    pub(super) fn grant_within_reports(self: &Arc<Self>, credit: [u64; 4]) {
        let known = self.local.capacity(tokio::time::Instant::now());
        let reported = [
            known.requests,
            known.tokens,
            known.input_tokens,
            known.output_tokens,
        ];
        let kept: [u64; 4] =
            std::array::from_fn(|i| reported[i].map_or(credit[i], |left| credit[i].min(left)));
        let excess: [u64; 4] = std::array::from_fn(|i| credit[i] - kept[i]);
        if excess != [0; 4] {
            self.give_back_units(excess);
        }
        if kept
            .iter()
            .zip(&credit)
            .any(|(kept, credit)| *credit > 0 && *kept == 0)
        {
            if kept != [0; 4] {
                self.give_back_units(kept);
            }
            return;
        }
        self.grant(kept);
    }

    /// Puts a lease of `credit` in force; the one it replaces gives back what it holds.
    fn grant(self: &Arc<Self>, credit: [u64; 4]) {
        let lease = Arc::new(Lease {
            credit: credit.map(AtomicU64::new),
        });
        if let Some(replaced) = self.leases.current.swap(Some(Arc::clone(&lease))) {
            self.give_back(replaced);
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(LIFETIME).await;
            let ended = this
                .leases
                .current
                .compare_and_swap(&Some(Arc::clone(&lease)), None::<Arc<Lease>>);
            if ended.as_ref().is_some_and(|was| Arc::ptr_eq(was, &lease)) {
                drop(ended);
                this.give_back(lease);
            }
        });
    }

    /// Sends back what a lease out of force still holds, once no reservation is taking
    /// from it.
    fn give_back(self: &Arc<Self>, lease: Arc<Lease>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            // A reservation that loaded the lease before it went out of force holds it for
            // a few instructions.
            while Arc::strong_count(&lease) > 1 {
                tokio::task::yield_now().await;
            }
            let left = lease
                .credit
                .each_ref()
                .map(|slot| slot.swap(0, Ordering::AcqRel));
            if left != [0; 4] {
                this.give_back_units(left);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(requests: i64, tokens: i64) -> [i64; 10] {
        let minute = 60_000_000;
        [0, minute, requests, minute, tokens, minute, 0, 0, 0, 0]
    }

    #[test]
    fn a_lease_takes_a_small_share_of_a_configured_limit() {
        // 1/32 of 3,200 requests is 100: capped at 64 calls.
        assert_eq!(calls_for(&head(3_200, 0), [1, 0, 0, 0]), 64);
        // 1/32 of 640 is 20.
        assert_eq!(calls_for(&head(640, 0), [1, 0, 0, 0]), 20);
        // Tokens bound it too: 1/32 of 320,000 tokens is 10,000, 10 calls of 1,000.
        assert_eq!(calls_for(&head(1 << 40, 320_000), [1, 1_000, 0, 0]), 10);
    }

    #[test]
    fn limits_too_small_to_share_are_reserved_call_by_call() {
        assert_eq!(calls_for(&head(10, 0), [1, 0, 0, 0]), 0);
        // Tokens weighed with no configured token limit: only the provider bounds them.
        assert_eq!(calls_for(&head(1 << 40, 0), [1, 500, 0, 0]), 0);
        assert_eq!(calls_for(&head(63, 0), [1, 0, 0, 0]), 0);
        assert_eq!(calls_for(&head(1 << 40, 1_000), [1, 500, 0, 0]), 0);
    }

    #[test]
    fn a_lease_gives_in_every_dimension_or_in_none() {
        let leases = Leases::default();
        assert!(!leases.take([1, 0, 0, 0]), "no lease yet");
        leases.current.store(Some(Arc::new(Lease {
            credit: [3, 100, 0, 0].map(AtomicU64::new),
        })));
        assert!(leases.take([1, 60, 0, 0]));
        // Requests are left, tokens are not: nothing is taken.
        assert!(!leases.take([1, 60, 0, 0]));
        assert_eq!(leases.credit(), [2, 40, 0, 0]);
        assert!(leases.take([1, 40, 0, 0]));
        assert!(leases.take([1, 0, 0, 0]));
        assert!(!leases.take([1, 0, 0, 0]));
        assert_eq!(leases.credit(), [0; 4]);
    }
}
