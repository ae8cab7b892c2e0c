//! The idempotency keys seen: behind [`IdempotencyStore`], in process by default
//! ([`InProcessIdempotency`]: calls in flight, and finished answers kept for a while).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::error::{FirstCallFailed, IdempotencyConflict, IdempotencyUnavailable};
use super::flight::{Failure, Flight, Head};
use crate::answer::{Answered, StoredAnswer};

/// The keys behind the idempotency layer.
///
/// A call with a key claims it: it runs ([`Claim::First`]), joins the call in flight with
/// the key ([`Claim::Join`]), gets the answer of a call that finished ([`Claim::Replay`]),
/// or is refused. The first call then completes the key with its answer, or releases it.
///
/// A store in process answers a claim at once ([`Answered::Now`]: the layer's fast path
/// allocates nothing more); a shared store may answer later — after a round trip, or once
/// the call that holds the key on another replica has finished.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for a request whose normalised form is `fingerprint`. A shared store
    /// waits no later than `wait_until` (the call's deadline) for another replica's call.
    fn claim(&self, key: &str, fingerprint: &[u8], wait_until: Option<Instant>) -> Answered<Claim>;

    /// The first call with `key` finished with `answer`: replay it for the TTL.
    fn complete(&self, key: &str, fingerprint: &[u8], answer: Arc<StoredAnswer>);

    /// The first call with `key` failed or was abandoned: the key is free again.
    fn release(&self, key: &str);
}

/// What a call with a key finds.
#[derive(Debug)]
#[non_exhaustive]
pub enum Claim {
    /// Nobody has the key: this call runs; the others join it.
    First(InFlight),
    /// A call with the key is in flight in this process: join it.
    Join(InFlight),
    /// A call with the key finished within the TTL: its answer.
    Replay(Arc<StoredAnswer>),
    /// The key was used with another request.
    Conflict,
    /// A shared store could not be reached and is set to fail closed.
    Unavailable,
    /// A call with the key is still running elsewhere past the call's deadline.
    StillRunning,
}

/// A call in flight in this process, which calls with the same key join.
#[derive(Debug, Clone)]
pub struct InFlight(pub(crate) Arc<Flight>);

impl InFlight {
    /// For a shared store whose claim found another replica's answer: the calls that
    /// joined this one get `answer`.
    pub fn answered(&self, answer: &Arc<StoredAnswer>) {
        self.0.set_head(Head::Whole(Arc::clone(answer)));
        self.0.end();
    }

    /// For a shared store whose claim did not let the call run: the calls that joined this
    /// one get the same refusal as `claim` (a conflict, an unreachable store, a call still
    /// running elsewhere).
    pub fn refused(&self, key: &str, claim: &Claim) {
        let failure = match claim {
            Claim::Conflict => Failure::Conflict(IdempotencyConflict {
                key: key.to_owned(),
            }),
            Claim::Unavailable => Failure::Unavailable(IdempotencyUnavailable),
            _ => Failure::Other(FirstCallFailed {
                key: key.to_owned(),
                reason: still_running().to_owned(),
            }),
        };
        self.0.fail(failure);
    }
}

impl InFlight {
    /// For a shared store whose claim was dropped before it was answered (its caller gave
    /// up): the calls that joined this one fail as for an abandoned first call.
    pub fn abandoned(&self, key: &str) {
        self.0.fail(Failure::Other(FirstCallFailed {
            key: key.to_owned(),
            reason: "it was abandoned before it finished".to_owned(),
        }));
    }
}

pub(crate) fn still_running() -> &'static str {
    "it is still running on another replica past this call's deadline"
}

enum Slot {
    InFlight {
        fingerprint: Box<[u8]>,
        flight: Arc<Flight>,
    },
    Done {
        fingerprint: Box<[u8]>,
        answer: Arc<StoredAnswer>,
        at: Instant,
    },
}

/// Idempotency keys kept in this process: calls in flight, which calls with the same key
/// join, and finished answers replayed for the TTL (swept as new keys arrive).
pub struct InProcessIdempotency {
    slots: Mutex<HashMap<String, Slot>>,
    ttl: Duration,
    inserts: AtomicU64,
}

impl std::fmt::Debug for InProcessIdempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessIdempotency")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// How often (in claims) expired answers are swept out.
const SWEEP_EVERY: u64 = 256;

impl InProcessIdempotency {
    /// Finished answers are replayed for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            ttl,
            inserts: AtomicU64::new(0),
        }
    }

    /// How long finished answers are replayed.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Slot>) -> R) -> R {
        f(&mut self.slots.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Claims `key` for a request with `fingerprint`, at once.
    pub fn claim_now(&self, key: &str, fingerprint: &[u8]) -> Claim {
        let sweep = self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        let now = Instant::now();
        let ttl = self.ttl;
        self.with(|slots| {
            if sweep {
                slots.retain(|_, slot| match slot {
                    Slot::Done { at, .. } => now.saturating_duration_since(*at) < ttl,
                    Slot::InFlight { .. } => true,
                });
            }
            match slots.get(key) {
                Some(Slot::InFlight {
                    fingerprint: seen,
                    flight,
                }) => {
                    return if **seen == *fingerprint {
                        Claim::Join(InFlight(Arc::clone(flight)))
                    } else {
                        Claim::Conflict
                    };
                }
                Some(Slot::Done {
                    fingerprint: seen,
                    answer,
                    at,
                }) if now.saturating_duration_since(*at) < ttl => {
                    return if **seen == *fingerprint {
                        Claim::Replay(Arc::clone(answer))
                    } else {
                        Claim::Conflict
                    };
                }
                _ => {}
            }
            let flight = Arc::new(Flight::default());
            slots.insert(
                key.to_owned(),
                Slot::InFlight {
                    fingerprint: fingerprint.into(),
                    flight: Arc::clone(&flight),
                },
            );
            Claim::First(InFlight(flight))
        })
    }
}

impl IdempotencyStore for InProcessIdempotency {
    #[inline]
    fn claim(&self, key: &str, fingerprint: &[u8], _: Option<Instant>) -> Answered<Claim> {
        Answered::Now(self.claim_now(key, fingerprint))
    }

    fn complete(&self, key: &str, fingerprint: &[u8], answer: Arc<StoredAnswer>) {
        self.with(|slots| {
            slots.insert(
                key.to_owned(),
                Slot::Done {
                    fingerprint: fingerprint.into(),
                    answer,
                    at: Instant::now(),
                },
            );
        });
    }

    fn release(&self, key: &str) {
        self.with(|slots| {
            if matches!(slots.get(key), Some(Slot::InFlight { .. })) {
                slots.remove(key);
            }
        });
    }
}
