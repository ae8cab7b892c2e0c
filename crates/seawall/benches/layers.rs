//! Added cost per call of each layer, and of the full recommended stack, over a bare,
//! always-ready service, on the happy path (a complete response on the first attempt,
//! breakers closed, limiters admitting at once, no timer firing).
//!
//! `cargo bench -p seawall --bench layers` (with `--features metrics` for the metrics
//! layer's rows)
//!
//! Two groups: `call/*` times a whole call through the layer (and `call/bare` the bare
//! service alone); `added/*` times blocks of bare calls and of layered calls interleaved,
//! and reports the difference per call, so both sides see the same machine load (a sample
//! where noise makes the layered block faster counts as 1 ns per call).
//!
//! `added/full_stack_stream_200` does the same for a streamed call consumed to its end: a
//! start, 200 text deltas, usage and a finish, every event ready at once.

use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_core::Stream;
use seawall::breaker::BreakerLayer;
use seawall::budget::{BudgetLayer, BudgetRule, RequestCaps, Scope, Window};
use seawall::cache::CacheLayer;
use seawall::chaos::ChaosLayer;
use seawall::failover::Failover;
use seawall::idempotency::IdempotencyLayer;
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
use seawall::retry::RetryLayer;
use seawall::stack::TargetStack;
use seawall::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use seawall_core::fault::{Fault, FaultRule};
use seawall_core::{
    AssistantMessage, BoxError, ChatRequest, ChatResponse, EventStream, FinishReason, Message,
    ProviderKind, StreamEvent, Usage,
};
use tower::layer::layer_fn;
use tower::{Layer, Service};

/// Answers at once with an empty complete response (no allocation).
#[derive(Clone, Copy)]
struct Bare;

impl Service<ChatRequest> for Bare {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = Ready<Result<ChatResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ChatRequest) -> Self::Future {
        ready(Ok(ChatResponse::new(
            ProviderKind::OpenAi,
            String::new(),
            AssistantMessage::default(),
            FinishReason::Stop,
        )))
    }
}

/// How many text deltas [`Streamed`] answers with.
const DELTAS: u32 = 200;

/// Answers at once with a stream of a start, [`DELTAS`] text deltas, usage and a finish,
/// every event ready when polled. The deltas' text is empty so that the bare call allocates
/// no string per event: what is measured is the layers' work.
#[derive(Clone, Copy)]
struct Streamed;

impl Service<ChatRequest> for Streamed {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = Ready<Result<ChatResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ChatRequest) -> Self::Future {
        let events = EventStream::new(Deltas { sent: 0 });
        ready(Ok(ChatResponse::streaming(
            ProviderKind::OpenAi,
            String::new(),
            events,
        )))
    }
}

/// The events of [`Streamed`]'s answer, made as they are polled.
struct Deltas {
    sent: u32,
}

impl Stream for Deltas {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let event = match self.sent {
            0 => StreamEvent::Start {
                id: None,
                model: None,
            },
            sent if sent <= DELTAS => StreamEvent::TextDelta(String::new()),
            sent if sent == DELTAS + 1 => StreamEvent::Usage(Usage::new(12, u64::from(DELTAS))),
            sent if sent == DELTAS + 2 => StreamEvent::Finish(FinishReason::Stop),
            _ => return Poll::Ready(None),
        };
        self.sent += 1;
        Poll::Ready(Some(event))
    }
}

