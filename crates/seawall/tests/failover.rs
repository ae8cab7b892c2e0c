//! The failover router on tokio's paused clock.

mod support;

use seawall::timeout::TokioClock;
use seawall_core::Clock as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use seawall::failover::{
    AllTargetsFailed, ErrorWithTrail, Failover, SkipReason, Strategy, Target, TargetGate,
};
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
use seawall_core::{
    AttemptOutcome, BoxError, BreakerState, Cause, ChatRequest, ChatResponse, CircuitOpen,
    Deadline, ErrorKind, FinishReason, LlmError, OpenReason, StreamEvent, TargetId, TimedOut,
    TimeoutKind, TokenEstimate, Usage,
};
use support::{NumberEstimator, collect, reply, streamed, weighing};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A target service that counts its calls and answers with `answer`.
#[derive(Clone)]
struct Scripted {
    calls: Arc<AtomicUsize>,
    models: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Scripted {
    fn new() -> Self {
        Self {
            calls: Arc::default(),
            models: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service<F>(
        &self,
        answer: F,
    ) -> impl tower::Service<
        ChatRequest,
        Response = ChatResponse,
        Error = BoxError,
        Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
    where
        F: Fn(&ChatRequest) -> Result<ChatResponse, BoxError> + Clone + Send + Sync + 'static,
    {
        let this = self.clone();
        service_fn(move |request: ChatRequest| {
            this.calls.fetch_add(1, Ordering::SeqCst);
            this.models.lock().unwrap().push(request.model.to_string());
            let result = answer(&request);
            async move { result }
        })
    }
}

fn ok(request: &ChatRequest) -> Result<ChatResponse, BoxError> {
    Ok(reply(&request.model, "ok"))
}

fn overloaded(_: &ChatRequest) -> Result<ChatResponse, BoxError> {
    Err(LlmError::new(ErrorKind::Overloaded, "overloaded")
        .with_status(529)
        .into())
}

fn trail_of(error: &BoxError) -> &seawall_core::Trail {
    ErrorWithTrail::find(&**error)
        .unwrap_or_else(|| panic!("error without a trail: {error}"))
        .trail()
}

fn targets_tried(trail: &seawall_core::Trail) -> Vec<(String, &'static str)> {
    trail
        .attempts
        .iter()
        .map(|attempt| {
            let outcome = match &attempt.outcome {
                AttemptOutcome::Succeeded => "succeeded",
                AttemptOutcome::Failed { .. } => "failed",
                AttemptOutcome::Skipped { .. } => "skipped",
                other => panic!("an outcome this test does not know: {other:?}"),
            };
            (attempt.target.to_string(), outcome)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn priority_walks_the_chain_and_maps_each_model_name() {
    let (a, b, c) = (Scripted::new(), Scripted::new(), Scripted::new());
    let router = Failover::builder()
        .target(Target::new("anthropic/opus", a.service(overloaded)).model("claude-opus-4-1"))
        .target(Target::new("openai/mini", b.service(overloaded)).model("gpt-4o-mini"))
        .target(Target::new("local/llama", c.service(ok)).model("llama3.2"))
        .build();
    assert_eq!(
        router.plan(),
        vec![
            TargetId::new("anthropic/opus"),
            TargetId::new("openai/mini"),
            TargetId::new("local/llama")
        ]
    );

    let response = router.oneshot(weighing(10)).await.unwrap();
    assert_eq!(response.model, "llama3.2");
    assert_eq!(*a.models.lock().unwrap(), vec!["claude-opus-4-1"]);
    assert_eq!(*b.models.lock().unwrap(), vec!["gpt-4o-mini"]);
    let trail = &response.trail;
    assert_eq!(
        targets_tried(trail),
        vec![
            ("anthropic/opus".into(), "failed"),
            ("openai/mini".into(), "failed"),
            ("local/llama".into(), "succeeded"),
        ]
    );
    assert_eq!(trail.final_target, Some(TargetId::new("local/llama")));
    assert_eq!(trail.final_model.as_deref(), Some("llama3.2"));
    assert!(matches!(
        trail.attempts[0].outcome,
        AttemptOutcome::Failed {
            cause: Cause::Provider(ErrorKind::Overloaded),
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_returns_at_once_with_its_trail() {
    let (a, b) = (Scripted::new(), Scripted::new());
    let router = Failover::builder()
        .target(Target::new(
            "a",
            a.service(|_| {
                Err(LlmError::new(ErrorKind::InvalidRequest, "messages: bad")
                    .with_status(400)
                    .into())
            }),
        ))
        .target(Target::new("b", b.service(ok)))
        .build();
    let error = router.oneshot(weighing(10)).await.unwrap_err();
    assert_eq!(b.calls(), 0, "no target would do better");
    assert_eq!(
        seawall_core::classify(&*error).cause,
        Cause::Provider(ErrorKind::InvalidRequest)
    );
    let trail = trail_of(&error);
    assert_eq!(targets_tried(trail), vec![("a".into(), "failed")]);
    assert_eq!(trail.final_target, Some(TargetId::new("a")));
}

#[tokio::test(start_paused = true)]
async fn when_every_target_fails_one_error_lists_every_attempt() {
    let (a, b, c) = (Scripted::new(), Scripted::new(), Scripted::new());
    let router = Failover::builder()
        .target(Target::new("a", a.service(overloaded)))
        .target(
            Target::new("b", b.service(ok)).gate(Arc::new(FixedGate(Some(SkipReason::Other(
                "maintenance".into(),
            ))))),
        )
        .target(Target::new(
            "c",
            c.service(|_| Err(TimedOut::new(TimeoutKind::Attempt, Duration::from_secs(30)).into())),
        ))
        .build();
    let error = router.oneshot(weighing(10)).await.unwrap_err();
    let wrapper = ErrorWithTrail::find(&*error).unwrap();
    let all = wrapper.downcast_inner::<AllTargetsFailed>().unwrap();
    assert_eq!(
        all.attempts
            .iter()
            .map(|a| a.target.to_string())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(matches!(
        all.attempts[1].outcome,
        AttemptOutcome::Skipped { .. }
    ));
    assert!(matches!(
        all.attempts[2].outcome,
        AttemptOutcome::Failed {
            cause: Cause::TimedOut(TimeoutKind::Attempt),
            ..
        }
    ));
    let message = error.to_string();
    assert!(
        message.starts_with("all targets failed after 3 attempts"),
        "{message}"
    );
    assert!(
        message.contains("a (model) failed: overloaded (529): overloaded"),
        "{message}"
    );
    assert!(
        message.contains("b (model) skipped: maintenance"),
        "{message}"
    );
    assert!(
        message.contains("c (model) failed: attempt exceeded 30000 ms"),
        "{message}"
    );
    assert_eq!(b.calls(), 0);
    assert_eq!(
        seawall_core::classify(&*error).cause,
        Cause::AllTargetsFailed
    );
}

#[tokio::test(start_paused = true)]
async fn hops_are_bounded() {
    let targets: Vec<Scripted> = (0..4).map(|_| Scripted::new()).collect();
    let router = Failover::builder()
        .targets(
            targets
                .iter()
                .enumerate()
                .map(|(i, t)| Target::new(format!("t{i}"), t.service(overloaded))),
        )
        .max_hops(2)
        .build();
    let error = router.oneshot(weighing(10)).await.unwrap_err();
    let calls: Vec<usize> = targets.iter().map(Scripted::calls).collect();
    assert_eq!(calls, [1, 1, 0, 0]);
    assert_eq!(trail_of(&error).sent_attempts(), 2);
}

/// A gate that always answers the same.
#[derive(Debug)]
struct FixedGate(Option<SkipReason>);

impl TargetGate for FixedGate {
    fn check(&self, _: Instant, _: &TokenEstimate, _: Option<Duration>) -> Result<(), SkipReason> {
        self.0.clone().map_or(Ok(()), Err)
    }
}

/// A breaker handle double: its state and, when not closed, the rejection.
#[derive(Debug)]
struct BreakerDouble {
    state: BreakerState,
    open: Option<CircuitOpen>,
}

impl TargetGate for BreakerDouble {
    fn check(&self, _: Instant, _: &TokenEstimate, _: Option<Duration>) -> Result<(), SkipReason> {
        self.open.clone().map_or(Ok(()), |open| Err(open.into()))
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.state)
    }
}

#[tokio::test(start_paused = true)]
async fn open_cooling_saturated_and_too_small_targets_are_skipped_without_a_call() {
    let open = Scripted::new();
    let cooling = Scripted::new();
    let saturated = Scripted::new();
    let small = Scripted::new();
    let healthy = Scripted::new();

    // A limiter with its window spent: the call would wait 6 s, past its 2 s deadline.
    let limiter = RateLimiter::new(
        "saturated",
        RateLimitConfig::new()
            .tokens(Rate::per_minute(1_000))
            .default_output_tokens(0)
            .estimator(Arc::new(NumberEstimator)),
    );
    let _spent = limiter
        .try_acquire(&TokenEstimate {
            prompt: 1_000,
            reserved_output: 0,
        })
        .unwrap();

    let router = Failover::builder()
        .estimator(Arc::new(NumberEstimator))
        .default_output_tokens(0)
        .target(
            Target::new("open", open.service(ok)).gate(Arc::new(BreakerDouble {
                state: BreakerState::Open,
                open: Some(CircuitOpen::new(
                    TargetId::new("open"),
                    OpenReason::Unhealthy,
                    Duration::from_secs(5),
                )),
            })),
        )
        .target(
            Target::new("cooling", cooling.service(ok)).gate(Arc::new(BreakerDouble {
                state: BreakerState::Closed,
                open: Some(CircuitOpen::new(
                    TargetId::new("cooling"),
                    OpenReason::OutOfCapacity,
                    Duration::from_secs(20),
                )),
            })),
        )
        .target(Target::new("saturated", saturated.service(ok)).gate(Arc::new(limiter)))
        .target(Target::new("small", small.service(ok)).context_window(50))
        .target(
            Target::new("healthy", healthy.service(ok))
                .context_window(8_000)
                .gate(Arc::new(BreakerDouble {
                    state: BreakerState::Closed,
                    open: None,
                })),
        )
        .build();

    let mut request = weighing(100);
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(2)));
    let response = router.oneshot(request).await.unwrap();

    assert_eq!(
        [
            open.calls(),
            cooling.calls(),
            saturated.calls(),
            small.calls()
        ],
        [0; 4]
    );
    assert_eq!(healthy.calls(), 1);
    let trail = &response.trail;
    assert_eq!(
        targets_tried(trail),
        vec![
            ("open".into(), "skipped"),
            ("cooling".into(), "skipped"),
            ("saturated".into(), "skipped"),
            ("small".into(), "skipped"),
            ("healthy".into(), "succeeded"),
        ]
    );
    let reasons: Vec<String> = trail.attempts[..4]
        .iter()
        .map(|a| match &a.outcome {
            AttemptOutcome::Skipped { reason } => reason.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        reasons[0].contains("circuit open for open"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("cooling down"), "{}", reasons[1]);
    assert!(reasons[2].contains("past the deadline"), "{}", reasons[2]);
    assert!(
        reasons[3].contains("smaller than the 100"),
        "{}",
        reasons[3]
    );
    assert_eq!(
        trail.breaker_states,
        vec![
            (TargetId::new("open"), BreakerState::Open),
            (TargetId::new("cooling"), BreakerState::Closed),
            (TargetId::new("healthy"), BreakerState::Closed),
        ]
    );
    assert_eq!(trail.tokens_estimated, Some(100));
    assert_eq!(trail.sent_attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_trail_records_limiter_wait_latency_and_tokens() {
    let limiter = RateLimiter::new(
        "a",
        RateLimitConfig::new()
            .tokens(Rate::per_minute(1_000))
            .default_output_tokens(0)
            .estimator(Arc::new(NumberEstimator)),
    );
    let _spent = limiter
        .try_acquire(&TokenEstimate {
            prompt: 1_000,
            reserved_output: 0,
        })
        .unwrap();
    let slow = service_fn(|request: ChatRequest| async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        Ok::<_, BoxError>(reply(&request.model, "ok").with_usage(Usage::new(50, 7)))
    });
    let router = Failover::builder()
        .estimator(Arc::new(NumberEstimator))
        .default_output_tokens(0)
        .target(
            Target::new(
                "a",
                ServiceBuilder::new()
                    .layer(RateLimitLayer::new(limiter.clone()))
                    .service(slow),
            )
            .model("gpt-4o")
            .gate(Arc::new(limiter)),
        )
        .build();
    let response = router.oneshot(weighing(50)).await.unwrap();
    let trail = &response.trail;
    // 50 tokens refill in 3 s at 1000 per minute.
    assert_eq!(trail.limiter_wait, Duration::from_secs(3));
    assert_eq!(trail.attempts[0].wait, Duration::from_secs(3));
    assert_eq!(trail.attempts[0].latency, Duration::from_millis(3_700));
    assert_eq!(trail.tokens_estimated, Some(50));
    assert_eq!(trail.tokens_used, Some(57));
    assert_eq!(trail.final_model.as_deref(), Some("gpt-4o"));
}

#[tokio::test(start_paused = true)]
async fn weighted_order_follows_the_weights() {
    let router = Failover::builder()
        .strategy(Strategy::Weighted)
        .seed(11)
        .target(Target::new("light", Scripted::new().service(ok)).weight(1))
        .target(Target::new("heavy", Scripted::new().service(ok)).weight(4))
        .target(Target::new("never", Scripted::new().service(ok)).weight(0))
        .build();
    let mut heavy_first = 0;
    for _ in 0..1_000 {
        let plan = router.plan();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[2], TargetId::new("never"), "weight 0 goes last");
        if plan[0] == TargetId::new("heavy") {
            heavy_first += 1;
        }
    }
    // Expected 4 in 5.
    assert!((750..850).contains(&heavy_first), "{heavy_first}");
}

fn timed(
    delay: Duration,
) -> impl tower::Service<
    ChatRequest,
    Response = ChatResponse,
    Error = BoxError,
    Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |request: ChatRequest| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, BoxError>(reply(&request.model, "ok"))
    })
}

/// A router over three targets of different speeds, each measured once.
async fn measured(strategy: Strategy) -> Failover {
    let targets = [("slow", 900), ("medium", 300), ("fast", 20)];
    let router = Failover::builder()
        .strategy(strategy)
        .seed(3)
        .targets(
            targets
                .iter()
                .map(|&(name, ms)| Target::new(name, timed(Duration::from_millis(ms)))),
        )
        .build();
    // Unmeasured targets come first, so a few calls measure every target.
    for _ in 0..50 {
        if router
            .latencies()
            .iter()
            .all(|(_, latency)| latency.is_some())
        {
            break;
        }
        router.clone().oneshot(weighing(1)).await.unwrap();
    }
    router
}

#[tokio::test(start_paused = true)]
async fn least_latency_tries_the_fastest_first() {
    let router = measured(Strategy::LeastLatency).await;
    let latencies = router.latencies();
    assert!(latencies.iter().all(|(_, l)| l.is_some()), "{latencies:?}");
    assert_eq!(
        router.plan(),
        vec![
            TargetId::new("fast"),
            TargetId::new("medium"),
            TargetId::new("slow")
        ]
    );
    let response = router.oneshot(weighing(1)).await.unwrap();
    assert_eq!(response.trail.final_target, Some(TargetId::new("fast")));
}

#[tokio::test(start_paused = true)]
async fn power_of_two_choices_never_puts_the_slowest_first() {
    let router = measured(Strategy::PowerOfTwoChoices).await;
    let mut first = std::collections::HashMap::new();
    for _ in 0..600 {
        let plan = router.plan();
        *first.entry(plan[0].to_string()).or_insert(0) += 1;
        // After the first choice, the rest follow fastest first.
        let rest: Vec<_> = plan[1..].iter().map(TargetId::to_string).collect();
        let mut sorted = rest.clone();
        sorted.sort_by_key(|t| ["fast", "medium", "slow"].iter().position(|n| n == t));
        assert_eq!(rest, sorted);
    }
    assert_eq!(first.get("slow"), None, "{first:?}");
    // fast wins every pair it is in (2 of 3 pairs), medium wins the other.
    let fast = first["fast"];
    assert!((340..460).contains(&fast), "{first:?}");
}

const FAST: u8 = 0;
const FAILING: u8 = 1;
const SLOW: u8 = 2;

/// A target that answers in 100 ms, fails at once (529), or answers in 1 s, as `mode` says.
fn switchable(
    mode: Arc<AtomicU8>,
) -> impl tower::Service<
    ChatRequest,
    Response = ChatResponse,
    Error = BoxError,
    Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |request: ChatRequest| {
        let mode = mode.load(Ordering::SeqCst);
        async move {
            match mode {
                FAILING => overloaded(&request),
                SLOW => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ok(&request)
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ok(&request)
                }
            }
        }
    })
}

/// Calls answered by target `a` and by the other, and when `a` first answered.
#[derive(Debug, Default)]
struct Share {
    a: usize,
    others: usize,
    first_a: Option<Duration>,
}

impl Share {
    fn of_a(&self) -> f64 {
        self.a as f64 / (self.a + self.others) as f64
    }
}

/// One call every 500 ms for `length`.
async fn traffic(router: &Failover, length: Duration) -> Share {
    let start = Instant::now();
    let mut share = Share::default();
    while start.elapsed() < length {
        let sent = Instant::now();
        let response = router.clone().oneshot(weighing(1)).await.unwrap();
        if response.trail.final_target == Some(TargetId::new("a")) {
            share.a += 1;
            share.first_a.get_or_insert(sent - start);
        } else {
            share.others += 1;
        }
        tokio::time::sleep_until(sent + Duration::from_millis(500)).await;
    }
    share
}

fn two_targets(strategy: Strategy, a: &Arc<AtomicU8>) -> Failover {
    Failover::builder()
        .strategy(strategy)
        .target(Target::new("a", switchable(Arc::clone(a))))
        .target(Target::new("b", switchable(Arc::new(AtomicU8::new(FAST)))))
        .build()
}

/// With the default 10 s decay and 5 s failure penalty.
async fn a_target_that_failed_gets_its_share_back_once_it_recovers(strategy: Strategy) {
    let a = Arc::new(AtomicU8::new(FAST));
    let router = two_targets(strategy, &a);
    let healthy = traffic(&router, Duration::from_secs(30)).await;
    assert!(healthy.of_a() > 0.4, "{strategy:?} {healthy:?}");

    a.store(FAILING, Ordering::SeqCst);
    let down = traffic(&router, Duration::from_secs(60)).await;
    assert_eq!(down.a, 0, "{strategy:?} {down:?}");

    // The 5 s penalty fades below b's 100 ms within about 4 decay times of a's last try.
    a.store(FAST, Ordering::SeqCst);
    let recovering = traffic(&router, Duration::from_secs(45)).await;
    assert!(recovering.first_a.is_some(), "{strategy:?} {recovering:?}");
    let recovered = traffic(&router, Duration::from_secs(60)).await;
    assert!(recovered.of_a() > 0.4, "{strategy:?} {recovered:?}");
}

#[tokio::test(start_paused = true)]
async fn least_latency_gives_a_target_that_failed_its_share_back_once_it_recovers() {
    a_target_that_failed_gets_its_share_back_once_it_recovers(Strategy::LeastLatency).await;
}

#[tokio::test(start_paused = true)]
async fn power_of_two_choices_gives_a_target_that_failed_its_share_back_once_it_recovers() {
    a_target_that_failed_gets_its_share_back_once_it_recovers(Strategy::PowerOfTwoChoices).await;
}

async fn a_slow_target_gets_less_until_it_is_fast_again(strategy: Strategy) {
    let a = Arc::new(AtomicU8::new(SLOW));
    let router = two_targets(strategy, &a);
    // Slow (1 s against 100 ms) for five minutes: tried now and then, never for long.
    let slow = traffic(&router, Duration::from_secs(300)).await;
    assert!(slow.a > 1, "{strategy:?} {slow:?}");
    assert!(slow.of_a() < 0.1, "{strategy:?} {slow:?}");

    a.store(FAST, Ordering::SeqCst);
    let recovering = traffic(&router, Duration::from_secs(30)).await;
    assert!(recovering.first_a.is_some(), "{strategy:?} {recovering:?}");
    // Close to half, the last of the slow samples fading out.
    let recovered = traffic(&router, Duration::from_secs(60)).await;
    assert!(recovered.of_a() > 0.35, "{strategy:?} {recovered:?}");
}

#[tokio::test(start_paused = true)]
async fn least_latency_gives_a_slow_target_less_until_it_is_fast_again() {
    a_slow_target_gets_less_until_it_is_fast_again(Strategy::LeastLatency).await;
}

#[tokio::test(start_paused = true)]
async fn power_of_two_choices_gives_a_slow_target_less_until_it_is_fast_again() {
    a_slow_target_gets_less_until_it_is_fast_again(Strategy::PowerOfTwoChoices).await;
}

#[tokio::test(start_paused = true)]
async fn stream_failures_before_the_first_token_fail_over_transparently() {
    let cut = Scripted::new();
    let error_frame = Scripted::new();
    let ttft_timeout = Scripted::new();
    let good = Scripted::new();
    let router = Failover::builder()
        .target(Target::new(
            "cut",
            cut.service(|r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![StreamEvent::Start {
                        id: None,
                        model: None,
                    }],
                ))
            }),
        ))
        .target(Target::new(
            "error-frame",
            error_frame.service(|r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![
                        StreamEvent::Start {
                            id: None,
                            model: None,
                        },
                        StreamEvent::Error(LlmError::new(ErrorKind::Overloaded, "overloaded")),
                    ],
                ))
            }),
        ))
        .target(Target::new(
            "ttft",
            ttft_timeout.service(|_| {
                Err(TimedOut::new(TimeoutKind::FirstToken, Duration::from_secs(10)).into())
            }),
        ))
        .target(Target::new(
            "good",
            good.service(|r| {
                Ok(streamed(
                    &r.model,
                    Duration::from_millis(250),
                    vec![
                        StreamEvent::Start {
                            id: Some("g".into()),
                            model: None,
                        },
                        StreamEvent::TextDelta("Hel".into()),
                        StreamEvent::TextDelta("lo".into()),
                        StreamEvent::Finish(FinishReason::Stop),
                        StreamEvent::Usage(Usage::new(5, 2)),
                    ],
                ))
            }),
        ))
        .build();

    let mut response = router.oneshot(weighing(1).streaming()).await.unwrap();
    let trail = response.trail.clone();
    assert_eq!(
        targets_tried(&trail),
        vec![
            ("cut".into(), "failed"),
            ("error-frame".into(), "failed"),
            ("ttft".into(), "failed"),
            ("good".into(), "succeeded"),
        ]
    );
    assert!(matches!(
        trail.attempts[0].outcome,
        AttemptOutcome::Failed {
            cause: Cause::Provider(ErrorKind::StreamTruncated),
            ..
        }
    ));
    assert_eq!(
        trail.attempts[3].time_to_first_token,
        Some(Duration::from_millis(250))
    );

    // The caller sees only the good target's stream, from its start.
    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: Some("g".into()),
                model: None
            },
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::Finish(FinishReason::Stop),
            StreamEvent::Usage(Usage::new(5, 2)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn without_recovery_stream_failures_after_the_first_token_surface_as_error_events() {
    let first = Scripted::new();
    let second = Scripted::new();
    let router = Failover::builder()
        .target(Target::new(
            "first",
            first.service(|r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![
                        StreamEvent::TextDelta("Hel".into()),
                        StreamEvent::Error(LlmError::new(ErrorKind::Server, "upstream reset")),
                        StreamEvent::TextDelta("never seen".into()),
                    ],
                ))
            }),
        ))
        .target(Target::new("second", second.service(ok)))
        .recover_streams(false)
        .build();
    let mut response = router.oneshot(weighing(1).streaming()).await.unwrap();
    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(
        events,
        vec![
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::Error(LlmError::new(ErrorKind::Server, "upstream reset")),
        ]
    );
    assert_eq!(
        second.calls(),
        0,
        "with recovery off, past the commit point nothing is retried"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_after_the_first_token_is_never_delivered_as_complete() {
    let cut = Scripted::new();
    let router = Failover::builder()
        .target(Target::new(
            "cut",
            cut.service(|r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![
                        StreamEvent::Start {
                            id: None,
                            model: None,
                        },
                        StreamEvent::TextDelta("Hel".into()),
                    ],
                ))
            }),
        ))
        .build();
    let mut response = router.oneshot(weighing(1).streaming()).await.unwrap();
    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(events.len(), 3);
    match &events[2] {
        StreamEvent::Error(error) => assert_eq!(error.kind(), ErrorKind::StreamTruncated),
        other => panic!("expected a truncation error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_passed_ends_the_call() {
    let a = Scripted::new();
    // The slow target fails after the deadline; then nothing more is tried.
    let slow_fail = Failover::builder()
        .target(Target::new(
            "slow",
            service_fn(|_: ChatRequest| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Err::<ChatResponse, BoxError>(LlmError::new(ErrorKind::Server, "boom").into())
            }),
        ))
        .target(Target::new("a", a.service(overloaded)))
        .build();
    let mut request = weighing(1);
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(2)));
    let error = slow_fail.oneshot(request).await.unwrap_err();
    assert_eq!(
        seawall_core::classify(&*error).cause,
        Cause::DeadlineExceeded
    );
    assert_eq!(a.calls(), 0);
}

