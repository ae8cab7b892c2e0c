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
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwapOption;

use seawall::rate_limit::{LimiterState, Weight};

use super::Core;
use crate::lease::{Credit, LIFETIME, MAX_CALLS, MIN_CALLS, SHARE};

/// Units this replica may admit without asking, per dimension.
#[derive(Debug)]
pub(super) struct Lease {
    credit: [Credit; 4],
    /// What it was granted: below half of it, the next lease is asked for.
    granted: [u64; 4],
}

impl Lease {
    fn new(credit: [u64; 4]) -> Self {
        Self {
            credit: credit.map(Credit::new),
            granted: credit,
        }
    }

    /// Whether it holds less than half of what it was granted in a dimension.
    fn running_low(&self) -> bool {
        self.credit()
            .iter()
            .zip(&self.granted)
            .any(|(left, granted)| *granted > 0 && left * 2 < *granted)
    }

    /// Takes `units` in every dimension or in none. `Err` holds units taken from a
    /// dimension that could not be put back because the lease was closed meanwhile: the
    /// caller gives them back to the server.
    fn take(&self, units: [u64; 4]) -> Result<bool, [u64; 4]> {
        for (i, &need) in units.iter().enumerate() {
            if need == 0 || self.credit[i].take(need) {
                continue;
            }
            let mut orphans = [0; 4];
            for (j, &given) in units.iter().enumerate().take(i) {
                if given > 0 && !self.credit[j].put(given) {
                    orphans[j] = given;
                }
            }
            return if orphans == [0; 4] {
                Ok(false)
            } else {
                Err(orphans)
            };
        }
        Ok(true)
    }

    /// Puts the lease out of force; returns what it held.
    fn close(&self) -> [u64; 4] {
        self.credit.each_ref().map(Credit::close)
    }

    fn credit(&self) -> [u64; 4] {
        self.credit.each_ref().map(Credit::get)
    }
}

/// The lease in force, if any, and whether a reservation is asking for the next one.
#[derive(Debug, Default)]
pub(super) struct Leases {
    current: ArcSwapOption<Lease>,
    asking: AtomicBool,
}

impl Leases {
    /// Takes `units` from the lease in force, in every dimension or in none (see
    /// [`Lease::take`]).
    pub(super) fn take(&self, units: [u64; 4]) -> Result<bool, [u64; 4]> {
        match &*self.current.load() {
            Some(lease) => lease.take(units),
            None => Ok(false),
        }
    }

    /// The units the lease in force still holds.
    pub(super) fn credit(&self) -> [u64; 4] {
        self.current
            .load()
            .as_ref()
            .map_or([0; 4], |lease| lease.credit())
    }

    /// Whether the lease in force holds less than half of what it was granted.
    pub(super) fn running_low(&self) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|lease| lease.running_low())
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
/// (`[limit, period]` per dimension from index 2); 0 for no lease. The configured limits
/// size the lease, so at least one dimension the call weighs in must have one. A dimension
/// bounded only by the provider's reports is held to half the room its report leaves
/// when the lease is granted, and a report below what the lease holds ends it.
pub(super) fn calls_for(head: &[i64; 10], units: [u64; 4]) -> u64 {
    let mut calls = None::<u64>;
    for (i, &need) in units.iter().enumerate() {
        let (limit, per) = (head[2 + 2 * i], head[3 + 2 * i]);
        if need == 0 || per <= 0 {
            continue;
        }
        let limit = u64::try_from(limit).unwrap_or(0);
        calls = Some(calls.unwrap_or(MAX_CALLS).min(limit / SHARE / need));
    }
    match calls {
        Some(calls) if calls >= MIN_CALLS => calls,
        _ => 0,
    }
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
            self.give_back(&lease);
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
        let lease = Arc::new(Lease::new(credit));
        if let Some(replaced) = self.leases.current.swap(Some(Arc::clone(&lease))) {
            self.give_back(&replaced);
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
                this.give_back(&lease);
            }
        });
    }

    /// Asks for the next lease before the one in force runs out, so that the calls meanwhile
    /// need no round trip: calls of `weight`, as the call just admitted from the lease.
    pub(super) fn renew(self: &Arc<Self>, weight: &Weight) {
        let units = super::units(weight);
        let calls = calls_for(&self.head, units);
        if calls == 0 || !self.leases.start_asking() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut args = units.map(super::arg).to_vec();
            args.push(super::arg(calls));
            if let Ok(reply) = this.call("lease", &args).await
                && let Some((true, _)) = this.remember(&reply)
            {
                // The script reserves one call's units besides the lease; no call waits on
                // them here, so they are part of the lease.
                let leased = super::leased(&reply) + 1;
                this.grant_within_reports(units.map(|units| units.saturating_mul(leased)));
            }
            this.leases.done_asking();
        });
    }

    /// Closes a lease out of force and sends back what it still holds.
    fn give_back(self: &Arc<Self>, lease: &Lease) {
        let left = lease.close();
        if left != [0; 4] {
            self.give_back_units(left);
        }
    }
}

