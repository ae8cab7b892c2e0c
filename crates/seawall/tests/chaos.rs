//! The chaos layer plays the simulator's fault vocabulary in process, on tokio's clock: the
//! layers above see what they would see from the real provider.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall::ServiceBuilderExt;
use seawall::chaos::ChaosLayer;
use seawall::failover::Failover;
use seawall::retry::{Backoff, RetryLayer};
use seawall::stack::TargetStack;
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::fault::{Fault, FaultRule, RateLimitKind, RetryAfter, RetryHeaders};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, Disposition, ErrorKind, FinishReason, LlmError,
    ProviderKind, StreamEvent, TimedOut, classify,
};
use support::{collect, reply, request, streamed};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// A provider that answers "Paris" and counts its calls.
fn provider(
    calls: &Arc<AtomicU32>,
) -> impl Service<ChatRequest, Response = ChatResponse, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync
+ use<> {
    let calls = Arc::clone(calls);
    service_fn(move |_request: ChatRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(reply("gpt-4o", "Paris")) }
    })
}

/// A provider that streams "Par", "is", then finishes.
fn streaming_provider()
-> impl Service<ChatRequest, Response = ChatResponse, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_request: ChatRequest| async {
        Ok::<_, BoxError>(streamed(
            "gpt-4o",
            Duration::ZERO,
            vec![
                StreamEvent::Start {
                    id: Some("r1".into()),
                    model: Some("gpt-4o".into()),
                },
                StreamEvent::TextDelta("Par".into()),
                StreamEvent::TextDelta("is".into()),
                StreamEvent::Finish(FinishReason::Stop),
            ],
        ))
    })
}

fn llm_error(error: &BoxError) -> &LlmError {
    error.downcast_ref::<LlmError>().expect("an LlmError")
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_is_waited_out_by_the_retry_layer() {
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .retry_target(RetryLayer::new().max_attempts(3))
        .layer(ChaosLayer::new([FaultRule::first(
            1,
            Fault::rate_limited(2),
        )]))
        .service(provider(&calls));

    let started = Instant::now();
    let response = service.oneshot(request()).await.unwrap();

    assert_eq!(response.text(), "Paris");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "the server's wait, exactly"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the 429 never reached the provider"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_carry_what_the_providers_adapter_reports() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut service = ChaosLayer::new([
        FaultRule::nth(1, Fault::overloaded()),
        FaultRule::nth(
            2,
            Fault::RateLimited {
                limit: RateLimitKind::QuotaExhausted,
                retry: RetryHeaders::default(),
            },
        ),
        FaultRule::nth(
            3,
            Fault::status(500).with_retry(RetryHeaders {
                retry_after: Some(RetryAfter::Float(0.5)),
                should_retry: Some(false),
                ..RetryHeaders::default()
            }),
        ),
        FaultRule::nth(4, Fault::HtmlPage { status: 502 }),
        FaultRule::nth(5, Fault::Disconnect),
    ])
    .provider(ProviderKind::Anthropic)
    .layer(provider(&calls));

    let mut next = async || {
        let error = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap_err();
        let error = llm_error(&error).clone();
        (error.clone(), classify(&error))
    };

    let (error, verdict) = next().await;
    assert_eq!(
        (error.kind(), error.status()),
        (ErrorKind::Overloaded, Some(529))
    );
    assert_eq!(error.provider(), Some(ProviderKind::Anthropic));
    assert_eq!(verdict.disposition, Disposition::Retry);
    assert!(verdict.health_failure);

    let (error, verdict) = next().await;
    assert_eq!(error.kind(), ErrorKind::QuotaExhausted);
    assert_eq!(verdict.disposition, Disposition::Failover);
    assert!(verdict.out_of_capacity);

    let (error, verdict) = next().await;
    assert_eq!(error.kind(), ErrorKind::Server);
    assert_eq!(verdict.retry_after, Some(Duration::from_millis(500)));
    assert_eq!(
        verdict.disposition,
        Disposition::Failover,
        "x-should-retry: false"
    );

    let (error, _) = next().await;
    assert_eq!(
        (error.kind(), error.status()),
        (ErrorKind::Server, Some(502))
    );
    assert!(error.to_string().contains("HTML page"), "{error}");

    let (error, verdict) = next().await;
    assert_eq!(error.kind(), ErrorKind::Connect);
    assert_eq!(verdict.disposition, Disposition::Retry);

    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing was sent upstream");
    // The plan is spent: the sixth call goes through.
    assert_eq!(
        service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap()
            .text(),
        "Paris"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_provider_is_ended_by_the_attempt_timeout() {
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_secs(5)))
        .layer(ChaosLayer::new([FaultRule::always(Fault::Hang {
            ms: None,
        })]))
        .service(provider(&calls));

    let started = Instant::now();
    let error = service.oneshot(request()).await.unwrap_err();

    assert!(error.is::<TimedOut>(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // A bounded hang ends in a closed connection.
    let service = ChaosLayer::new([FaultRule::always(Fault::Hang { ms: Some(1_500) })])
        .layer(provider(&calls));
    let started = Instant::now();
    let error = service.oneshot(request()).await.unwrap_err();
    assert_eq!(llm_error(&error).kind(), ErrorKind::Connect);
    assert_eq!(started.elapsed(), Duration::from_millis(1_500));
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_byte_delays_the_response() {
    let calls = Arc::new(AtomicU32::new(0));
    let service = ChaosLayer::new([FaultRule::always(Fault::SlowFirstByte { ms: 3_000 })])
        .layer(provider(&calls));
    let started = Instant::now();
    assert_eq!(service.oneshot(request()).await.unwrap().text(), "Paris");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

async fn events_with(fault: Fault) -> Vec<StreamEvent> {
    let service = ChaosLayer::new([FaultRule::always(fault)]).layer(streaming_provider());
    let mut response = service.oneshot(request()).await.unwrap();
    collect(response.stream.take().expect("a stream")).await
}

fn is_error(event: Option<&StreamEvent>, kind: ErrorKind) -> bool {
    matches!(event, Some(StreamEvent::Error(error)) if error.kind() == kind)
}

#[tokio::test(start_paused = true)]
async fn stream_faults_shape_the_typed_stream() {
    let events = events_with(Fault::CutAfter { events: 2 }).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[1], StreamEvent::TextDelta("Par".into()));
    assert!(is_error(events.last(), ErrorKind::StreamTruncated));

    let events = events_with(Fault::EndWithoutTerminal { events: None }).await;
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Finish(_))));
    assert_eq!(events[2], StreamEvent::TextDelta("is".into()));
    assert!(is_error(events.last(), ErrorKind::StreamTruncated));

    let events = events_with(Fault::ErrorFrameAfter { events: 1 }).await;
    assert_eq!(events.len(), 2);
    assert!(is_error(events.last(), ErrorKind::Server));

    let events = events_with(Fault::ContentFiltered).await;
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::ContentFilter))
    );

    let events = events_with(Fault::DuplicateFirstEvent).await;
    assert_eq!(events.len(), 5);
    assert_eq!(events[0], events[1]);

    let events = events_with(Fault::MalformedChunkAfter { events: 1 }).await;
    assert_eq!(events.len(), 4, "skipped by the adapters' default policy");
}

