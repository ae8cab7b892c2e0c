//! The response cache's answers in Redis, so that one replica's answer is another's hit.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use seawall::cache::{
    Answered, CacheKey, CacheStore, CacheUnavailable, InProcessCache, Lookup, StoredAnswer,
};

use crate::client::RedisState;
use crate::writes::{Writes, digest};

/// An answer and how long it has left: `{value, PTTL}`, or nil.
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local v = redis.call('GET', KEYS[1]) \
         if not v then return false end \
         return {v, redis.call('PTTL', KEYS[1])}",
    )
});
static SET: LazyLock<Script> =
    LazyLock::new(|| Script::new("redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"));

/// Bytes before the answer in a stored value: how long it was kept for, in milliseconds.
const HEADER: usize = 8;

/// A [`CacheStore`] in Redis: every replica built on the same Redis (and key prefix) reads
/// the answers the others stored.
///
/// - An entry is the [`StoredAnswer`], encoded compactly (a streamed answer as its
///   events, so a replay is byte-equal), under `{prefix}{cache:<SHA-256 of the normalised
///   request>}`: no request text and no credential in a key, nothing of the caller in a
///   value.
/// - It expires in Redis after the TTL plus the stale-if-error window; its age is read
///   from Redis's own clock (what is left of its expiry), so replicas agree on it.
/// - An answer larger than [`new`](Self::new)'s `max_entry_bytes` once encoded is not
///   stored.
/// - Lookups take one round trip (one script); stores go in the background.
///
/// While Redis cannot answer (within the state's timeout):
/// [`FailMode::Open`](crate::FailMode::Open) keeps and finds answers in this process;
/// [`FailMode::Closed`](crate::FailMode::Closed) refuses the call with
/// [`CacheUnavailable`].
#[derive(Debug, Clone)]
pub struct RedisCache {
    core: Arc<Core>,
}

#[derive(Debug)]
struct Core {
    state: RedisState,
    local: InProcessCache,
    max_entry_bytes: usize,
    writes: Arc<Writes>,
}

/// The bound of the in-process store used while Redis is away.
const FALLBACK_BYTES: u64 = 64 * 1024 * 1024;

impl RedisCache {
    /// Answers in `state`, none larger than `max_entry_bytes` once encoded.
    pub fn new(state: &RedisState, max_entry_bytes: usize) -> Self {
        Self {
            core: Arc::new(Core {
                state: state.clone(),
                local: InProcessCache::new(FALLBACK_BYTES, max_entry_bytes),
                max_entry_bytes,
                writes: Arc::default(),
            }),
        }
    }

    /// Waits until the answers stored so far have reached Redis (or failed to): for a
    /// graceful shutdown, and for tests that read them from another replica.
    pub async fn flush(&self) {
        self.core.writes.flush().await;
    }

    fn key(&self, key: &CacheKey) -> String {
        self.core.state.key("cache", &digest(key.as_bytes()))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The answer in a stored value, if it is younger than `younger_than`.
fn younger(value: &[u8], left_ms: i64, younger_than: Duration) -> Option<Arc<StoredAnswer>> {
    let (header, answer) = value.split_at_checked(HEADER)?;
    let kept_for = u64::from_be_bytes(header.try_into().ok()?);
    // PTTL is -1 without an expiry (never set so), -2 when gone.
    let left = u64::try_from(left_ms).ok()?;
    let age = kept_for.saturating_sub(left);
    if age >= millis(younger_than) {
        return None;
    }
    StoredAnswer::decode(answer).ok().map(Arc::new)
}

impl CacheStore for RedisCache {
    fn get(&self, key: &CacheKey, younger_than: Duration) -> Answered<Lookup> {
        let redis_key = self.key(key);
        let core = Arc::clone(&self.core);
        let key = key.clone();
        Answered::Later(Box::pin(async move {
            let mut invocation = GET.prepare_invoke();
            invocation.key(redis_key);
            match core.state.run::<Option<(Vec<u8>, i64)>>(&invocation).await {
                Ok(None) => Ok(None),
                Ok(Some((value, left_ms))) => Ok(younger(&value, left_ms, younger_than)),
                Err(_) => match core.state.without_redis() {
                    Ok(()) => Ok(core.local.find(&key, younger_than)),
                    Err(_) => Err(CacheUnavailable::default()),
                },
            }
        }))
    }

    fn put(&self, key: &CacheKey, answer: StoredAnswer, keep_for: Duration) -> bool {
        let keep_ms = millis(keep_for).max(1);
        let encoded = answer.encode();
        if encoded.is_empty() || HEADER + encoded.len() > self.core.max_entry_bytes {
            return false;
        }
        let mut value = Vec::with_capacity(HEADER + encoded.len());
        value.extend_from_slice(&keep_ms.to_be_bytes());
        value.extend_from_slice(&encoded);
        let redis_key = self.key(key);
        let core = Arc::clone(&self.core);
        let key = key.clone();
        self.core.writes.spawn(async move {
            let mut invocation = SET.prepare_invoke();
            invocation.key(redis_key).arg(value).arg(keep_ms);
            if core.state.run::<i64>(&invocation).await.is_err()
                && core.state.without_redis().is_ok()
            {
                core.local.keep(&key, answer, keep_for);
            }
        });
        true
    }

    fn held(&self) -> (u64, u64) {
        self.core.local.held()
    }
}
