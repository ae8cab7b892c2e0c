//! Benchmarks: one admission through a limiter whose state is in process, and in Redis on
//! loopback (mostly from the replica's lease; and call by call, one script call each, for a
//! limiter with no configured limit to size a lease); one budget reservation in Redis
//! (mostly from the leases); a cache hit through the cache layer with its answers in
//! process and in Redis; an idempotency key claimed in Redis. Needs `redis-server` on
//! `PATH`; starts its own.
//!
//! `cargo bench -p seawall-redis --bench state`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use seawall::budget::{BudgetStore, Line};
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
use seawall_core::TokenEstimate;
use seawall_redis::testing::RedisServer;
use seawall_redis::{RedisBudgets, RedisConfig, RedisLimiterState, RedisState};

const CALL: TokenEstimate = TokenEstimate {
    prompt: 500,
    reserved_output: 1_000,
};

fn config() -> RateLimitConfig {
    RateLimitConfig::new()
        .requests(Rate::per_minute(1 << 40))
        .tokens(Rate::per_minute(1 << 50))
}

fn state(c: &mut Criterion) {
    let server = RedisServer::start().expect("redis-server on PATH");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = runtime.block_on(async {
        RedisState::new(RedisConfig::new(server.url()).timeout(Duration::from_secs(1)))
            .expect("redis state")
    });
    let in_process = RateLimiter::new("bench", config());
    let shared = RateLimiter::with_state(
        "bench",
        config(),
        Arc::new(RedisLimiterState::new(&redis, "bench", &config())),
    );
    // Bounded only by the provider's reports: nothing to size a lease, one round trip each.
    let call_by_call = RateLimiter::with_state(
        "bench",
        RateLimitConfig::new(),
        Arc::new(RedisLimiterState::new(
            &redis,
            "bench-call-by-call",
            &RateLimitConfig::new(),
        )),
    );
    let budgets = RedisBudgets::new(&redis);
    let lines = [
        Line::new(0, Arc::from("key-a"), 1, 1_500, u64::MAX / 2),
        Line::new(1, Arc::from(""), 1, 1_500, u64::MAX / 2),
    ];

    let mut group = c.benchmark_group("state/admission");
    for (name, limiter) in [
        ("in_process", &in_process),
        ("redis", &shared),
        ("redis_call_by_call", &call_by_call),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    // Held until timed: their settlements are not part of the admission.
                    let mut held = Vec::with_capacity(usize::try_from(iterations).unwrap_or(0));
                    let start = Instant::now();
                    for _ in 0..iterations {
                        held.push(limiter.acquire_now(&CALL).await.expect("admitted"));
                    }
                    let took = start.elapsed();
                    drop(held);
                    // Let the background settlements finish before the next sample.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    took
                })
            });
        });
    }
    group.bench_function("redis_budget_two_lines", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    budgets.reserve(&lines).await.expect("fits");
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

/// A cache hit through the layer (the answer stored, then found), and a claim of a new
/// idempotency key (one script call), on loopback.
fn stores(c: &mut Criterion) {
    use seawall::cache::CacheLayer;
    use seawall::idempotency::{Claim, IdempotencyStore};
    use seawall_core::{
        AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message, ProviderKind,
    };
    use seawall_redis::{RedisCache, RedisIdempotency};
    use tower::{Layer, ServiceExt, service_fn};

    let server = RedisServer::start().expect("redis-server on PATH");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = runtime.block_on(async {
        RedisState::new(RedisConfig::new(server.url()).timeout(Duration::from_secs(1)))
            .expect("redis state")
    });
    let upstream = service_fn(|_request: ChatRequest| async {
        Ok::<_, BoxError>(ChatResponse::new(
            ProviderKind::OpenAi,
            "gpt-4o",
            AssistantMessage::text("Paris"),
            FinishReason::Stop,
        ))
    });
    let redis_cache = RedisCache::new(&redis, 1024 * 1024);
    let shared = CacheLayer::builder(Duration::from_secs(3600))
        .store(Arc::new(redis_cache.clone()))
        .build()
        .layer(upstream);
    let in_process = CacheLayer::new(Duration::from_secs(3600)).layer(upstream);
    let question = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    runtime.block_on(async {
        shared
            .clone()
            .oneshot(question.clone())
            .await
            .expect("stored");
        redis_cache.flush().await;
        in_process
            .clone()
            .oneshot(question.clone())
            .await
            .expect("stored");
    });

    let mut group = c.benchmark_group("state/cache_hit");
    group.bench_function("in_process", |b| {
        b.iter(|| {
            runtime
                .block_on(in_process.clone().oneshot(question.clone()))
                .expect("hit")
        });
    });
    group.bench_function("redis", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    shared.clone().oneshot(question.clone()).await.expect("hit");
                }
                start.elapsed()
            })
        });
    });
    group.finish();

    let keys = RedisIdempotency::new(&redis, Duration::from_secs(3600));
    let mut next = 0_u64;
    c.bench_function("state/idempotency_claim/redis", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let names: Vec<String> = (0..iterations)
                    .map(|i| format!("bench-{}", next + i))
                    .collect();
                next += iterations;
                let start = Instant::now();
                for name in &names {
                    let claim = keys.claim(name, b"request", None).get().await;
                    assert!(matches!(claim, Claim::First(_)), "a new key is claimed");
                }
                let took = start.elapsed();
                for name in &names {
                    keys.release(name);
                }
                keys.flush().await;
                took
            })
        });
    });
}

criterion_group!(benches, state, stores);
criterion_main!(benches);
