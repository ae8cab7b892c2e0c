use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::Embedder;
use tower_layer::Layer;

use super::error::SemanticCacheError;
use super::index::{Index, SemanticCacheStats};
use super::service::SemanticCache;
use crate::budget::Scope;

/// Answers a request with the stored answer of a similar earlier one. See the
/// [module docs](super).
///
/// Cloning the layer, and every service it makes, shares one index and one embedder.
pub struct SemanticCacheLayer<E> {
    pub(crate) shared: Arc<Shared<E>>,
}

/// What every service of one layer shares.
pub(crate) struct Shared<E> {
    pub(crate) embedder: E,
    pub(crate) model: Arc<str>,
    pub(crate) dimensions: Option<u32>,
    pub(crate) scope: Scope,
    pub(crate) embed_timeout: Duration,
    pub(crate) index: Arc<Index>,
}

impl<E> Clone for SemanticCacheLayer<E> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> SemanticCacheLayer<E> {
    /// Configures a semantic cache that embeds prompts with `embedding_model` through
    /// `embedder` (a provider adapter from `seawall-providers`, or your own [`Embedder`]).
    pub fn builder(embedder: E, embedding_model: impl Into<Arc<str>>) -> SemanticCacheBuilder<E> {
        SemanticCacheBuilder {
            embedder,
            model: embedding_model.into(),
            dimensions: None,
            threshold: 0.95,
            ttl: Duration::from_secs(600),
            max_entries: 10_000,
            scope: Scope::Global,
            embed_timeout: Duration::from_secs(2),
        }
    }

    /// What the cache has done so far, and what it holds.
    pub fn stats(&self) -> SemanticCacheStats {
        self.shared.index.stats()
    }
}

impl<E> fmt::Debug for SemanticCacheLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("SemanticCacheLayer")
            .field("embedding_model", &shared.model)
            .field("threshold", &shared.index.threshold)
            .field("ttl", &shared.index.ttl)
            .field("max_entries", &shared.index.max_entries)
            .field("scope", &shared.scope)
            .finish_non_exhaustive()
    }
}

impl<S, E> Layer<S> for SemanticCacheLayer<E> {
    type Service = SemanticCache<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        SemanticCache::from_parts(inner, Arc::clone(&self.shared))
    }
}

/// Configures a [`SemanticCacheLayer`]; from [`SemanticCacheLayer::builder`].
pub struct SemanticCacheBuilder<E> {
    embedder: E,
    model: Arc<str>,
    dimensions: Option<u32>,
    threshold: f32,
    ttl: Duration,
    max_entries: usize,
    scope: Scope,
    embed_timeout: Duration,
}

impl<E> fmt::Debug for SemanticCacheBuilder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemanticCacheBuilder")
            .field("embedding_model", &self.model)
            .field("threshold", &self.threshold)
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<E: Embedder> SemanticCacheBuilder<E> {
    /// The least cosine similarity between two prompts for one's answer to serve the
    /// other (default 0.95): in `(0, 1]`, where 1 takes only prompts the embedder cannot
    /// tell apart.
    #[must_use]
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// How long a stored answer may serve (default 10 minutes), on tokio's clock.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The most answers held (default 10,000); the oldest go first.
    #[must_use]
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Whose answers may serve whom (default [`Scope::Global`]: every caller shares one
    /// cache). With [`Scope::VirtualKey`] or [`Scope::Tenant`] an answer serves only the
    /// same key or tenant, and a request without one is neither looked up nor stored.
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The length of the vectors asked of the embedder (the model's own by default);
    /// shorter vectors make lookups cheaper.
    #[must_use]
    pub fn dimensions(mut self, dimensions: u32) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// How long to wait for the embedding (default 2 s); past it the call goes upstream
    /// as on any embedding failure.
    #[must_use]
    pub fn embed_timeout(mut self, timeout: Duration) -> Self {
        self.embed_timeout = timeout;
        self
    }

    /// The layer, with its index.
    ///
    /// # Errors
    ///
    /// A threshold outside `(0, 1]`, a zero bound or TTL, or an unnamed model.
    pub fn build(self) -> Result<SemanticCacheLayer<E>, SemanticCacheError> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(SemanticCacheError::Threshold(self.threshold));
        }
        if self.max_entries == 0 {
            return Err(SemanticCacheError::MaxEntries);
        }
        if self.ttl.is_zero() {
            return Err(SemanticCacheError::Ttl);
        }
        if self.model.is_empty() {
            return Err(SemanticCacheError::EmbeddingModel);
        }
        Ok(SemanticCacheLayer {
            shared: Arc::new(Shared {
                embedder: self.embedder,
                model: self.model,
                dimensions: self.dimensions,
                scope: self.scope,
                embed_timeout: self.embed_timeout,
                index: Arc::new(Index::new(self.ttl, self.max_entries, self.threshold)),
            }),
        })
    }
}