fn one_call<S>(service: &mut S, request: &ChatRequest, cx: &mut Context<'_>)
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: std::fmt::Debug,
{
    assert!(service.poll_ready(cx).is_ready());
    let future = pin!(service.call(request.clone()));
    match future.poll(cx) {
        Poll::Ready(result) => {
            black_box(result.expect("the bare service answers"));
        }
        Poll::Pending => panic!("the happy path completes at once"),
    }
}

/// A streamed call, its stream read to the end.
fn one_streamed_call<S>(service: &mut S, request: &ChatRequest, cx: &mut Context<'_>)
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: std::fmt::Debug,
{
    assert!(service.poll_ready(cx).is_ready());
    let future = pin!(service.call(request.clone()));
    let mut response = match future.poll(cx) {
        Poll::Ready(result) => result.expect("the streamed service answers"),
        Poll::Pending => panic!("the happy path completes at once"),
    };
    let mut stream = response.stream.take().expect("a streamed answer");
    let mut events = 0_u32;
    loop {
        match Pin::new(&mut stream).poll_next(cx) {
            Poll::Ready(Some(event)) => {
                black_box(&event);
                events += 1;
            }
            Poll::Ready(None) => break,
            Poll::Pending => panic!("every event is ready at once"),
        }
    }
    assert_eq!(events, DELTAS + 3, "every event relayed");
    black_box(response);
}

/// The time `layered` takes over `bare` for `iterations` calls, run alternately in blocks of
/// `block` so that both see the same machine.
fn added(
    iterations: u64,
    block: u64,
    cx: &mut Context<'_>,
    mut bare: impl FnMut(&mut Context<'_>),
    mut layered: impl FnMut(&mut Context<'_>),
) -> Duration {
    let (mut with_layers, mut alone) = (Duration::ZERO, Duration::ZERO);
    let mut left = iterations;
    while left > 0 {
        let calls = left.min(block);
        let started = Instant::now();
        for _ in 0..calls {
            bare(cx);
        }
        alone += started.elapsed();
        let started = Instant::now();
        for _ in 0..calls {
            layered(cx);
        }
        with_layers += started.elapsed();
        left -= calls;
    }
    // Criterion cannot take a negative time: when noise makes a layered block faster than
    // its bare twin, the sample counts as 1 ns (an over-estimate).
    with_layers
        .saturating_sub(alone)
        .max(Duration::from_nanos(iterations))
}

/// Times `service` streaming calls against [`Streamed`] alone, as `bench_layer_with`.
fn bench_streamed<S>(c: &mut Criterion, name: &str, mut service: S)
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: std::fmt::Debug,
{
    let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    let mut bare = Streamed;
    let mut cx = Context::from_waker(Waker::noop());
    c.bench_function(&format!("call/{name}"), |b| {
        b.iter(|| one_streamed_call(&mut service, &request, &mut cx));
    });
    c.bench_function(&format!("added/{name}"), |b| {
        b.iter_custom(|iterations| {
            added(
                iterations,
                20,
                &mut cx,
                |cx| one_streamed_call(&mut bare, &request, cx),
                |cx| one_streamed_call(&mut service, &request, cx),
            )
        });
    });
}

/// Deadline → Failover over 3 targets → per target Retry → Breaker → RateLimit →
/// AttemptTimeout → `service`, the first target answering.
fn full_stack_over<S>(
    service: S,
) -> impl Service<ChatRequest, Response = ChatResponse, Error = BoxError>
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let mut router = Failover::builder();
    for id in ["openai/gpt-4o", "anthropic/claude", "gemini/flash"] {
        let guarded = TargetStack::new(id)
            .rate_limit(limiter(id))
            .attempt_timeout(
                AttemptTimeoutLayer::new(Duration::from_secs(30))
                    .first_token(Duration::from_secs(5))
                    .idle(Duration::from_secs(10)),
            )
            .build(service.clone());
        router = router.target(guarded.target);
    }
    DeadlineLayer::new(Duration::from_secs(60)).layer(router.build())
}

fn bench_layer<L>(c: &mut Criterion, name: &str, layer: &L)
where
    L: Layer<Bare>,
    L::Service: Service<ChatRequest, Response = ChatResponse>,
    <L::Service as Service<ChatRequest>>::Error: std::fmt::Debug,
{
    let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    bench_layer_with(c, name, layer, &request);
}

fn bench_layer_with<L>(c: &mut Criterion, name: &str, layer: &L, request: &ChatRequest)
where
    L: Layer<Bare>,
    L::Service: Service<ChatRequest, Response = ChatResponse>,
    <L::Service as Service<ChatRequest>>::Error: std::fmt::Debug,
{
    let request = request.clone();
    let mut service = layer.layer(Bare);
    let mut bare = Bare;
    let mut cx = Context::from_waker(Waker::noop());
    c.bench_function(&format!("call/{name}"), |b| {
        b.iter(|| one_call(&mut service, &request, &mut cx));
    });
    c.bench_function(&format!("added/{name}"), |b| {
        b.iter_custom(|iterations| {
            added(
                iterations,
                1_000,
                &mut cx,
                |cx| one_call(&mut bare, &request, cx),
                |cx| one_call(&mut service, &request, cx),
            )
        });
    });
}

fn layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    // Timers need a runtime context; the happy path never registers one with the driver.
    let _context = runtime.enter();

    let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    let mut cx = Context::from_waker(Waker::noop());
    c.bench_function("call/bare", |b| {
        b.iter(|| one_call(&mut Bare, &request, &mut cx));
    });
    bench_layer(c, "deadline", &DeadlineLayer::new(Duration::from_secs(30)));
    bench_layer(
        c,
        "attempt_timeout",
        &AttemptTimeoutLayer::new(Duration::from_secs(30))
            .first_token(Duration::from_secs(5))
            .idle(Duration::from_secs(10)),
    );
    bench_layer(c, "retry", &RetryLayer::new());
    bench_layer(c, "breaker", &BreakerLayer::new("openai/gpt-4o"));
    bench_layer(
        c,
        "rate_limit",
        &RateLimitLayer::new(limiter("openai/gpt-4o")),
    );
    // Prices only: each call's cost, no budget.
    bench_layer(c, "budget_cost_only", &BudgetLayer::builder().build());
    // A user's daily dollar budget and a per-request cost cap, far from their limits: one
    // reservation and one settlement per call.
    let by_user = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")])
        .with_user("ada")
        .with_max_output_tokens(64);
    bench_layer_with(
        c,
        "budget_user_day",
        &BudgetLayer::builder()
            .budget(BudgetRule::usd(Scope::User, Window::Day, 1e6))
            .caps(RequestCaps::new().max_cost_usd(1.0))
            .build(),
        &by_user,
    );
    bench_layer(c, "chaos_disabled", &ChaosLayer::disabled());
    // A hit: the first call stores the answer, every timed call is answered from the
    // in-process store.
    bench_layer(c, "cache_hit", &CacheLayer::new(Duration::from_secs(3600)));
    // A replay: the first call with the key completes, every timed call replays it.
    let mut keyed = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    keyed.context.options_mut().idempotency_key = Some("bench-key".into());
    bench_layer_with(
        c,
        "idempotency_replay",
        &IdempotencyLayer::new(Duration::from_secs(3600)),
        &keyed,
    );
    // A plan whose one rule never fires: every call counts and checks the rule.
    bench_layer(
        c,
        "chaos_idle_plan",
        &ChaosLayer::new([FaultRule::nth(u64::MAX, Fault::overloaded())]),
    );
    // Deadline → Failover over 3 targets → per target Retry → Breaker → RateLimit →
    // AttemptTimeout, the first target answering.
    let full_stack = layer_fn(full_stack_over::<Bare>);
    bench_layer(c, "full_stack", &full_stack);
    // The same stack answering a stream of 200 text deltas, read to its end.
    c.bench_function("call/stream_bare", |b| {
        b.iter(|| one_streamed_call(&mut Streamed, &request, &mut cx));
    });
    bench_streamed(c, "full_stack_stream_200", full_stack_over(Streamed));

    // The same stack while a subscriber listens. As the gateway's log does: events as JSON
    // lines at `info` (here to a sink), spans left out (the happy path has no event).
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::filter::{self, FilterExt};
        use tracing_subscriber::layer::SubscriberExt;

        let events = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::sink)
            .with_filter(filter::filter_fn(|meta| !meta.is_span()).and(filter::LevelFilter::INFO));
        let subscriber = tracing_subscriber::registry().with(events);
        let _listening = tracing::subscriber::set_default(subscriber);
        bench_layer(c, "full_stack_logged", &full_stack);
    }
    // And with a subscriber that builds the call and attempt spans and records their
    // fields (JSON lines at `info`, with the spans' fields).
    {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter("info")
            .with_writer(std::io::sink)
            .finish();
        let _listening = tracing::subscriber::set_default(subscriber);
        bench_layer(c, "full_stack_spans", &full_stack);
    }

    #[cfg(feature = "metrics")]
    {
        use std::sync::Arc;

        use seawall::metrics::{CallMetrics, MetricsLayer};

        let metrics = Arc::new(CallMetrics::new());
        bench_layer(c, "metrics", &MetricsLayer::new(Arc::clone(&metrics)));
        let metered = layer_fn(|bare: Bare| {
            MetricsLayer::new(Arc::clone(&metrics)).layer(full_stack.layer(bare))
        });
        bench_layer(c, "full_stack_metered", &metered);
        bench_streamed(
            c,
            "full_stack_stream_200_metered",
            MetricsLayer::new(Arc::clone(&metrics)).layer(full_stack_over(Streamed)),
        );
    }
}

/// A limiter whose quota the benchmark never exhausts.
fn limiter(target: &str) -> RateLimiter {
    RateLimiter::new(
        target,
        RateLimitConfig::new()
            .requests(Rate::per_second(1_000_000_000))
            .tokens(Rate::per_second(1_000_000_000_000)),
    )
}

criterion_group!(benches, layers);
criterion_main!(benches);
