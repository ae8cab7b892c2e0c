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

use std::future::{Ready, ready};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use seawall::semantic_cache::SemanticCacheLayer;
use seawall_core::{
    AssistantMessage, BoxError, ChatRequest, ChatResponse, Embedder, EmbeddingRequest, Embeddings,
    FinishReason, Message, ProviderKind,
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A pseudo-random vector per text (SplitMix64 seeded by the text's hash).
struct Random(usize);

impl Embedder for Random {
    type Future = Ready<Result<Embeddings, BoxError>>;

    fn embed(&self, request: EmbeddingRequest) -> Self::Future {
        let vectors = request
            .input
            .iter()
            .map(|text| {
                let mut hasher = DefaultHasher::new();
                text.hash(&mut hasher);
                let mut state = hasher.finish();
                (0..self.0)
                    .map(|_| {
                        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                        let mut z = state;
                        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                        ((z ^ (z >> 31)) as f32 / u64::MAX as f32) - 0.5
                    })
                    .collect()
            })
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
            let stats = layer.stats();
            assert!(stats.hits > 0 && stats.entries == entries as u64);
        }
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
