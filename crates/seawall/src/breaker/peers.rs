//! Where one target's breaker meets the same target's breakers in other processes: a
//! shared store (Redis) hears what this breaker decides and tells it what the others did.

use std::fmt;
use std::time::Duration;

/// A change of one breaker that the same target's breakers elsewhere should follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerChange {
    /// The breaker opened, for `open_for` (`None`: forced open until reset).
    Opened {
        /// How long the break lasts.
        open_for: Option<Duration>,
    },
    /// The breaker closed (its probes succeeded, or an operator reset it).
    Closed,
    /// The target is parked for `wait` (a 429 or an exhausted quota).
    Cooldown {
        /// How long from now.
        wait: Duration,
    },
}

/// The breakers of one target in other processes, seen from this one.
///
/// Set with [`BreakerHandle::share`](super::BreakerHandle::share). The breaker calls it
/// outside its fast path (a closed breaker never does) and never waits for it: a shared
/// store sends what it is told in the background, and answers
/// [`claim_probe`](Self::claim_probe) from probe slots it claimed ahead. What the others
/// decide comes back through the handle's `adopt_*` methods.
pub trait BreakerPeers: Send + Sync + fmt::Debug + 'static {
    /// This breaker changed: the others should follow.
    fn publish(&self, change: PeerChange);

    /// The break is over and this breaker would admit a half-open probe: may it? The
    /// number of probes is counted over every process; `false` leaves the breaker open
    /// here, rejecting with no wait, until a peer's probe closes or reopens it.
    fn claim_probe(&self) -> bool;
}
