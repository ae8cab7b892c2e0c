//! Benchmarks: rate limiter admission (uncontended, and with a second thread contending)
//! and failover planning for 3 and 10 targets.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use seawall::failover::{Failover, Strategy, Target};
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
use seawall_core::{BoxError, ChatRequest, ChatResponse, TokenEstimate};

/// A limiter so large it always admits: the benchmarks measure the admission path, not
/// waits.
fn limiter() -> RateLimiter {
    RateLimiter::new(
        "bench",
        RateLimitConfig::new()
            .requests(Rate::per_minute(u64::MAX / 4))
            .tokens(Rate::per_minute(u64::MAX / 4)),
    )
}

const ESTIMATE: TokenEstimate = TokenEstimate {
    prompt: 500,
    reserved_output: 1_000,
};

fn admission(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/admission");

    let uncontended = limiter();
    group.bench_function("uncontended", |b| {
        b.iter(|| {
            let reservation = uncontended.try_acquire(black_box(&ESTIMATE));
            black_box(reservation).ok();
        });
    });

    let contended = limiter();
    group.bench_function("2_threads", |b| {
        b.iter_custom(|iterations| {
            let stop = Arc::new(AtomicBool::new(false));
            let other = {
                let limiter = contended.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        black_box(limiter.try_acquire(&ESTIMATE)).ok();
                    }
                })
            };
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(contended.try_acquire(black_box(&ESTIMATE))).ok();
            }
            let elapsed = start.elapsed();
            stop.store(true, Ordering::Relaxed);
            other.join().ok();
            elapsed
        });
    });
    group.finish();
}

fn router(targets: usize, strategy: Strategy) -> Failover {
    let service = tower::service_fn(|_: ChatRequest| async {
        Err::<ChatResponse, BoxError>("unused".into())
    });
    Failover::builder()
        .strategy(strategy)
        .targets((0..targets).map(|i| {
            Target::new(format!("target-{i}"), service)
                .model(format!("model-{i}"))
                .weight(u32::try_from(i % 4).unwrap_or(1) + 1)
        }))
        .build()
}

fn planning(c: &mut Criterion) {
    let mut group = c.benchmark_group("failover/plan");
    for strategy in [
        Strategy::Priority,
        Strategy::Weighted,
        Strategy::LeastLatency,
        Strategy::PowerOfTwoChoices,
    ] {
        for targets in [3, 10] {
            let router = router(targets, strategy);
            group.bench_with_input(
                BenchmarkId::new(format!("{strategy:?}"), targets),
                &router,
                |b, router| b.iter(|| black_box(router.plan())),
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = admission, planning
}
criterion_main!(benches);
