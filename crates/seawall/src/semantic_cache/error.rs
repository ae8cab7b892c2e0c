//! The layer's configuration errors. A call never fails because of this layer: a failed
//! or slow embedding sends the call upstream, and upstream errors pass through unchanged.

use std::fmt;

/// A [`SemanticCacheBuilder`](super::SemanticCacheBuilder) setting that cannot work.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SemanticCacheError {
    /// The similarity threshold is not in `(0, 1]`.
    Threshold(f32),
    /// The bound on entries is zero.
    MaxEntries,
    /// The TTL is zero.
    Ttl,
    /// The embedding model's name is empty.
    EmbeddingModel,
}

impl fmt::Display for SemanticCacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Threshold(value) => write!(
                f,
                "the similarity threshold must be above 0 and at most 1, not {value}"
            ),
            Self::MaxEntries => f.write_str("the semantic cache must hold at least one entry"),
            Self::Ttl => f.write_str("the semantic cache's TTL must be above zero"),
            Self::EmbeddingModel => f.write_str("the embedding model must be named"),
        }
    }
}

impl std::error::Error for SemanticCacheError {}
