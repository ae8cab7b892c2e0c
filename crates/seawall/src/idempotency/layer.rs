use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::Idempotency;
use super::store::{IdempotencyStore, InProcessIdempotency};

/// Makes calls that carry the same idempotency key one call. See the [module docs](super).
///
/// Cloning the layer, and every service it makes, shares one store of keys.
#[derive(Clone)]
pub struct IdempotencyLayer {
    store: Arc<dyn IdempotencyStore>,
    ttl: Option<Duration>,
}

impl IdempotencyLayer {
    /// Finished answers are replayed for `ttl` after the first call ended; the keys live
    /// in this process.
    pub fn new(ttl: Duration) -> Self {
        Self {
            store: Arc::new(InProcessIdempotency::new(ttl)),
            ttl: Some(ttl),
        }
    }

    /// The keys live in `store` (one shared by several replicas, such as
    /// `seawall_redis::RedisIdempotency`), which keeps finished answers for its own TTL.
    pub fn with_store(store: Arc<dyn IdempotencyStore>) -> Self {
        Self { store, ttl: None }
    }
}

impl fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::from_parts(inner, Arc::clone(&self.store))
    }
}
