use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::Cache;
use super::store::{CacheStats, CacheStore, InProcessCache, Shared};

/// Answers repeated requests from a store of earlier answers. See the [module docs](super).
///
/// Cloning the layer, and every service it makes, shares one store.
#[derive(Clone)]
pub struct CacheLayer {
    shared: Arc<Shared>,
}

impl CacheLayer {
    /// A cache whose answers are fresh for `ttl`, bounded to 64 MiB, with no
    /// stale-if-error.
    pub fn new(ttl: Duration) -> Self {
        Self::builder(ttl).build()
    }

    /// Configures a cache whose answers are fresh for `ttl`.
    pub fn builder(ttl: Duration) -> CacheBuilder {
        CacheBuilder {
            ttl,
            stale_if_error: None,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            store: None,
        }
    }

    /// What the cache has done so far, and what it holds.
    pub fn stats(&self) -> CacheStats {
        self.shared.stats()
    }
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("ttl", &self.shared.ttl)
            .field("stale_if_error", &self.shared.stale_if_error)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache::from_parts(inner, Arc::clone(&self.shared))
    }
}

/// Configures a [`CacheLayer`]; from [`CacheLayer::builder`].
#[derive(Clone)]
pub struct CacheBuilder {
    ttl: Duration,
    stale_if_error: Option<Duration>,
    max_bytes: u64,
    max_entry_bytes: usize,
    store: Option<Arc<dyn CacheStore>>,
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("ttl", &self.ttl)
            .field("stale_if_error", &self.stale_if_error)
            .field("max_bytes", &self.max_bytes)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("shared_store", &self.store.is_some())
            .finish()
    }
}

impl CacheBuilder {
    /// When a call fails (every target down, the deadline passed), answer it with an
    /// expired answer up to `age` past its TTL, marked [`Stale`](seawall_core::CacheStatus)
    /// in the trail. Never for a failure that is the caller's own (an invalid request, a
    /// prompt too long, a refusal).
    #[must_use]
    pub fn stale_if_error(mut self, age: Duration) -> Self {
        self.stale_if_error = Some(age);
        self
    }

    /// The most bytes the store holds (default 64 MiB); the least recently used answers
    /// go first.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The largest answer stored (default 1 MiB); a larger one is passed on, not stored.
    #[must_use]
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// Keeps the answers in `store` (one shared by several replicas, such as
    /// `seawall_redis::RedisCache`) instead of in this process; `max_bytes` and
    /// `max_entry_bytes` then do not apply (the store has its own bounds).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn CacheStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The layer, with its store.
    pub fn build(self) -> CacheLayer {
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(InProcessCache::new(self.max_bytes, self.max_entry_bytes)));
        CacheLayer {
            shared: Arc::new(Shared::new(store, self.ttl, self.stale_if_error)),
        }
    }
}
