//! Where answers are kept: behind [`CacheStore`], in process by default
//! ([`InProcessCache`]: bounded in bytes, aged on tokio's clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::error::CacheUnavailable;
use super::key::CacheKey;
use crate::answer::{Answered, StoredAnswer};

/// What a lookup finds: an answer young enough, nothing, or (a shared store set to fail
/// closed that cannot reach its server) an error.
pub type Lookup = Result<Option<Arc<StoredAnswer>>, CacheUnavailable>;

/// The answers behind the cache layer.
///
/// The layer asks for an answer younger than an age (the TTL, a caller's `max-age`, or
/// the TTL plus the stale-if-error window for a failed call) and stores answers to keep
/// for a duration. A store in process answers at once ([`Answered::Now`]: the layer's fast
/// path allocates nothing more); a shared store may answer later, after a round trip.
/// Storing never waits: a shared store finishes it in the background.
pub trait CacheStore: Send + Sync + 'static {
    /// The answer stored under `key` less than `younger_than` ago.
    fn get(&self, key: &CacheKey, younger_than: Duration) -> Answered<Lookup>;

    /// Keeps `answer` under `key` for `keep_for`; false when it is not kept (larger than
    /// the store takes).
    fn put(&self, key: &CacheKey, answer: StoredAnswer, keep_for: Duration) -> bool;

    /// How many answers the store holds in this process, and roughly their size in bytes.
    fn held(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// A stored answer.
#[derive(Debug)]
struct Entry {
    key: Box<[u8]>,
    answer: Arc<StoredAnswer>,
    stored_at: Instant,
    keep_until: Instant,
}

/// Answers kept in this process: bounded in bytes (moka, least recently used first), one
/// answer not stored past a size, aged on tokio's clock. Keys are compared whole, so two
/// requests with the same hash never share an answer.
pub struct InProcessCache {
    cache: moka::sync::Cache<u64, Arc<Entry>>,
    max_entry_bytes: usize,
}

impl std::fmt::Debug for InProcessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessCache")
            .field("entries", &self.cache.entry_count())
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish_non_exhaustive()
    }
}

impl InProcessCache {
    /// A store of at most `max_bytes`, keeping no answer larger than `max_entry_bytes`.
    pub fn new(max_bytes: u64, max_entry_bytes: usize) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, entry: &Arc<Entry>| {
                u32::try_from(entry.key.len() + entry.answer.weight() + 128).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            cache,
            max_entry_bytes,
        }
    }

    /// The answer under `key` stored less than `younger_than` ago, at once.
    pub fn find(&self, key: &CacheKey, younger_than: Duration) -> Option<Arc<StoredAnswer>> {
        let entry = self.cache.get(&key.hash)?;
        if entry.key != key.bytes {
            // Another request with the same hash: never answer it with this one's answer.
            return None;
        }
        let now = Instant::now();
        if now >= entry.keep_until {
            self.cache.invalidate(&key.hash);
            return None;
        }
        (now.saturating_duration_since(entry.stored_at) < younger_than)
            .then(|| Arc::clone(&entry.answer))
    }

    /// Keeps `answer` under `key` for `keep_for`, at once; false when it is too large.
    pub fn keep(&self, key: &CacheKey, answer: StoredAnswer, keep_for: Duration) -> bool {
        if key.bytes.len() + answer.weight() > self.max_entry_bytes {
            return false;
        }
        let now = Instant::now();
        let entry = Entry {
            key: key.bytes.clone(),
            answer: Arc::new(answer),
            stored_at: now,
            keep_until: now + keep_for,
        };
        self.cache.insert(key.hash, Arc::new(entry));
        true
    }
}

impl CacheStore for InProcessCache {
    #[inline]
    fn get(&self, key: &CacheKey, younger_than: Duration) -> Answered<Lookup> {
        Answered::Now(Ok(self.find(key, younger_than)))
    }

    fn put(&self, key: &CacheKey, answer: StoredAnswer, keep_for: Duration) -> bool {
        self.keep(key, answer, keep_for)
    }

    fn held(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}

/// Counts of what the cache did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls sent upstream.
    pub misses: u64,
    /// Calls answered with an expired answer because every target failed.
    pub stale: u64,
    /// Answers stored.
    pub stored: u64,
    /// Answers held now (in this process).
    pub entries: u64,
    /// Their approximate size in bytes.
    pub bytes: u64,
}

/// The layer's side of the store: its policy and its counters, shared by every service.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn CacheStore>,
    pub(crate) ttl: Duration,
    pub(crate) stale_if_error: Option<Duration>,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    stored: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        store: Arc<dyn CacheStore>,
        ttl: Duration,
        stale_if_error: Option<Duration>,
    ) -> Self {
        Self {
            store,
            ttl,
            stale_if_error,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    /// How long an answer is fresh for a call that allows `max_age`.
    pub(crate) fn fresh_for(&self, max_age: Option<Duration>) -> Duration {
        max_age.map_or(self.ttl, |max| max.min(self.ttl))
    }

    /// How long an answer is kept: its TTL and its stale-if-error window.
    pub(crate) fn keep_for(&self) -> Duration {
        self.ttl
            .saturating_add(self.stale_if_error.unwrap_or(Duration::ZERO))
    }

    pub(crate) fn insert(&self, key: &CacheKey, answer: StoredAnswer) {
        if self.store.put(key, answer, self.keep_for()) {
            self.stored.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let (entries, bytes) = self.store.held();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            entries,
            bytes,
        }
    }
}
