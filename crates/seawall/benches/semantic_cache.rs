//! The semantic cache's lookup cost: one call through the layer whose index holds 1,000 or
//! 10,000 answers, all in the request's partition (the worst case for the flat scan), with
//! 1536-number vectors (OpenAI `text-embedding-3-small`) and 256-number ones (the same
//! model with `dimensions: 256`). The embedder is a local function (a seeded pseudo-random
//! unit vector per text), so the figures are the layer's own cost: the scan, the replay,
//! the future; a real embedding call adds its network round trip.
//!
//! `cargo bench -p seawall --features semantic-cache --bench semantic_cache`
//!
//! - `hit/*`: a prompt whose answer is stored (the whole partition is scanned for the best
//!   match, then the answer is replayed).
//! - `miss/*`: a prompt with no similar answer, under `no-store` so the index does not grow
//!   (the scan, then the call to an upstream that answers at once).
//! - `hnsw/*`: for comparison, a search of an HNSW index (`instant-distance`, default
//!   parameters) over the same 1,000 vectors; its build time, which an index that cannot
//!   remove a point pays again on every expiry or eviction, is printed once per size.

use std::future::{Ready, ready};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use seawall::semantic_cache::SemanticCacheLayer;
use seawall_core::{
    AssistantMessage, BoxError, ChatRequest, ChatResponse, Embedder, EmbeddingRequest, Embeddings,
    FinishReason, Message, ProviderKind,
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A pseudo-random vector per text (SplitMix64 seeded by the text's hash).
struct Random(usize);

fn random_vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let mut state = hasher.finish();
    (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) as f32 / u64::MAX as f32) - 0.5
        })
        .collect()
}

/// A unit vector for the HNSW index, distance `1 - cosine`.
#[derive(Clone)]
struct Unit(Vec<f32>);

impl Unit {
    fn of(text: &str, dimensions: usize) -> Self {
        let mut vector = random_vector(text, dimensions);
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        vector.iter_mut().for_each(|x| *x /= norm);
        Self(vector)
    }
}

impl instant_distance::Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum::<f32>()
    }
}

impl Embedder for Random {
    type Future = Ready<Result<Embeddings, BoxError>>;

    fn embed(&self, request: EmbeddingRequest) -> Self::Future {
        let vectors = request
            .input
            .iter()
            .map(|text| random_vector(text, self.0))
            .collect();
        ready(Ok(Embeddings::new(ProviderKind::OpenAi, "random", vectors)))
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("gpt-4o", [Message::user(text)])
}

fn lookups(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let upstream = service_fn(|_request: ChatRequest| {
        ready(Ok::<_, BoxError>(ChatResponse::new(
            ProviderKind::OpenAi,
            "gpt-4o",
            AssistantMessage::text("an answer of a few words"),
            FinishReason::Stop,
        )))
    });
    let mut group = c.benchmark_group("semantic_cache");
    for dimensions in [1536, 256] {
        for entries in [1_000_usize, 10_000] {
            let layer = SemanticCacheLayer::builder(Random(dimensions), "random")
                .max_entries(entries)
                .build()
                .expect("a layer");
            let service = layer.layer(upstream);
            runtime.block_on(async {
                for i in 0..entries {
                    service
                        .clone()
                        .oneshot(ask(&format!("question {i}")))
                        .await
                        .expect("stored");
                }
            });
            assert_eq!(layer.stats().entries, entries as u64);
            let id = format!("{dimensions}d/{entries}");
            let stored = ask(&format!("question {}", entries / 2));
            group.bench_function(BenchmarkId::new("hit", &id), |b| {
                b.iter(|| {
                    let mut service = service.clone();
                    let response = runtime
                        .block_on(async { service.call(stored.clone()).await })
                        .expect("a hit");
                    black_box(response)
                });
            });
            let mut unseen = ask("a question never asked");
            unseen.context.options_mut().cache.no_store = true;
            group.bench_function(BenchmarkId::new("miss", &id), |b| {
                b.iter(|| {
                    let mut service = service.clone();
                    let response = runtime
                        .block_on(async { service.call(unseen.clone()).await })
                        .expect("an answer");
                    black_box(response)
                });
            });
            // The misses stored nothing, and nothing expired.
            assert_eq!(layer.stats().entries, entries as u64);
        }
    }
    group.finish();
}

fn hnsw(c: &mut Criterion) {
    let mut group = c.benchmark_group("semantic_cache");
    // At 1,000 entries only: building the index over 10,000 full-length vectors takes
    // minutes on the project's 2-core machine.
    for dimensions in [1536, 256] {
        let entries = 1_000_usize;
        let points: Vec<Unit> = (0..entries)
            .map(|i| Unit::of(&format!("question {i}"), dimensions))
            .collect();
        let query = points[entries / 2].clone();
        let started = Instant::now();
        let map = instant_distance::Builder::default()
            .seed(1)
            .build(points, (0..entries).collect::<Vec<_>>());
        println!(
            "semantic_cache/hnsw-build/{dimensions}d/{entries}: {:?}",
            started.elapsed()
        );
        let id = format!("{dimensions}d/{entries}");
        group.bench_function(BenchmarkId::new("hnsw", &id), |b| {
            b.iter(|| {
                let mut search = instant_distance::Search::default();
                let best = map
                    .search(&query, &mut search)
                    .next()
                    .map(|item| *item.value);
                assert_eq!(best, Some(entries / 2));
                black_box(best)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, lookups, hnsw);
criterion_main!(benches);
