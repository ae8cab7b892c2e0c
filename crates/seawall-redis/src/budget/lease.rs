//! Budget leases: an amount reserved in Redis beyond one call, for this replica to reserve
//! the next calls of the same budget, value and window without a round trip.
//!
//! A reservation whose lines miss their leases asks the server for its amounts and, per
//! line, up to [`MAX_CALLS`] more of its amount (at most a [`SHARE`]th of the limit and half
//! the room left after the call). The server counts a lease as spent, so the replicas
//! together never pass a limit. A call's settlement puts what it did not use back into the
//! lease of its line (or takes what it used beyond its reservation from it), with no round
//! trip. What a lease holds when it ends ([`LIFETIME`] after it was granted, or when the
//! next lease of its line replaces it) goes back to the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use seawall::budget::Line;

pub(super) use crate::lease::LIFETIME;
use crate::lease::{Credit, MAX_CALLS, MIN_CALLS, SHARE};

/// An amount this replica may reserve without asking.
#[derive(Debug)]
pub(super) struct Lease {
    /// Tells a lease from the one that replaced it under the same key.
    id: u64,
    credit: Credit,
}

/// A lease's key: budget, value and window.
pub(super) type Key = (usize, Arc<str>, u64);

/// A borrowed key, hashed as the owned one is.
#[derive(Hash)]
struct KeyRef<'a>(usize, &'a str, u64);

impl papaya::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.1 == &*key.1 && self.2 == key.2
    }
}

fn key_of(line: &Line) -> KeyRef<'_> {
    KeyRef(line.budget, &line.value, line.window)
}

/// The leases in force.
#[derive(Default)]
pub(super) struct Leases {
    map: papaya::HashMap<Key, Lease, foldhash::fast::RandomState>,
    next_id: AtomicU64,
}

/// The most lines a reservation from leases takes (more go to the server).
const MAX_LINES: usize = 8;

impl Leases {
    /// Takes every line's amount from its lease, or none; `Err` holds amounts that could
    /// not be put back because their lease ended meanwhile, to be given back to the server.
    pub(super) fn take(&self, lines: &[Line]) -> Result<bool, Vec<(Line, u64)>> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Ok(false);
        }
        let map = self.map.pin();
        for (index, line) in lines.iter().enumerate() {
            if map
                .get(&key_of(line))
                .is_some_and(|lease| lease.credit.take(line.amount))
            {
                continue;
            }
            let mut orphans = Vec::new();
            for line in &lines[..index] {
                let put = map
                    .get(&key_of(line))
                    .is_some_and(|lease| lease.credit.put(line.amount));
                if !put && line.amount > 0 {
                    orphans.push((line.clone(), line.amount));
                }
            }
            return if orphans.is_empty() {
                Ok(false)
            } else {
                Err(orphans)
            };
        }
        Ok(true)
    }

    /// Puts `amount` reserved and not used back into `line`'s lease; false when it has none.
    pub(super) fn put(&self, line: &Line, amount: u64) -> bool {
        self.map
            .pin()
            .get(&key_of(line))
            .is_some_and(|lease| lease.credit.put(amount))
    }

    /// Takes `amount` used beyond a reservation from `line`'s lease; false when it cannot.
    pub(super) fn cover(&self, line: &Line, amount: u64) -> bool {
        self.map
            .pin()
            .get(&key_of(line))
            .is_some_and(|lease| lease.credit.take(amount))
    }

    /// What the lease of `budget`, `value` and `window` holds.
    pub(super) fn credit(&self, budget: usize, value: &str, window: u64) -> u64 {
        self.map
            .pin()
            .get(&KeyRef(budget, value, window))
            .map_or(0, |lease| lease.credit.get())
    }

    /// Empties `line`'s lease, for the server to take its amount back in the script that
    /// asks for the next one.
    pub(super) fn surrender(&self, line: &Line) -> u64 {
        self.map
            .pin()
            .get(&key_of(line))
            .map_or(0, |lease| lease.credit.empty())
    }

    /// Puts a lease of `credit` in force for `line`; returns its id and what the lease it
    /// replaced still held (for the server).
    pub(super) fn grant(&self, line: &Line, credit: u64) -> (u64, u64) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lease = Lease {
            id,
            credit: Credit::new(credit),
        };
        let map = self.map.pin();
        let replaced = map
            .insert((line.budget, Arc::clone(&line.value), line.window), lease)
            .map_or(0, |replaced| replaced.credit.close());
        (id, replaced)
    }

    /// Ends every lease; returns each one's key and what it held.
    pub(super) fn end_all(&self) -> Vec<(Key, u64)> {
        let map = self.map.pin();
        let keys: Vec<Key> = map.keys().cloned().collect();
        keys.into_iter()
            .filter_map(|key| {
                let held = match map.remove(&key) {
                    Some(lease) => lease.credit.close(),
                    None => 0,
                };
                (held > 0).then_some((key, held))
            })
            .collect()
    }

    /// Ends lease `id` of `line` if it is still in force; returns what it held.
    pub(super) fn end(&self, line: &Line, id: u64) -> u64 {
        match self
            .map
            .pin()
            .remove_if(&key_of(line), |_, lease| lease.id == id)
        {
            Ok(Some((_, lease))) => lease.credit.close(),
            _ => 0,
        }
    }
}