#[tokio::test(start_paused = true)]
async fn a_stall_trips_the_idle_timeout() {
    let service = ServiceBuilder::new()
        .attempt_timeout(
            AttemptTimeoutLayer::new(Duration::from_secs(30)).idle(Duration::from_secs(2)),
        )
        .layer(ChaosLayer::new([FaultRule::always(Fault::StallAfter {
            events: 2,
            ms: 10_000,
        })]))
        .service(streaming_provider());
    let mut response = service.oneshot(request()).await.unwrap();
    let started = Instant::now();
    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(is_error(events.last(), ErrorKind::Timeout));
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    // Without a timeout the stream carries on after the stall.
    let service = ChaosLayer::new([FaultRule::always(Fault::StallAfter {
        events: 2,
        ms: 10_000,
    })])
    .layer(streaming_provider());
    let mut response = service.oneshot(request()).await.unwrap();
    let started = Instant::now();
    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(events.len(), 4);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn time_windows_follow_tokios_clock_and_draws_are_reproducible() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut service = ChaosLayer::new([FaultRule::during(
        Duration::from_secs(10),
        Duration::from_secs(20),
        Fault::overloaded(),
    )])
    .layer(provider(&calls));
    let installed = Instant::now();
    for (at, fails) in [(0, false), (10, true), (19, true), (20, false)] {
        tokio::time::advance((installed + Duration::from_secs(at)) - Instant::now()).await;
        let outcome = service.ready().await.unwrap().call(request()).await;
        assert_eq!(outcome.is_err(), fails, "at {at} s");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let draws = |seed| {
        let plan = [FaultRule::with_probability(0.3, seed, Fault::overloaded())];
        let calls = Arc::new(AtomicU32::new(0));
        let mut service = ChaosLayer::new(plan).layer(provider(&calls));
        async move {
            let mut failed = Vec::new();
            for _ in 0..50 {
                failed.push(
                    service
                        .ready()
                        .await
                        .unwrap()
                        .call(request())
                        .await
                        .is_err(),
                );
            }
            failed
        }
    };
    let a = draws(7).await;
    assert_eq!(a, draws(7).await, "the same seed, the same faults");
    assert_ne!(a, draws(8).await);
    let hits = a.iter().filter(|failed| **failed).count();
    assert!((5..=25).contains(&hits), "{hits}");
}

#[tokio::test(start_paused = true)]
async fn a_failover_stack_rides_out_what_chaos_plays() {
    let (calls_a, calls_b) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let retry = || {
        RetryLayer::new().max_attempts(3).backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ))
    };
    // Target a: its account is out of credit, then (from the third call on) overloaded.
    let chaos = ChaosLayer::new([
        FaultRule::first(
            2,
            Fault::RateLimited {
                limit: RateLimitKind::QuotaExhausted,
                retry: RetryHeaders {
                    retry_after: Some(RetryAfter::Seconds(60)),
                    ..RetryHeaders::default()
                },
            },
        ),
        FaultRule::always(Fault::overloaded()),
    ]);
    let a = TargetStack::new("a")
        .retry(retry())
        .build(chaos.layer(provider(&calls_a)));
    let b = TargetStack::new("b")
        .retry(retry())
        .build(provider(&calls_b));
    let router = Failover::builder()
        .target(a.target)
        .target(b.target)
        .build();

    let response = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "Paris");
    assert_eq!(
        response.trail.final_target.as_ref().map(|t| t.as_str()),
        Some("b")
    );
    // Parked for the 60 s the quota error asked for: a is skipped, not called.
    let response = router.clone().oneshot(request()).await.unwrap();
    assert!(
        matches!(
            response.trail.attempts[0].outcome,
            seawall_core::AttemptOutcome::Skipped { .. }
        ),
        "{:?}",
        response.trail.attempts
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    // Back from the cooldown: its 529s are retried, then the call fails over.
    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "Paris");
    assert_eq!(
        calls_a.load(Ordering::SeqCst),
        0,
        "chaos answered every call to a"
    );
    assert_eq!(calls_b.load(Ordering::SeqCst), 3);
}
