//! The shared store: answers by key, bounded in bytes, aged on tokio's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::key::Key;
use crate::answer::Answer;

/// A stored answer.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: Box<[u8]>,
    pub(crate) answer: Answer,
    pub(crate) stored_at: Instant,
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
    /// Answers held now.
    pub entries: u64,
    /// Their approximate size in bytes.
    pub bytes: u64,
}

pub(crate) struct Store {
    cache: moka::sync::Cache<u64, Arc<Entry>>,
    pub(crate) ttl: Duration,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) max_entry_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    stored: AtomicU64,
}

/// What a lookup found for a key.
pub(crate) enum Found {
    Fresh(Arc<Entry>),
    /// Expired, but within the stale-if-error age: kept for a failure.
    Stale,
    Nothing,
}

impl Store {
    pub(crate) fn new(
        ttl: Duration,
        stale_if_error: Option<Duration>,
        max_bytes: u64,
        max_entry_bytes: usize,
    ) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, entry: &Arc<Entry>| {
                u32::try_from(entry.key.len() + entry.answer.weight() + 128).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            cache,
            ttl,
            stale_if_error,
            max_entry_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    /// The entry for `key`, fresh if younger than the TTL and `max_age`.
    pub(crate) fn find(&self, key: &Key, max_age: Option<Duration>) -> Found {
        let Some(entry) = self.cache.get(&key.hash) else {
            return Found::Nothing;
        };
        if entry.key != key.bytes {
            // Another request with the same hash: never answer it with this one's answer.
            return Found::Nothing;
        }
        let age = entry.stored_at.elapsed();
        let fresh_for = max_age.map_or(self.ttl, |max| max.min(self.ttl));
        if age < fresh_for {
            return Found::Fresh(entry);
        }
        match self.stale_if_error {
            Some(stale) if age < self.ttl.saturating_add(stale) => Found::Stale,
            _ => {
                self.cache.invalidate(&key.hash);
                Found::Nothing
            }
        }
    }

    /// The expired entry for `key` that may still answer a failed call.
    pub(crate) fn stale(&self, key: &Key) -> Option<Arc<Entry>> {
        let stale = self.stale_if_error?;
        let entry = self.cache.get(&key.hash)?;
        (entry.key == key.bytes && entry.stored_at.elapsed() < self.ttl.saturating_add(stale))
            .then_some(entry)
    }

    pub(crate) fn insert(&self, key: Key, answer: Answer) {
        let entry = Entry {
            key: key.bytes,
            answer,
            stored_at: Instant::now(),
        };
        if entry.key.len() + entry.answer.weight() > self.max_entry_bytes {
            return;
        }
        self.stored.fetch_add(1, Ordering::Relaxed);
        self.cache.insert(key.hash, Arc::new(entry));
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
        self.cache.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
        }
    }
}
