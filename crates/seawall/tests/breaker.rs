//! BreakerLayer on the paused clock: the state machine, probes, cooldown, slow calls.

mod support;

use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use seawall::breaker::{BreakerEvent, BreakerLayer, OpenReason};
use seawall_core::{
    BoxError, BreakerState, ChatRequest, ChatResponse, CircuitOpen, Disposition, ErrorKind,
    LlmError, Message, QuotaSnapshot, QuotaWindow, RateLimitRejected, RejectReason, StreamEvent,
    TargetId, classify,
};
use support::{answer, error, next_event, request, streaming};
use tokio::time::{Instant, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock;

/// A target whose answer is chosen by the request's model name.
fn scripted(
    reached: Arc<AtomicU32>,
) -> impl tower::Service<
    ChatRequest,
    Response = ChatResponse,
    Error = BoxError,
    Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send,
> + Clone
+ Send {
    service_fn(move |request: ChatRequest| {
        reached.fetch_add(1, Ordering::SeqCst);
        async move {
            match request.model.as_ref() {
                "S" => Ok(answer("ok")),
                "F" => Err(error(ErrorKind::Server, 500).into()),
                "R" => Err(error(ErrorKind::RateLimited, 429)
                    .with_retry_after(Duration::from_secs(1))
                    .into()),
                "B" => Err(error(ErrorKind::InvalidRequest, 400).into()),
                "L" => Err(RateLimitRejected::new(
                    TargetId::from("t"),
                    RejectReason::QueueFull { capacity: 1 },
                )
                .into()),
                other => panic!("unknown step {other}"),
            }
        }
    })
}

fn table_breaker() -> BreakerLayer {
    BreakerLayer::builder("openai/gpt-4o")
        .consecutive_failures(3)
        .no_failure_ratio()
        .break_duration(Duration::from_secs(5), Duration::from_secs(20))
        .half_open_probes(1)
        .default_cooldown(Duration::from_secs(1))
        .build()
}

#[tokio::test(start_paused = true)]
async fn the_state_machine_follows_the_table() {
    // Steps: S success, F 500, R 429 (retry-after 1 s), B 400, L a local limiter rejection,
    // +Ns time passes. Consecutive threshold 3, breaks 5 s doubling to 20 s, one probe.
    let table: &[(&str, BreakerState, u32)] = &[
        ("", BreakerState::Closed, 0),
        ("F F", BreakerState::Closed, 2),
        ("F F F", BreakerState::Open, 3),
        ("F F F F", BreakerState::Open, 3),
        ("F F S F F", BreakerState::Closed, 5),
        ("F F F +4s S", BreakerState::Open, 3),
        ("F F F +5s S", BreakerState::Closed, 4),
        ("F F F +5s F", BreakerState::Open, 4),
        ("F F F +5s F +5s S", BreakerState::Open, 4),
        ("F F F +5s F +10s S", BreakerState::Closed, 5),
        ("F F F +5s F +10s S F F F +5s S", BreakerState::Closed, 9),
        ("F F F +5s F +10s F +19s S", BreakerState::Open, 5),
        ("F F F +5s F +10s F +20s S", BreakerState::Closed, 6),
        ("B B B B B", BreakerState::Closed, 5),
        ("L L L L L", BreakerState::Closed, 5),
        ("R +1s R +1s R +1s R +1s R", BreakerState::Closed, 5),
        ("R R", BreakerState::Closed, 1),
        ("F F R +1s F", BreakerState::Open, 4),
        ("F F F +5s R", BreakerState::HalfOpen, 4),
        ("F F F +5s R S", BreakerState::HalfOpen, 4),
        ("F F F +5s R +1s S", BreakerState::Closed, 5),
        ("F F F +5s B", BreakerState::Closed, 4),
    ];
    for (steps, expected, expected_reached) in table {
        let reached = Arc::new(AtomicU32::new(0));
        let layer = table_breaker();
        let handle = layer.handle();
        let service = layer.layer(scripted(reached.clone()));
        for step in steps.split_whitespace() {
            if let Some(seconds) = step.strip_prefix('+').and_then(|s| s.strip_suffix('s')) {
                sleep(Duration::from_secs(seconds.parse().unwrap())).await;
                continue;
            }
            let request = ChatRequest::new(step, [Message::user("hi")]);
            let _ = service.clone().oneshot(request).await;
        }
        assert_eq!(handle.state(), *expected, "state after {steps:?}");
        assert_eq!(
            reached.load(Ordering::SeqCst),
            *expected_reached,
            "calls that reached the target in {steps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_rejects_in_the_call_with_the_time_until_a_probe() {
    let reached = Arc::new(AtomicU32::new(0));
    let layer = table_breaker();
    let mut service = layer.layer(scripted(reached.clone()));
    for _ in 0..3 {
        let _ = service.clone().oneshot(ChatRequest::new("F", [])).await;
    }
    sleep(Duration::from_secs(2)).await;
    // poll_ready stays ready: the rejection comes from the response future.
    let ready = service.ready().await.expect("poll_ready only delegates");
    let error = ready.call(ChatRequest::new("S", [])).await.unwrap_err();
    let open = error.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.target.as_str(), "openai/gpt-4o");
    assert_eq!(open.retry_in, Duration::from_secs(3));
    assert_eq!(open.reason, OpenReason::Unhealthy);
    let verdict = classify(error.as_ref());
    assert_eq!(verdict.disposition, Disposition::Failover);
    assert!(!verdict.health_failure);
    assert_eq!(reached.load(Ordering::SeqCst), 3);
}

/// Polls `future` once.
async fn poll_again<F: Future>(mut future: Pin<&mut F>) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await
}

#[tokio::test(start_paused = true)]
async fn a_response_future_polled_after_completion_errs_instead_of_panicking() {
    let reached = Arc::new(AtomicU32::new(0));
    let mut service = table_breaker().layer(scripted(reached.clone()));

    // A call that went through: done once, then an error on every later poll.
    let mut call = pin!(service.call(ChatRequest::new("S", [])));
    assert!(call.as_mut().await.is_ok());
    for _ in 0..2 {
        match poll_again(call.as_mut()).await {
            std::task::Poll::Ready(Err(error)) => {
                assert!(
                    error.to_string().contains("polled after completion"),
                    "{error}"
                );
            }
            other => panic!("expected an error, got {:?}", other.map(|r| r.is_ok())),
        }
    }
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "the target is not called again"
    );

    // A rejected call: the rejection once, then the same error.
    for _ in 0..3 {
        let _ = service.clone().oneshot(ChatRequest::new("F", [])).await;
    }
    let mut rejected = pin!(service.call(ChatRequest::new("S", [])));
    let error = rejected.as_mut().await.unwrap_err();
    assert!(error.downcast_ref::<CircuitOpen>().is_some(), "{error}");
    match poll_again(rejected.as_mut()).await {
        std::task::Poll::Ready(Err(error)) => {
            assert!(error.downcast_ref::<CircuitOpen>().is_none());
            assert!(
                error.to_string().contains("polled after completion"),
                "{error}"
            );
        }
        other => panic!("expected an error, got {:?}", other.map(|r| r.is_ok())),
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_ratio_over_the_window_trips_once_enough_calls_were_seen() {
    let breaker = || {
        BreakerLayer::builder("t")
            .consecutive_failures(0)
            .failure_ratio(0.5, Duration::from_secs(10), 4)
            .build()
    };
    let cases: &[(&str, BreakerState)] = &[
        ("S F S F", BreakerState::Open),
        ("S S S F", BreakerState::Closed),
        ("F F F", BreakerState::Closed),
        ("F F F S", BreakerState::Closed),
        ("F F F F", BreakerState::Open),
        // The old failures leave the window: 1 failure in 4 calls.
        ("F F F +11s S S S F", BreakerState::Closed),
        ("S S S +5s F F F", BreakerState::Open),
        // 429s and 400s are not health failures.
        ("R +1s R +1s R +1s R +1s R", BreakerState::Closed),
        ("B B B B", BreakerState::Closed),
    ];
    for (steps, expected) in cases {
        let layer = breaker();
        let handle = layer.handle();
        let service = layer.layer(scripted(Arc::new(AtomicU32::new(0))));
        for step in steps.split_whitespace() {
            if let Some(seconds) = step.strip_prefix('+').and_then(|s| s.strip_suffix('s')) {
                sleep(Duration::from_secs(seconds.parse().unwrap())).await;
                continue;
            }
            let _ = service.clone().oneshot(ChatRequest::new(step, [])).await;
        }
        assert_eq!(handle.state(), *expected, "state after {steps:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_the_configured_probes() {
    let layer = BreakerLayer::builder("t")
        .consecutive_failures(1)
        .half_open_probes(2)
        .break_duration(Duration::from_secs(5), Duration::from_secs(5))
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);

    let call = tokio::spawn(service.clone().oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    reply.send_error(error(ErrorKind::Server, 500));
    call.await.unwrap().unwrap_err();
    assert_eq!(handle.state(), BreakerState::Open);
    sleep(Duration::from_secs(5)).await;

    // The break is over: check() admits without taking a slot, however often.
    for _ in 0..5 {
        handle
            .check(Instant::now())
            .expect("a probe would be admitted");
    }
    let first = tokio::spawn(service.clone().oneshot(request()));
    let (_, first_reply) = target.next_request().await.unwrap();
    assert_eq!(handle.state(), BreakerState::HalfOpen);
    let second = tokio::spawn(service.clone().oneshot(request()));
    let (_, second_reply) = target.next_request().await.unwrap();

    // Both slots are taken: a third call is rejected without being sent.
    let third = service.clone().oneshot(request()).await.unwrap_err();
    let open = third.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.reason, OpenReason::Unhealthy);
    assert!(handle.check(Instant::now()).is_err());

    first_reply.send_response(answer("ok"));
    first.await.unwrap().unwrap();
    assert_eq!(handle.state(), BreakerState::HalfOpen, "one of two probes");
    second_reply.send_response(answer("ok"));
    second.await.unwrap().unwrap();
    assert_eq!(handle.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_and_a_cancelled_probe_frees_its_slot() {
    let layer = BreakerLayer::builder("t")
        .consecutive_failures(1)
        .half_open_probes(1)
        .break_duration(Duration::from_secs(5), Duration::from_secs(20))
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);

    let call = tokio::spawn(service.clone().oneshot(request()));
    fail(&mut target).await;
    call.await.unwrap().unwrap_err();
    sleep(Duration::from_secs(5)).await;

    // A probe the caller abandons frees its slot without counting.
    let abandoned = tokio::spawn(service.clone().oneshot(request()));
    let (_, _unanswered) = target.next_request().await.unwrap();
    assert!(
        handle.check(Instant::now()).is_err(),
        "the only slot is taken"
    );
    abandoned.abort();
    let _ = abandoned.await;
    assert_eq!(handle.state(), BreakerState::HalfOpen);
    handle
        .check(Instant::now())
        .expect("the slot is free again");

    // A failed probe opens the breaker again, for a longer break.
    let probe = tokio::spawn(service.clone().oneshot(request()));
    fail(&mut target).await;
    probe.await.unwrap().unwrap_err();
    assert_eq!(handle.state(), BreakerState::Open);
    let open = handle.check(Instant::now()).unwrap_err();
    assert_eq!(open.retry_in, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_429_parks_the_target_until_its_reset_without_a_health_failure() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let layer = BreakerLayer::builder("anthropic/claude")
        .consecutive_failures(1)
        .on_event(move |event| seen.lock().unwrap().push(event.clone()))
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);

    let call = tokio::spawn(service.clone().oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    reply.send_error(error(ErrorKind::RateLimited, 429).with_retry_after(Duration::from_secs(3)));
    call.await.unwrap().unwrap_err();
    assert_eq!(handle.state(), BreakerState::Closed, "not a health failure");

    sleep(Duration::from_secs(1)).await;
    let open = handle.check(Instant::now()).unwrap_err();
    assert_eq!(open.reason, OpenReason::OutOfCapacity);
    assert_eq!(open.retry_in, Duration::from_secs(2));
    let rejected = service.clone().oneshot(request()).await.unwrap_err();
    assert_eq!(
        rejected.downcast_ref::<CircuitOpen>().unwrap().reason,
        OpenReason::OutOfCapacity
    );

    sleep(Duration::from_secs(2)).await;
    handle.check(Instant::now()).expect("the reset has come");
    let call = tokio::spawn(service.clone().oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    reply.send_response(answer("ok"));
    call.await.unwrap().unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        [BreakerEvent::CooldownStarted {
            target: TargetId::from("anthropic/claude"),
            wait: Duration::from_secs(3)
        }]
    );
}

/// Beside a rate limiter that follows the provider's reports, the breaker leaves capacity
/// to it: a 429 neither parks the target nor counts as a failure.
#[tokio::test(start_paused = true)]
async fn without_capacity_cooldown_a_429_leaves_the_target_to_the_limiter() {
    let layer = BreakerLayer::builder("openai/gpt")
        .consecutive_failures(1)
        .capacity_cooldown(false)
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);

    let call = tokio::spawn(service.clone().oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    reply.send_error(error(ErrorKind::RateLimited, 429).with_retry_after(Duration::from_secs(3)));
    call.await.unwrap().unwrap_err();
    assert_eq!(handle.state(), BreakerState::Closed);
    handle.check(Instant::now()).expect("not parked");
}

#[tokio::test(start_paused = true)]
async fn cooldowns_use_the_quota_reset_or_the_default_and_end_on_reset() {
    let layer = BreakerLayer::builder("t")
        .default_cooldown(Duration::from_millis(1500))
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);

    // A 429 without a wait: the default cooldown.
    let call = tokio::spawn(service.clone().oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    reply.send_error(error(ErrorKind::RateLimited, 429));
    call.await.unwrap().unwrap_err();
    assert_eq!(
        handle.check(Instant::now()).unwrap_err().retry_in,
        Duration::from_millis(1500)
    );
    handle.reset();
    handle
        .check(Instant::now())
        .expect("reset ends the cooldown");

    // A success whose quota headers say nothing is left: parked until the window resets.
    let call = tokio::spawn(service.clone().oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    let mut response = answer("ok");
    response.quota = Some(Box::new(QuotaSnapshot::default().with_requests(
        QuotaWindow::new(Some(60), Some(0), Some(Duration::from_secs(7))),
    )));
    reply.send_response(response);
    call.await.unwrap().unwrap();
    let open = handle.check(Instant::now()).unwrap_err();
    assert_eq!(open.reason, OpenReason::OutOfCapacity);
    assert_eq!(open.retry_in, Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn slow_calls_count_as_failures() {
    let layer = BreakerLayer::builder("t")
        .consecutive_failures(2)
        .slow_call(Duration::from_secs(1))
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);
    for delay in [Duration::from_millis(1500), Duration::from_millis(900)] {
        let call = tokio::spawn(service.clone().oneshot(request()));
        let (_, reply) = target.next_request().await.unwrap();
        sleep(delay).await;
        reply.send_response(answer("ok"));
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        handle.state(),
        BreakerState::Closed,
        "a fast call resets the run"
    );
    for _ in 0..2 {
        let call = tokio::spawn(service.clone().oneshot(request()));
        let (_, reply) = target.next_request().await.unwrap();
        sleep(Duration::from_secs(2)).await;
        reply.send_response(answer("ok"));
        call.await.unwrap().unwrap();
    }
    assert_eq!(handle.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_token_counts_as_a_failure_when_it_arrives() {
    let layer = BreakerLayer::builder("t")
        .consecutive_failures(1)
        .slow_first_token(Duration::from_secs(2))
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);

    for (first_token_after, expected) in [
        (Duration::from_millis(1500), BreakerState::Closed),
        (Duration::from_millis(2500), BreakerState::Open),
    ] {
        let call = tokio::spawn(service.clone().oneshot(request().streaming()));
        let (_, reply) = target.next_request().await.unwrap();
        let (response, events) = streaming();
        reply.send_response(response);
        let mut stream = call.await.unwrap().unwrap().stream.take().unwrap();
        assert_eq!(
            handle.state(),
            BreakerState::Closed,
            "undecided until content"
        );
        sleep(first_token_after).await;
        events.send(StreamEvent::TextDelta("Paris".into())).unwrap();
        assert!(next_event(&mut stream).await.unwrap().is_content());
        assert_eq!(
            handle.state(),
            expected,
            "first token after {first_token_after:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_breaks_before_content_is_a_health_failure() {
    let layer = BreakerLayer::builder("t").consecutive_failures(1).build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);
    let call = tokio::spawn(service.oneshot(request().streaming()));
    let (_, reply) = target.next_request().await.unwrap();
    let (response, events) = streaming();
    reply.send_response(response);
    let mut stream = call.await.unwrap().unwrap().stream.take().unwrap();
    events
        .send(StreamEvent::Error(LlmError::new(
            ErrorKind::StreamTruncated,
            "connection reset",
        )))
        .unwrap();
    assert!(matches!(
        next_event(&mut stream).await,
        Some(StreamEvent::Error(_))
    ));
    assert_eq!(handle.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn force_open_isolates_until_reset_and_transitions_are_reported() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let layer = BreakerLayer::builder("t")
        .on_event(move |event| seen.lock().unwrap().push(event.clone()))
        .build();
    let handle = layer.handle();
    let service = layer.layer(scripted(Arc::new(AtomicU32::new(0))));

    handle.force_open();
    assert_eq!(handle.state(), BreakerState::Open);
    sleep(Duration::from_secs(3600)).await;
    let error = service
        .clone()
        .oneshot(ChatRequest::new("S", []))
        .await
        .unwrap_err();
    assert!(error.is::<CircuitOpen>(), "still isolated an hour later");
    assert_eq!(
        handle.check(Instant::now()).unwrap_err().retry_in,
        Duration::MAX
    );
    handle.reset();
    service.oneshot(ChatRequest::new("S", [])).await.unwrap();
    let target = TargetId::from("t");
    assert_eq!(
        *events.lock().unwrap(),
        [
            BreakerEvent::Transition {
                target: target.clone(),
                from: BreakerState::Closed,
                to: BreakerState::Open,
                open_for: None
            },
            BreakerEvent::Transition {
                target,
                from: BreakerState::Open,
                to: BreakerState::Closed,
                open_for: None
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_callback_does_not_break_the_breaker() {
    let layer = BreakerLayer::builder("t")
        .consecutive_failures(1)
        .on_event(|_| panic!("listener bug"))
        .build();
    let handle = layer.handle();
    let service = layer.layer(scripted(Arc::new(AtomicU32::new(0))));
    let _ = service.clone().oneshot(ChatRequest::new("F", [])).await;
    assert_eq!(handle.state(), BreakerState::Open);
    handle.reset();
    assert_eq!(handle.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn raw_http_error_statuses_count_and_429_headers_park() {
    type Req = http::Request<Full<Bytes>>;
    type Res = http::Response<Full<Bytes>>;
    let layer = BreakerLayer::builder("compat/llama")
        .consecutive_failures(2)
        .build();
    let handle = layer.handle();
    let (service, mut target) = mock::pair::<Req, Res>();
    let service = layer.layer(service);
    let respond = |status: u16, headers: &[(&str, &str)]| {
        let mut response = http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(Full::new(Bytes::new())).unwrap()
    };
    let call = |service: &seawall::breaker::Breaker<mock::Mock<Req, Res>>| {
        tokio::spawn(
            service
                .clone()
                .oneshot(http::Request::new(Full::new(Bytes::new()))),
        )
    };

    let pending = call(&service);
    let (_, reply) = target.next_request().await.unwrap();
    reply.send_response(respond(429, &[("retry-after", "2")]));
    assert_eq!(pending.await.unwrap().unwrap().status(), 429);
    let open = handle.check(Instant::now()).unwrap_err();
    assert_eq!(
        (open.reason, open.retry_in),
        (OpenReason::OutOfCapacity, Duration::from_secs(2))
    );
    assert_eq!(handle.state(), BreakerState::Closed);
    sleep(Duration::from_secs(2)).await;

    for status in [500, 502] {
        let pending = call(&service);
        let (_, reply) = target.next_request().await.unwrap();
        reply.send_response(respond(status, &[]));
        assert_eq!(pending.await.unwrap().unwrap().status(), status);
    }
    assert_eq!(handle.state(), BreakerState::Open);
}

async fn fail(target: &mut mock::Handle<ChatRequest, ChatResponse>) {
    let (_, reply) = target.next_request().await.unwrap();
    reply.send_error(error(ErrorKind::Overloaded, 529));
}
