//! The idempotency keys seen: calls in flight, and finished answers kept for a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::flight::Flight;
use crate::answer::Answer;

enum Slot {
    InFlight {
        fingerprint: Box<[u8]>,
        flight: Arc<Flight>,
    },
    Done {
        fingerprint: Box<[u8]>,
        answer: Arc<Answer>,
        at: Instant,
    },
}

/// What a call with a key finds.
pub(crate) enum Claim {
    /// Nobody has the key: this call runs, and the others join it.
    First(Arc<Flight>),
    /// A call with the key is in flight: join it.
    Join(Arc<Flight>),
    /// A call with the key finished within the TTL: its answer.
    Replay(Arc<Answer>),
    /// The key was used with another request.
    Conflict,
}

pub(crate) struct Store {
    slots: Mutex<HashMap<String, Slot>>,
    pub(crate) ttl: Duration,
    inserts: std::sync::atomic::AtomicU64,
}

/// How often (in claims) expired answers are swept out.
const SWEEP_EVERY: u64 = 256;

impl Store {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            ttl,
            inserts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Slot>) -> R) -> R {
        f(&mut self.slots.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Claims `key` for a request with `fingerprint`.
    pub(crate) fn claim(&self, key: &str, fingerprint: &[u8]) -> Claim {
        let sweep = self
            .inserts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % SWEEP_EVERY
            == SWEEP_EVERY - 1;
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
                        Claim::Join(Arc::clone(flight))
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
            Claim::First(flight)
        })
    }

    /// The first call finished with `answer`: replay it for the TTL.
    pub(crate) fn complete(&self, key: &str, fingerprint: Box<[u8]>, answer: Arc<Answer>) {
        self.with(|slots| {
            slots.insert(
                key.to_owned(),
                Slot::Done {
                    fingerprint,
                    answer,
                    at: Instant::now(),
                },
            );
        });
    }

    /// The first call failed or was abandoned: the key is free again.
    pub(crate) fn release(&self, key: &str) {
        self.with(|slots| {
            if matches!(slots.get(key), Some(Slot::InFlight { .. })) {
                slots.remove(key);
            }
        });
    }
}
