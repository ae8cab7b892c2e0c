//! Idempotency keys in Redis, so that a retry that lands on another replica joins or
//! replays the first call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use redis::{Script, Value};
use seawall::idempotency::{
    Answered, Claim, IdempotencyStore, InFlight, InProcessIdempotency, StoredAnswer,
};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::client::RedisState;
use crate::writes::{Writes, digest};

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("idem_claim.lua")));
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("idem_complete.lua")));
/// Frees a claim still held by its owner (ARGV[1]); 1 if it did.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'o') == ARGV[1] and redis.call('HGET', KEYS[1], 's') == 'p' \
         then return redis.call('DEL', KEYS[1]) end return 0",
    )
});
/// Extends a claim's lease while its owner (ARGV[1]) still holds it; 1 if it did.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'o') == ARGV[1] and redis.call('HGET', KEYS[1], 's') == 'p' \
         then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
    )
});

/// The first wait between two looks at a claim another replica holds; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// An [`IdempotencyStore`] in Redis: replicas built on the same Redis (and key prefix)
/// share their keys.
///
/// - Calls with a key in one replica are coalesced there first (one claim per replica).
/// - A claim is one script call that carries the request's fingerprint (a SHA-256 of its
///   normalised form): the first replica to claim a key owns it for a **lease**, renewed
///   while its call runs; the same key with another request is a conflict.
/// - A replica that finds the key claimed looks again with backoff (2 ms doubling to
///   100 ms, on tokio's clock), no later than the call's deadline or the TTL, and replays
///   the owner's answer once it is there (a stream as its events, byte-equal). An owner
///   that dies stops renewing its lease: when it runs out, a waiting replica claims the
///   key and makes the call itself.
/// - A finished answer is kept for the TTL; a failed call frees the key.
/// - Keys are `{prefix}{idempotency:<SHA-256 of the caller's key>}`: the caller's key is
///   not stored as given, and nothing of the caller's credentials is.
///
/// While Redis cannot answer (within the state's timeout):
/// [`FailMode::Open`](crate::FailMode::Open) coalesces and replays in this process only;
/// [`FailMode::Closed`](crate::FailMode::Closed) refuses the call
/// ([`IdempotencyUnavailable`](seawall::idempotency::IdempotencyUnavailable)).
#[derive(Debug, Clone)]
pub struct RedisIdempotency {
    core: Arc<Core>,
}

#[derive(Debug)]
struct Core {
    state: RedisState,
    local: InProcessIdempotency,
    ttl: Duration,
    lease: Duration,
    owners: Mutex<HashMap<Arc<str>, Owner>>,
    tokens: AtomicU64,
    writes: Arc<Writes>,
}

/// A key this replica owns in Redis.
#[derive(Debug)]
struct Owner {
    token: String,
    renewal: AbortHandle,
}

/// What the claim script answered.
enum Seen {
    Claimed,
    Pending,
    Done(Vec<u8>),
    Conflict,
}

impl RedisIdempotency {
    /// Keys in `state`: finished answers replayed for `ttl`, claims held for a 10 s lease
    /// (renewed while the call runs).
    pub fn new(state: &RedisState, ttl: Duration) -> Self {
        Self::with_lease(state, ttl, Duration::from_secs(10))
    }

    /// As [`new`](Self::new), with claims held for `lease`: how long after its owner died
    /// (or lost Redis) another replica takes a key over. The owner renews it every third
    /// of it.
    pub fn with_lease(state: &RedisState, ttl: Duration, lease: Duration) -> Self {
        Self {
            core: Arc::new(Core {
                state: state.clone(),
                local: InProcessIdempotency::new(ttl),
                ttl,
                lease: lease.max(Duration::from_millis(30)),
                owners: Mutex::new(HashMap::new()),
                tokens: AtomicU64::new(0),
                writes: Arc::default(),
            }),
        }
    }

    /// Waits until the answers completed so far have reached Redis (or failed to).
    pub async fn flush(&self) {
        self.core.writes.flush().await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn seen(reply: &[Value]) -> Option<Seen> {
    let code = match reply.first()? {
        Value::Int(code) => *code,
        _ => return None,
    };
    Some(match code {
        0 => Seen::Claimed,
        1 => Seen::Pending,
        2 => match reply.get(1)? {
            Value::BulkString(bytes) => Seen::Done(bytes.clone()),
            _ => return None,
        },
        3 => Seen::Conflict,
        _ => return None,
    })
}

/// A local claim being decided in Redis: dropped undecided (its caller gave up), it frees
/// the key in this process and fails the calls that joined it.
struct Deciding {
    core: Arc<Core>,
    key: Arc<str>,
    flight: Option<InFlight>,
}

impl Drop for Deciding {
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            self.core.local.release(&self.key);
            flight.abandoned(&self.key);
        }
    }
}

impl Deciding {
    /// The call runs here.
    fn run(mut self) -> Claim {
        // `Deciding` holds its flight until it decides, once.
        self.flight.take().map_or(Claim::StillRunning, Claim::First)
    }

    /// The call does not run: its joined calls get `claim` too.
    fn refuse(mut self, claim: Claim) -> Claim {
        if let Some(flight) = self.flight.take() {
            self.core.local.release(&self.key);
            flight.refused(&self.key, &claim);
        }
        claim
    }
}