/// A member whose readiness fails, as a broken connection pool's would.
#[derive(Clone)]
struct BrokenReadiness;

impl tower::Service<ChatRequest> for BrokenReadiness {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = std::future::Ready<Result<ChatResponse, BoxError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Err(LlmError::new(ErrorKind::Connect, "pool closed").into()))
    }

    fn call(&mut self, _request: ChatRequest) -> Self::Future {
        panic!("called although not ready");
    }
}

#[tokio::test(start_paused = true)]
async fn a_member_that_fails_readiness_is_one_failed_attempt_not_a_broken_router() {
    let b = Scripted::new();
    let mut router = Failover::builder()
        .target(Target::new("broken", BrokenReadiness))
        .target(Target::new("b", b.service(ok)))
        .build();
    for _ in 0..2 {
        let response = router
            .ready()
            .await
            .unwrap()
            .call(weighing(1))
            .await
            .unwrap();
        assert_eq!(
            targets_tried(&response.trail),
            vec![("broken".into(), "failed"), ("b".into(), "succeeded")]
        );
    }
    assert_eq!(b.calls(), 2);
}

/// A member whose readiness never comes, as a stuck buffer's or pool's would.
#[derive(Clone)]
struct NeverReady;

impl tower::Service<ChatRequest> for NeverReady {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = std::future::Ready<Result<ChatResponse, BoxError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Pending
    }

    fn call(&mut self, _request: ChatRequest) -> Self::Future {
        panic!("called although not ready");
    }
}

