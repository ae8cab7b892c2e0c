//! Benchmarks: rate limiter admission (uncontended, and with a second thread contending),
//! failover planning for 3 and 10 targets, and relaying a stream through the router
//! (with and without a mid-stream recovery).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use seawall::failover::{Failover, Strategy, Target};
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, ErrorKind, EventStream, FinishReason, LlmError, Message,
    ProviderKind, StreamEvent, TokenEstimate,
};
use tower::ServiceExt;

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

/// Events of a streamed answer of `words` one-word deltas; `broken` replaces the end of
/// message with a cut connection.
fn answer(words: usize, broken: bool) -> Vec<StreamEvent> {
    let mut events = Vec::with_capacity(words + 2);
    events.push(StreamEvent::Start {
        id: None,
        model: None,
    });
    events.extend((0..words).map(|_| StreamEvent::TextDelta(" word".into())));
    events.push(if broken {
        StreamEvent::Error(LlmError::new(ErrorKind::StreamTruncated, "cut"))
    } else {
        StreamEvent::Finish(FinishReason::Stop)
    });
    events
}

fn streamed(events: Vec<StreamEvent>) -> ChatResponse {
    ChatResponse::streaming(
        ProviderKind::Anthropic,
        "m",
        EventStream::from_events(events),
    )
}

async fn drain(mut stream: EventStream) -> usize {
    let mut count = 0;
    while let Some(event) = stream.next().await {
        count += usize::from(black_box(event).is_content());
    }
    count
}

fn relay(c: &mut Criterion) {
    const WORDS: usize = 256;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let whole = tower::service_fn(|_: ChatRequest| async {
        Ok::<_, BoxError>(streamed(answer(WORDS, false)))
    });
    let half_broken = tower::service_fn(|_: ChatRequest| async {
        Ok::<_, BoxError>(streamed(answer(WORDS / 2, true)))
    });
    let half = tower::service_fn(|_: ChatRequest| async {
        Ok::<_, BoxError>(streamed(answer(WORDS / 2, false)))
    });
    let request = ChatRequest::new("m", [Message::user("hi")]).streaming();
    let relayed = Failover::builder().target(Target::new("a", whole)).build();
    let recovered = Failover::builder()
        .target(Target::new("a", half_broken))
        .target(Target::new("b", half).accepts_prefill(true))
        .build();

    let mut group = c.benchmark_group("failover/stream_256_deltas");
    group.bench_function("direct", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut response = whole.oneshot(request.clone()).await.unwrap();
                drain(response.stream.take().unwrap()).await
            })
        });
    });
    group.bench_function("relayed", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut response = relayed.clone().oneshot(request.clone()).await.unwrap();
                drain(response.stream.take().unwrap()).await
            })
        });
    });
    group.bench_function("recovered_by_continuation", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut response = recovered.clone().oneshot(request.clone()).await.unwrap();
                let delivered = drain(response.stream.take().unwrap()).await;
                assert_eq!(delivered, WORDS);
                delivered
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = admission, planning, relay
}
criterion_main!(benches);