impl Core {
    fn redis_key(&self, key: &str) -> String {
        self.state.key("idempotency", &digest(key.as_bytes()))
    }

    /// Decides a claim this process holds in Redis. `deciding` is made before this future
    /// is first polled, so that dropping it unpolled still frees the key here.
    async fn decide(
        self: Arc<Self>,
        deciding: Deciding,
        fingerprint: Box<[u8]>,
        wait_until: Option<Instant>,
    ) -> Claim {
        let key = Arc::clone(&deciding.key);
        let redis_key = self.redis_key(&key);
        let print = digest(&fingerprint);
        let token = format!(
            "{}-{}",
            self.state.process_id(),
            self.tokens.fetch_add(1, Ordering::Relaxed)
        );
        let started = Instant::now();
        let limit = wait_until.map_or(started + self.ttl, |at| at.min(started + self.ttl));
        let mut pause = FIRST_PAUSE;
        loop {
            let mut invocation = CLAIM.prepare_invoke();
            invocation
                .key(&redis_key)
                .arg(&print)
                .arg(&token)
                .arg(millis(self.lease));
            // Never past the deadline, even for a slow round trip (a claim made but not
            // answered in time is left to its lease).
            let Ok(reply) =
                tokio::time::timeout_at(limit, self.state.run::<Vec<Value>>(&invocation)).await
            else {
                return deciding.refuse(Claim::StillRunning);
            };
            match reply.ok().as_deref().and_then(seen) {
                Some(Seen::Claimed) => {
                    self.own(&key, redis_key, token);
                    return deciding.run();
                }
                Some(Seen::Pending) => {
                    let now = Instant::now();
                    if now + pause > limit {
                        return deciding.refuse(Claim::StillRunning);
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Some(Seen::Done(bytes)) => match StoredAnswer::decode(&bytes) {
                    Ok(answer) => {
                        let answer = Arc::new(answer);
                        let mut deciding = deciding;
                        if let Some(flight) = deciding.flight.take() {
                            self.local.complete(&key, &fingerprint, Arc::clone(&answer));
                            flight.answered(&answer);
                        }
                        return Claim::Replay(answer);
                    }
                    Err(_) => return self.without_redis(deciding),
                },
                Some(Seen::Conflict) => return deciding.refuse(Claim::Conflict),
                None => return self.without_redis(deciding),
            }
        }
    }

    /// Redis could not answer: decide in this process, or refuse.
    fn without_redis(&self, deciding: Deciding) -> Claim {
        match self.state.without_redis() {
            Ok(()) => deciding.run(),
            Err(_) => deciding.refuse(Claim::Unavailable),
        }
    }

    /// Holds `key` in Redis: its lease renewed every third of it until the call ends.
    fn own(self: &Arc<Self>, key: &Arc<str>, redis_key: String, token: String) {
        let core = Arc::clone(self);
        let owner = token.clone();
        let renewal = tokio::spawn(async move {
            let every = core.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let mut invocation = RENEW.prepare_invoke();
                invocation
                    .key(&redis_key)
                    .arg(&owner)
                    .arg(millis(core.lease));
                if let Ok(0) = core.state.run::<i64>(&invocation).await {
                    return;
                }
            }
        })
        .abort_handle();
        let previous = self
            .owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Arc::clone(key), Owner { token, renewal });
        if let Some(previous) = previous {
            previous.renewal.abort();
        }
    }

    fn disown(&self, key: &str) -> Option<Owner> {
        let owner = self
            .owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)?;
        owner.renewal.abort();
        Some(owner)
    }
}

impl IdempotencyStore for RedisIdempotency {
    fn claim(&self, key: &str, fingerprint: &[u8], wait_until: Option<Instant>) -> Answered<Claim> {
        match self.core.local.claim_now(key, fingerprint) {
            Claim::First(flight) => {
                let deciding = Deciding {
                    core: Arc::clone(&self.core),
                    key: Arc::from(key),
                    flight: Some(flight),
                };
                Answered::Later(Box::pin(Arc::clone(&self.core).decide(
                    deciding,
                    fingerprint.into(),
                    wait_until,
                )))
            }
            claim => Answered::Now(claim),
        }
    }

    fn complete(&self, key: &str, fingerprint: &[u8], answer: Arc<StoredAnswer>) {
        let encoded = answer.encode();
        self.core.local.complete(key, fingerprint, answer);
        let Some(owner) = self.core.disown(key) else {
            return;
        };
        let core = Arc::clone(&self.core);
        let redis_key = core.redis_key(key);
        self.core.writes.spawn(async move {
            let mut invocation = COMPLETE.prepare_invoke();
            invocation
                .key(redis_key)
                .arg(owner.token)
                .arg(encoded)
                .arg(millis(core.ttl).max(1));
            let _ = core.state.run::<i64>(&invocation).await;
        });
    }

    fn release(&self, key: &str) {
        self.core.local.release(key);
        let Some(owner) = self.core.disown(key) else {
            return;
        };
        let core = Arc::clone(&self.core);
        let redis_key = core.redis_key(key);
        self.core.writes.spawn(async move {
            let mut invocation = RELEASE.prepare_invoke();
            invocation.key(redis_key).arg(owner.token);
            let _ = core.state.run::<i64>(&invocation).await;
        });
    }
}