/// How much beyond `line`'s amount to ask a lease for; 0 for none.
pub(super) fn wanted(line: &Line) -> u64 {
    if line.amount == 0 {
        return 0;
    }
    let calls = MAX_CALLS.min(line.limit / SHARE / line.amount);
    if calls < MIN_CALLS {
        0
    } else {
        calls * line.amount
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(budget: usize, amount: u64, limit: u64) -> Line {
        Line::new(budget, Arc::from("key"), 7, amount, limit)
    }

    #[test]
    fn a_lease_is_a_small_share_of_the_limit() {
        assert_eq!(wanted(&line(0, 100, 1_000_000)), 6_400);
        assert_eq!(wanted(&line(0, 100, 64_000)), 2_000);
        assert_eq!(wanted(&line(0, 100, 6_000)), 0);
        assert_eq!(wanted(&line(0, 0, 1_000_000)), 0);
    }

    #[test]
    fn leases_give_for_every_line_or_for_none() {
        let leases = Leases::default();
        let (a, b) = (line(0, 10, 1_000), line(1, 10, 1_000));
        assert_eq!(leases.take(&[a.clone(), b.clone()]), Ok(false));
        leases.grant(&a, 25);
        // b has no lease: a's amount goes back into a's lease.
        assert_eq!(leases.take(&[a.clone(), b.clone()]), Ok(false));
        assert_eq!(leases.credit(0, "key", 7), 25);
        leases.grant(&b, 10);
        assert_eq!(leases.take(&[a.clone(), b.clone()]), Ok(true));
        assert_eq!(leases.take(&[a.clone(), b.clone()]), Ok(false));
        assert_eq!(leases.credit(0, "key", 7), 15);
        assert_eq!(leases.credit(1, "key", 7), 0);
    }

    #[test]
    fn an_ended_lease_takes_nothing_back() {
        let leases = Leases::default();
        let a = line(0, 10, 1_000);
        let (first, _) = leases.grant(&a, 30);
        let (second, replaced) = leases.grant(&a, 50);
        assert_eq!(
            replaced, 30,
            "the replaced lease's credit goes back to the server"
        );
        assert_eq!(leases.end(&a, first), 0, "not the lease in force");
        assert!(leases.put(&a, 5));
        assert_eq!(leases.end(&a, second), 55);
        assert!(!leases.put(&a, 5), "no lease left");
        assert!(!leases.cover(&a, 5));
    }
}