/// The call, or a panic if it has not ended within a minute of the paused clock.
async fn within_a_minute<F: Future>(call: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call still waits after a minute")
}

fn skip_reason(trail: &seawall_core::Trail, index: usize) -> &str {
    match &trail.attempts[index].outcome {
        AttemptOutcome::Skipped { reason } => reason,
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_member_that_stays_unready_is_skipped_after_the_readiness_timeout() {
    // A tower-test mock allowed no call: its poll_ready stays pending.
    let (stuck, mut handle) = tower_test::mock::pair::<ChatRequest, ChatResponse>();
    handle.allow(0);
    let b = Scripted::new();
    let router = Failover::builder()
        .target(Target::new("stuck", stuck))
        .target(Target::new("b", b.service(ok)))
        .build();

    let started = Instant::now();
    let response = within_a_minute(router.clone().oneshot(weighing(1)))
        .await
        .unwrap();
    // The default bound: one second.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let trail = &response.trail;
    assert_eq!(
        targets_tried(trail),
        vec![("stuck".into(), "skipped"), ("b".into(), "succeeded")]
    );
    assert_eq!(
        skip_reason(trail, 0),
        SkipReason::NotReady {
            waited: Duration::from_secs(1)
        }
        .to_string()
    );
    assert_eq!(trail.attempts[0].latency, Duration::from_secs(1));
    assert_eq!(
        trail.sent_attempts(),
        1,
        "nothing was sent to the stuck member"
    );
    assert_eq!(b.calls(), 1);

    // A configured bound.
    let router = Failover::builder()
        .ready_timeout(Duration::from_millis(250))
        .target(Target::new("stuck", NeverReady))
        .target(Target::new("b", b.service(ok)))
        .build();
    let started = Instant::now();
    let response = within_a_minute(router.oneshot(weighing(1))).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(
        targets_tried(&response.trail),
        vec![("stuck".into(), "skipped"), ("b".into(), "succeeded")]
    );
    assert_eq!(
        SkipReason::NotReady {
            waited: Duration::ZERO
        }
        .as_str(),
        "not_ready"
    );
}

#[tokio::test(start_paused = true)]
async fn a_single_member_that_is_never_ready_ends_the_call_with_all_targets_failed() {
    let router = Failover::builder()
        .target(Target::new("stuck", NeverReady))
        .build();
    let started = Instant::now();
    let error = within_a_minute(router.oneshot(weighing(1)))
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let failed = ErrorWithTrail::find(&*error)
        .and_then(|e| e.downcast_inner::<AllTargetsFailed>())
        .unwrap_or_else(|| panic!("expected AllTargetsFailed, got {error}"));
    assert_eq!(failed.attempts.len(), 1);
    assert!(
        skip_reason(trail_of(&error), 0).contains("not ready"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_readiness_never_passes_the_deadline() {
    let b = Scripted::new();
    let router = Failover::builder()
        .target(Target::new("stuck", NeverReady))
        .target(Target::new("b", b.service(ok)))
        .build();
    let mut request = weighing(1);
    request.context.deadline = Some(Deadline::after(
        TokioClock.now(),
        Duration::from_millis(300),
    ));
    let started = Instant::now();
    let error = within_a_minute(router.oneshot(request)).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(
        seawall_core::classify(&*error).cause,
        Cause::DeadlineExceeded
    );
    assert_eq!(
        targets_tried(trail_of(&error)),
        vec![("stuck".into(), "skipped")]
    );
    assert_eq!(b.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_recovery_target_that_stays_unready_is_skipped() {
    let cut = Scripted::new();
    let continues = Scripted::new();
    let router = Failover::builder()
        .target(Target::new(
            "cut",
            cut.service(|request| {
                Ok(streamed(
                    &request.model,
                    Duration::ZERO,
                    vec![
                        StreamEvent::TextDelta("Paris".into()),
                        StreamEvent::Error(LlmError::new(
                            ErrorKind::StreamTruncated,
                            "connection reset",
                        )),
                    ],
                ))
            }),
        ))
        .target(Target::new("stuck", NeverReady))
        .target(
            Target::new(
                "continues",
                continues.service(|request| {
                    Ok(streamed(
                        &request.model,
                        Duration::ZERO,
                        vec![
                            StreamEvent::TextDelta(" is the capital.".into()),
                            StreamEvent::Finish(FinishReason::Stop),
                        ],
                    ))
                }),
            )
            .accepts_prefill(true),
        )
        .build();
    let mut request = weighing(1).streaming();
    let trail = request.context.trail().clone();
    let started = Instant::now();
    let mut response = router.oneshot(request).await.unwrap();
    let events = within_a_minute(collect(response.stream.take().unwrap())).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let text: String = events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::TextDelta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Paris is the capital.");
    let trail = trail.snapshot();
    assert_eq!(
        targets_tried(&trail),
        vec![
            ("cut".into(), "succeeded"),
            ("stuck".into(), "skipped"),
            ("continues".into(), "succeeded"),
        ]
    );
    assert!(skip_reason(&trail, 1).contains("not ready"));
}
