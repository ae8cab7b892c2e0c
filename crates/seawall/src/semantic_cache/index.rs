//! The in-process vector index: answers by partition (scope, model, answer-changing
//! parameters, earlier turns), each with the unit vector of its prompt, searched by a flat
//! scan; aged on tokio's clock and bounded in entries.
//!
//! A flat scan, not a graph index: entries expire and are evicted all the time (graph
//! indexes such as HNSW handle deletion poorly or not at all), a scan is exact, and it
//! reads one partition only. The measured cost, and where a graph index would win, are in
//! the module docs (`cargo bench -p seawall --features semantic-cache --bench
//! semantic_cache`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::answer::Answer;

/// One stored answer.
#[derive(Debug)]
struct Entry {
    id: u64,
    vector: Box<[f32]>,
    answer: Arc<Answer>,
    stored_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    partitions: HashMap<Arc<[u8]>, Vec<Entry>>,
    /// Every entry in the order stored: the oldest is the first to expire and the first
    /// evicted (one TTL for all, so storing order is expiry order).
    order: VecDeque<(Arc<[u8]>, u64)>,
    next_id: u64,
}

impl Inner {
    fn remove_oldest(&mut self) {
        let Some((partition, id)) = self.order.pop_front() else {
            return;
        };
        if let Some(entries) = self.partitions.get_mut(&partition) {
            if let Some(at) = entries.iter().position(|entry| entry.id == id) {
                entries.swap_remove(at);
            }
            if entries.is_empty() {
                self.partitions.remove(&partition);
            }
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) answer: Arc<Answer>,
    pub(crate) similarity: f32,
}

/// The shared index of a [`SemanticCacheLayer`](super::SemanticCacheLayer).
#[derive(Debug)]
pub(crate) struct Index {
    inner: RwLock<Inner>,
    pub(crate) ttl: Duration,
    pub(crate) max_entries: usize,
    pub(crate) threshold: f32,
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    embed_failures: AtomicU64,
    stored: AtomicU64,
}

/// `vector` scaled to unit length; `None` for an empty, zero or non-finite vector.
pub(crate) fn unit(mut vector: Vec<f32>) -> Option<Vec<f32>> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if vector.is_empty() || !norm.is_finite() || norm == 0.0 {
        return None;
    }
    for x in &mut vector {
        *x /= norm;
    }
    Some(vector)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four lanes the compiler can keep in registers (and vectorise).
    let mut sums = [0.0_f32; 4];
    let (a4, a_rest) = a.split_at(a.len() - a.len() % 4);
    let (b4, b_rest) = b.split_at(b.len() - b.len() % 4);
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for lane in 0..4 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + rest
}

impl Index {
    pub(crate) fn new(ttl: Duration, max_entries: usize, threshold: f32) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            ttl,
            max_entries,
            threshold,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            embed_failures: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    /// The fresh answer in `partition` most similar to the unit vector `query`, if its
    /// cosine similarity reaches the threshold.
    pub(crate) fn find(&self, partition: &[u8], query: &[f32]) -> Option<Found> {
        let inner = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entries = inner.partitions.get(partition)?;
        let now = Instant::now();
        let mut best: Option<(&Entry, f32)> = None;
        for entry in entries {
            if entry.vector.len() != query.len()
                || now.saturating_duration_since(entry.stored_at) >= self.ttl
            {
                continue;
            }
            let similarity = dot(&entry.vector, query);
            // The most similar; of equals, the newest (a `no-cache` call refreshed it).
            if best.is_none_or(|(kept, top)| {
                similarity > top || (similarity == top && entry.stored_at >= kept.stored_at)
            }) {
                best = Some((entry, similarity));
            }
        }
        let (entry, similarity) = best?;
        // A hair of slack for rounding, so a threshold of 1 still takes the same text.
        (similarity >= self.threshold - 1e-6).then(|| Found {
            answer: Arc::clone(&entry.answer),
            similarity,
        })
    }

    /// Stores `answer` under the unit vector `vector` in `partition`, first dropping what
    /// expired and, at the bound, the oldest entries.
    pub(crate) fn insert(&self, partition: Arc<[u8]>, vector: Vec<f32>, answer: Answer) {
        let now = Instant::now();
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let expired = inner.order.front().is_some_and(|(partition, id)| {
                inner.partitions.get(partition).is_some_and(|entries| {
                    entries.iter().any(|entry| {
                        entry.id == *id
                            && now.saturating_duration_since(entry.stored_at) >= self.ttl
                    })
                })
            });
            if !expired && inner.order.len() < self.max_entries {
                break;
            }
            inner.remove_oldest();
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.order.push_back((Arc::clone(&partition), id));
        inner.partitions.entry(partition).or_default().push(Entry {
            id,
            vector: vector.into_boxed_slice(),
            answer: Arc::new(answer),
            stored_at: now,
        });
        drop(inner);
        self.stored.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_bypass(&self) {
        self.bypassed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_embed_failure(&self) {
        self.embed_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> SemanticCacheStats {
        let entries = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .order
            .len();
        SemanticCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            embed_failures: self.embed_failures.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            entries: entries as u64,
        }
    }
}

/// Counts of what a [`SemanticCacheLayer`](super::SemanticCacheLayer) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SemanticCacheStats {
    /// Calls answered from the index.
    pub hits: u64,
    /// Calls looked up and sent upstream (no answer similar enough).
    pub misses: u64,
    /// Calls passed on without a lookup: no scope value, no user text, non-text content,
    /// or `no-cache`.
    pub bypassed: u64,
    /// Calls whose embedding failed or timed out (they were sent upstream).
    pub embed_failures: u64,
    /// Answers stored.
    pub stored: u64,
    /// Answers held now (expired ones until the next store drops them).
    pub entries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use seawall_core::{AssistantMessage, FinishReason, ProviderKind};

    fn answer(text: &str) -> Answer {
        Answer::Whole {
            id: String::new(),
            provider: ProviderKind::OpenAi,
            model: "m".into(),
            message: AssistantMessage::text(text),
            finish_reason: Some(FinishReason::Stop),
            usage: None,
        }
    }

    fn text(found: Option<Found>) -> Option<String> {
        found.map(|f| match &*f.answer {
            Answer::Whole { message, .. } => message.text.clone(),
            Answer::Streamed { .. } => String::new(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_bound_evicts_the_oldest_and_partitions_never_mix() {
        let index = Index::new(Duration::from_secs(60), 2, 0.9);
        let p: Arc<[u8]> = Arc::from(&b"p"[..]);
        let q: Arc<[u8]> = Arc::from(&b"q"[..]);
        index.insert(Arc::clone(&p), vec![1.0, 0.0], answer("a"));
        index.insert(Arc::clone(&q), vec![1.0, 0.0], answer("b"));
        assert_eq!(text(index.find(&p, &[1.0, 0.0])).as_deref(), Some("a"));
        assert_eq!(text(index.find(&q, &[1.0, 0.0])).as_deref(), Some("b"));
        assert!(
            index.find(&p, &[0.0, 1.0]).is_none(),
            "orthogonal: below the threshold"
        );
        index.insert(Arc::clone(&q), vec![0.0, 1.0], answer("c"));
        assert!(
            index.find(&p, &[1.0, 0.0]).is_none(),
            "the oldest was evicted"
        );
        assert_eq!(index.stats().entries, 2);
        assert!(unit(vec![0.0, 0.0]).is_none());
        assert!(unit(vec![f32::NAN]).is_none());
    }
}