impl crate::client::LeaseHolder for Core {
    fn give_back_all(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Some(lease) = self.leases.current.swap(None) {
                let left = lease.close();
                self.pending_give_back(left);
            }
            self.send_now().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-minute limits; 0 for none.
    fn head(requests: i64, tokens: i64) -> [i64; 10] {
        let per = |limit: i64| if limit > 0 { 60_000_000 } else { 0 };
        [
            0,
            60_000_000,
            requests,
            per(requests),
            tokens,
            per(tokens),
            0,
            0,
            0,
            0,
        ]
    }

    #[test]
    fn a_lease_takes_a_small_share_of_a_configured_limit() {
        // 1/32 of 3,200 requests is 100: capped at 64 calls.
        assert_eq!(calls_for(&head(3_200, 0), [1, 0, 0, 0]), 64);
        // 1/32 of 640 is 20.
        assert_eq!(calls_for(&head(640, 0), [1, 0, 0, 0]), 20);
        // Tokens bound it too: 1/32 of 320,000 tokens is 10,000, 10 calls of 1,000.
        assert_eq!(calls_for(&head(1 << 40, 320_000), [1, 1_000, 0, 0]), 10);
        // Input and output tokens with no limit of their own do not stop a lease.
        assert_eq!(calls_for(&head(3_200, 0), [1, 1_000, 600, 400]), 64);
    }

    #[test]
    fn limits_too_small_to_share_are_reserved_call_by_call() {
        assert_eq!(calls_for(&head(10, 0), [1, 0, 0, 0]), 0);
        // No configured limit at all: only the provider's reports bound the calls.
        assert_eq!(calls_for(&head(0, 0), [1, 500, 500, 0]), 0);
        assert_eq!(calls_for(&head(63, 0), [1, 0, 0, 0]), 0);
        assert_eq!(calls_for(&head(1 << 40, 1_000), [1, 500, 0, 0]), 0);
    }

    #[test]
    fn a_lease_gives_in_every_dimension_or_in_none() {
        let leases = Leases::default();
        assert_eq!(leases.take([1, 0, 0, 0]), Ok(false), "no lease yet");
        leases
            .current
            .store(Some(Arc::new(Lease::new([3, 100, 0, 0]))));
        assert_eq!(leases.take([1, 60, 0, 0]), Ok(true));
        // Requests are left, tokens are not: nothing is taken.
        assert_eq!(leases.take([1, 60, 0, 0]), Ok(false));
        assert_eq!(leases.credit(), [2, 40, 0, 0]);
        assert_eq!(leases.take([1, 40, 0, 0]), Ok(true));
        assert_eq!(leases.take([1, 0, 0, 0]), Ok(true));
        assert_eq!(leases.take([1, 0, 0, 0]), Ok(false));
        assert_eq!(leases.credit(), [0; 4]);
    }

    #[test]
    fn a_closed_lease_gives_nothing_and_what_it_held_goes_back_once() {
        let lease = Lease::new([5, 500, 0, 0]);
        assert_eq!(lease.take([1, 100, 0, 0]), Ok(true));
        assert_eq!(lease.close(), [4, 400, 0, 0]);
        assert_eq!(lease.close(), [0; 4], "closed once");
        assert_eq!(lease.take([1, 100, 0, 0]), Ok(false));
        assert_eq!(lease.credit(), [0; 4]);
        // A reservation that took requests before the lease closed, and found its tokens
        // closed, cannot put the requests back: they go back to the server.
        let lease = Lease::new([5, 50, 0, 0]);
        assert!(lease.credit[0].take(1));
        assert_eq!(lease.close(), [4, 50, 0, 0]);
        assert!(!lease.credit[0].put(1));
    }
}
