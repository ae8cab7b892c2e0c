//! Benchmarks: one admission through a limiter whose state is in process, and in Redis on
//! loopback (one script call); one budget reservation in Redis. Needs `redis-server` on
//! `PATH`; starts its own.

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
    let budgets = RedisBudgets::new(&redis);
    let lines = [
        Line::new(0, Arc::from("key-a"), 1, 1_500, u64::MAX / 2),
        Line::new(1, Arc::from(""), 1, 1_500, u64::MAX / 2),
    ];

    let mut group = c.benchmark_group("state/admission");
    for (name, limiter) in [("in_process", &in_process), ("redis", &shared)] {
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

criterion_group!(benches, state);
criterion_main!(benches);
