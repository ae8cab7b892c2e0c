//! The rate limiter on tokio's paused clock.

mod support;

use seawall::timeout::TokioClock;
use seawall_core::Clock as _;
use std::sync::Arc;
use std::time::Duration;

use seawall::rate_limit::{Rate, RateLimit, RateLimitConfig, RateLimiter, RejectReason};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, Deadline, FinishReason, QuotaSnapshot, QuotaWindow,
    RateLimitRejected, StreamEvent, Usage,
};
use support::{NumberEstimator, collect, reply, streamed, weighing};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_test::mock;

fn config(tokens_per_minute: u64) -> RateLimitConfig {
    RateLimitConfig::new()
        .tokens(Rate::per_minute(tokens_per_minute))
        .default_output_tokens(0)
        .estimator(Arc::new(NumberEstimator))
}

fn rejection(error: &BoxError) -> &RateLimitRejected {
    error
        .downcast_ref::<RateLimitRejected>()
        .unwrap_or_else(|| panic!("not a rate limit rejection: {error}"))
}

/// Sends `request` through the limited service and answers it with `response` as soon
/// as the mock sees it.
async fn send(
    limiter: &RateLimiter,
    request: ChatRequest,
    response: ChatResponse,
) -> Result<ChatResponse, BoxError> {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let call = {
        // Dropped at once, so the mock sees no more requests once the call is done.
        let mut service = RateLimit::new(service, limiter.clone());
        service.ready().await.unwrap().call(request)
    };
    let answer = async move {
        if let Some((_, send)) = handle.next_request().await {
            send.send_response(response);
        }
    };
    let (result, ()) = tokio::join!(call, answer);
    result
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_fifo_order_so_a_large_call_is_not_starved() {
    let limiter = RateLimiter::new("t", config(1_000).max_wait(Duration::from_secs(600)));
    let start = Instant::now();
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = RateLimit::new(service, limiter.clone());

    // Drain the window, then a large call, then small ones that would each fit long before
    // the large one if they could jump the queue.
    let weights = [1_000, 900, 50, 50, 50, 50];
    let mut calls = Vec::new();
    for weight in weights {
        let call = service.ready().await.unwrap().call(weighing(weight));
        calls.push(tokio::spawn(call));
        tokio::task::yield_now().await;
    }
    assert_eq!(limiter.snapshot().queue_len, 5);

    let mut admitted = Vec::new();
    for _ in weights {
        let (request, send) = handle.next_request().await.unwrap();
        admitted.push((request.texts().next().unwrap().to_owned(), start.elapsed()));
        send.send_response(reply("model", "ok"));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(
        admitted,
        vec![
            ("1000".to_owned(), secs(0)),
            // 900 tokens refill in 54 s at 1000 per minute.
            ("900".to_owned(), secs(54)),
            // Each 50 tokens refill in 3 s, after the large call.
            ("50".to_owned(), secs(57)),
            ("50".to_owned(), secs(60)),
            ("50".to_owned(), secs(63)),
            ("50".to_owned(), secs(66)),
        ]
    );
    assert_eq!(limiter.snapshot().queue_len, 0);
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_max_wait_fails_at_once_with_the_wait_it_needs() {
    let limiter = RateLimiter::new("t", config(1_000).max_wait(Duration::from_secs(10)));
    send(&limiter, weighing(1_000), reply("m", "ok"))
        .await
        .unwrap();

    let start = Instant::now();
    let error = send(&limiter, weighing(500), reply("m", "ok"))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "fails without waiting");
    assert_eq!(
        rejection(&error).reason,
        RejectReason::WaitTooLong {
            wait: Duration::from_secs(30),
            max_wait: Duration::from_secs(10),
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_fails_at_once_with_the_wait_it_needs() {
    let limiter = RateLimiter::new("t", config(1_000));
    send(&limiter, weighing(1_000), reply("m", "ok"))
        .await
        .unwrap();

    let mut request = weighing(500);
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(5)));
    let start = Instant::now();
    let error = send(&limiter, request, reply("m", "ok")).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        rejection(&error).reason,
        RejectReason::PastDeadline {
            wait: Duration::from_secs(30),
            remaining: Duration::from_secs(5),
        }
    );
    assert_eq!(rejection(&error).wait(), Some(Duration::from_secs(30)));

    // Within the deadline, the same call waits and is admitted.
    let mut request = weighing(50);
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(5)));
    send(&limiter, request, reply("m", "ok")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_call_heavier_than_the_whole_limit_never_fits_and_fails_at_once() {
    let limiter = RateLimiter::new("t", config(1_000).output_tokens(Rate::per_minute(4_000)));
    let error = send(&limiter, weighing(1_500), reply("m", "ok"))
        .await
        .unwrap_err();
    assert_eq!(
        rejection(&error).reason,
        RejectReason::NeverFits {
            requested: 1_500,
            capacity: 1_000,
        }
    );
    assert_eq!(rejection(&error).wait(), None);
    assert_eq!(
        limiter.snapshot().requests_admitted,
        0,
        "nothing was reserved"
    );
    assert_eq!(limiter.snapshot().capacity.tokens, Some(1_000));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once() {
    let limiter = RateLimiter::new("t", config(1_000).queue_capacity(1));
    let (service, _handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = RateLimit::new(service, limiter.clone());
    let first = tokio::spawn(service.ready().await.unwrap().call(weighing(1_000)));
    tokio::task::yield_now().await;
    let waiting = tokio::spawn(service.ready().await.unwrap().call(weighing(100)));
    tokio::task::yield_now().await;
    assert_eq!(limiter.snapshot().queue_len, 1);

    let error = service
        .ready()
        .await
        .unwrap()
        .call(weighing(100))
        .await
        .unwrap_err();
    assert_eq!(
        rejection(&error).reason,
        RejectReason::QueueFull { capacity: 1 }
    );

    // A waiter that goes away leaves the queue.
    waiting.abort();
    let _ = waiting.await;
    assert_eq!(limiter.snapshot().queue_len, 0);
    first.abort();
}

#[tokio::test(start_paused = true)]
async fn reconciliation_refunds_unused_tokens_and_debits_overuse() {
    let limiter = RateLimiter::new("t", config(10_000));

    // 100 prompt + 1000 reserved output; 150 used: 950 come back.
    let request = weighing(100).with_max_output_tokens(1_000);
    let response = reply("m", "ok").with_usage(Usage::new(100, 50));
    send(&limiter, request, response).await.unwrap();
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.tokens_reserved, 1_100);
    assert_eq!(snapshot.tokens_used, 150);
    assert_eq!(snapshot.tokens_in_flight, 0);
    assert_eq!(snapshot.capacity.tokens, Some(10_000 - 150));

    // Reserved 1100, used 2100: 1000 more are charged.
    let request = weighing(100).with_max_output_tokens(1_000);
    let response = reply("m", "ok").with_usage(Usage::new(100, 2_000));
    send(&limiter, request, response).await.unwrap();
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.tokens_used, 2_250);
    assert_eq!(snapshot.capacity.tokens, Some(10_000 - 150 - 2_100));
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_reconciled_with_the_usage_at_its_end() {
    let limiter = RateLimiter::new("t", config(10_000));
    let request = weighing(100).with_max_output_tokens(1_000);
    let events = vec![
        StreamEvent::TextDelta("Hi".into()),
        StreamEvent::Finish(FinishReason::Stop),
        // OpenAI sends usage after the finish reason.
        StreamEvent::Usage(Usage::new(100, 20)),
    ];
    let mut response = send(&limiter, request, streamed("m", Duration::ZERO, events))
        .await
        .unwrap();
    assert_eq!(
        limiter.snapshot().tokens_in_flight,
        1_100,
        "still streaming"
    );
    assert_eq!(limiter.snapshot().capacity.tokens, Some(10_000 - 1_100));

    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(events.len(), 3);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.tokens_in_flight, 0);
    assert_eq!(snapshot.tokens_used, 120);
    assert_eq!(snapshot.capacity.tokens, Some(10_000 - 120));
}

#[tokio::test(start_paused = true)]
async fn provider_headers_move_the_remaining_capacity() {
    let limiter = RateLimiter::new("t", config(10_000).requests(Rate::per_minute(100)));
    let mut response = reply("m", "ok").with_usage(Usage::new(10, 10));
    response.quota = Some(Box::new(
        QuotaSnapshot::default()
            .with_requests(QuotaWindow::new(
                Some(100),
                Some(0),
                Some(Duration::from_secs(20)),
            ))
            .with_tokens(QuotaWindow::new(
                Some(10_000),
                Some(2_000),
                Some(Duration::from_secs(48)),
            )),
    ));
    send(&limiter, weighing(10), response).await.unwrap();
    let snapshot = limiter.snapshot();
    assert_eq!(
        snapshot.capacity.tokens,
        Some(2_000),
        "the provider knows better"
    );
    assert_eq!(snapshot.capacity.requests, Some(0));

    // No request passes before the provider's reset.
    let start = Instant::now();
    send(&limiter, weighing(10), reply("m", "ok"))
        .await
        .unwrap();
    // Headers round the reset down to the millisecond: it is taken 1 ms later.
    assert_eq!(start.elapsed(), Duration::from_millis(20_001));

    // Reports arrive out of the order the provider wrote them: one that leaves more room
    // than the one held is older, and ignored until the held one's window resets.
    limiter.sync(&QuotaSnapshot::default().with_tokens(QuotaWindow::new(
        Some(10_000),
        Some(1_000),
        Some(Duration::from_secs(10)),
    )));
    limiter.sync(&QuotaSnapshot::default().with_tokens(QuotaWindow::new(
        Some(10_000),
        Some(9_000),
        Some(Duration::from_secs(10)),
    )));
    assert_eq!(limiter.snapshot().capacity.tokens, Some(1_000));
    tokio::time::advance(Duration::from_secs(11)).await;
    // The window refills at its reset. These reports came with no call of this limiter,
    // so the provider's counting says others spent nearly all of the window: this process
    // takes the smallest share of the new one, 1/16.
    assert_eq!(limiter.snapshot().capacity.tokens, Some(625));
}

/// A provider's report: `remaining` of `limit` tokens left, full again in `reset_secs`.
fn tokens_left(limit: u64, remaining: u64, reset_secs: u64) -> QuotaSnapshot {
    QuotaSnapshot::default().with_tokens(QuotaWindow::new(
        Some(limit),
        Some(remaining),
        Some(Duration::from_secs(reset_secs)),
    ))
}

fn with_quota(response: ChatResponse, quota: QuotaSnapshot) -> ChatResponse {
    let mut response = response;
    response.quota = Some(Box::new(quota));
    response
}

/// A token 429 says 144 tokens are left, not 0: that is all there is until the reset. A
/// call of 272 tokens waits for the reset instead of being sent to collect another 429.
#[tokio::test(start_paused = true)]
async fn what_the_provider_says_is_left_is_a_ceiling_until_its_reset() {
    let limiter = RateLimiter::new("t", config(60_000));
    let report = tokens_left(60_000, 144, 20);
    send(
        &limiter,
        weighing(100),
        with_quota(reply("m", "ok"), report),
    )
    .await
    .unwrap();
    assert_eq!(limiter.snapshot().capacity.tokens, Some(144));

    // Continuous refill of the configured 60,000 a minute would admit 272 tokens within
    // 128 ms; the provider's window does not refill before its reset.
    let start = Instant::now();
    send(&limiter, weighing(272), reply("m", "ok"))
        .await
        .unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(20) && waited <= Duration::from_millis(20_010),
        "waited {waited:?}"
    );
}

/// A replica told a quarter of the account keeps to its quarter, however much the provider
/// says the account has left.
#[tokio::test(start_paused = true)]
async fn the_configured_limit_stays_a_ceiling_of_its_own() {
    let limiter = RateLimiter::new("t", config(15_000));
    let report = tokens_left(60_000, 59_000, 1);
    send(
        &limiter,
        weighing(1_000),
        with_quota(reply("m", "ok"), report),
    )
    .await
    .unwrap();
    assert_eq!(limiter.snapshot().capacity.tokens, Some(14_000));
    let rejected = limiter
        .try_acquire(&limiter.weigh(&weighing(14_001)))
        .unwrap_err();
    assert!(matches!(rejected.reason, RejectReason::WaitTooLong { .. }));
}

/// Gemini reports its quota only in a 429's `RetryInfo`: no request is sent before that
/// wait is over.
#[tokio::test(start_paused = true)]
async fn a_rate_limit_reported_only_as_a_wait_holds_requests_until_it_ends() {
    let limiter = RateLimiter::new("t", RateLimitConfig::new().default_output_tokens(0));
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = RateLimit::new(service, limiter.clone());
    let call = tokio::spawn(service.ready().await.unwrap().call(weighing(10)));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error(
        seawall_core::LlmError::new(seawall_core::ErrorKind::RateLimited, "quota exceeded")
            .with_hints(
                seawall_core::RetryHints::default().with_retry_after(Duration::from_secs(7)),
            ),
    );
    assert!(call.await.unwrap().is_err());
    assert_eq!(limiter.snapshot().capacity.requests, Some(0));

    let start = Instant::now();
    let call = tokio::spawn(service.ready().await.unwrap().call(weighing(10)));
    let (_, respond) = handle.next_request().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(7),
        "{:?}",
        start.elapsed()
    );
    respond.send_response(reply("m", "ok"));
    call.await.unwrap().unwrap();
}

/// A stream's headers are taken when it begins, not when it ends minutes later.
#[tokio::test(start_paused = true)]
async fn a_streams_report_is_taken_when_the_stream_begins() {
    let limiter = RateLimiter::new("t", config(60_000));
    let report = tokens_left(60_000, 500, 30);
    let response = with_quota(
        streamed(
            "m",
            Duration::from_secs(60),
            vec![StreamEvent::Usage(Usage::new(100, 0))],
        ),
        report,
    );
    let response = send(&limiter, weighing(100), response).await.unwrap();
    assert_eq!(
        limiter.snapshot().capacity.tokens,
        Some(500),
        "taken at the head, the stream's own tokens counted in it"
    );
    collect(response.stream.unwrap()).await;
}

#[tokio::test(start_paused = true)]
async fn header_sync_discounts_calls_still_in_flight() {
    let limiter = RateLimiter::new("t", config(10_000));
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = RateLimit::new(service, limiter.clone());
    let in_flight = tokio::spawn(service.ready().await.unwrap().call(weighing(3_000)));
    let (_, _pending) = handle.next_request().await.unwrap();

    limiter.sync(&QuotaSnapshot::default().with_tokens(QuotaWindow::new(
        Some(10_000),
        Some(5_000),
        None,
    )));
    assert_eq!(limiter.snapshot().capacity.tokens, Some(2_000));
    in_flight.abort();
}

#[tokio::test(start_paused = true)]
async fn raw_http_calls_are_weighed_reconciled_and_synced_from_headers() {
    let limiter = RateLimiter::new("t", RateLimitConfig::new().tokens(Rate::per_minute(50_000)));
    let service = tower::service_fn(|_request: http::Request<String>| async {
        let response = http::Response::builder()
            .status(200)
            .header("x-ratelimit-limit-tokens", "50000")
            .header("x-ratelimit-remaining-tokens", "12345")
            .header("x-ratelimit-reset-tokens", "45s")
            .body(String::from("{}"))
            .unwrap();
        Ok::<_, BoxError>(response)
    });
    let service = RateLimit::new(service, limiter.clone());
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let request = http::Request::post("/v1/chat/completions")
        .body(String::from(body))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.requests_admitted, 1);
    assert!(snapshot.tokens_reserved > 0);
    assert_eq!(snapshot.capacity.tokens, Some(12_345));
}

#[tokio::test(start_paused = true)]
async fn the_limiter_is_a_gate_that_predicts_the_wait() {
    use seawall::failover::{SkipReason, TargetGate};
    use seawall_core::TokenEstimate;

    let limiter = RateLimiter::new("t", config(1_000));
    send(&limiter, weighing(1_000), reply("m", "ok"))
        .await
        .unwrap();
    let estimate = TokenEstimate {
        prompt: 100,
        reserved_output: 0,
    };
    let now = Instant::now();
    assert_eq!(
        limiter.predict_wait(now, &estimate, None).unwrap(),
        Duration::from_secs(6)
    );
    assert!(
        limiter
            .check(now, &estimate, Some(Duration::from_secs(7)))
            .is_ok()
    );
    let skip = limiter
        .check(now, &estimate, Some(Duration::from_secs(5)))
        .unwrap_err();
    assert!(matches!(skip, SkipReason::RateLimited(_)), "{skip}");
    assert_eq!(skip.retry_in(), Some(Duration::from_secs(6)));
    assert_eq!(
        limiter.snapshot().requests_admitted,
        1,
        "a check reserves nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn when_the_head_of_the_queue_gives_up_the_next_waiter_moves_up() {
    let limiter = RateLimiter::new("t", config(1_000));
    let start = Instant::now();
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = RateLimit::new(service, limiter.clone());
    let mut calls = Vec::new();
    for weight in [1_000, 900, 50] {
        calls.push(tokio::spawn(
            service.ready().await.unwrap().call(weighing(weight)),
        ));
        tokio::task::yield_now().await;
    }
    let (_, first) = handle.next_request().await.unwrap();
    first.send_response(reply("m", "ok"));
    // The large call's caller goes away while it waits.
    calls[1].abort();

    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.texts().next(), Some("50"));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "no longer behind the large call"
    );
    send.send_response(reply("m", "ok"));
    calls.pop().unwrap().await.unwrap().unwrap();
    assert_eq!(limiter.snapshot().queue_len, 0);
}

#[tokio::test(start_paused = true)]
async fn input_and_output_tokens_are_limited_separately() {
    let limiter = RateLimiter::new(
        "t",
        RateLimitConfig::new()
            .input_tokens(Rate::per_minute(10_000))
            .output_tokens(Rate::per_minute(200))
            .estimator(Arc::new(NumberEstimator))
            .max_wait(Duration::from_secs(1)),
    );
    let request = || weighing(10).with_max_output_tokens(150);
    send(&limiter, request(), reply("m", "ok")).await.unwrap();
    let error = send(&limiter, request(), reply("m", "ok"))
        .await
        .unwrap_err();
    // 100 of the 150 output tokens are missing: 30 s at 200 per minute.
    assert_eq!(
        rejection(&error).reason,
        RejectReason::WaitTooLong {
            wait: Duration::from_secs(30),
            max_wait: Duration::from_secs(1),
        }
    );
    let capacity = limiter.snapshot().capacity;
    assert_eq!(
        capacity.input_tokens,
        Some(10_000 - 10),
        "nothing taken on refusal"
    );
    assert_eq!(capacity.output_tokens, Some(50));
}

/// An inner service that is only callable once `poll_ready` said so, and whose clones
/// start unready, like tower's `ConcurrencyLimit` or `Buffer`.
struct StrictReadiness {
    ready: bool,
}

impl Clone for StrictReadiness {
    fn clone(&self) -> Self {
        Self { ready: false }
    }
}

impl Service<ChatRequest> for StrictReadiness {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = std::future::Ready<Result<ChatResponse, BoxError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: ChatRequest) -> Self::Future {
        assert!(self.ready, "called without poll_ready");
        self.ready = false;
        std::future::ready(Ok(reply("m", "ok")))
    }
}

#[tokio::test(start_paused = true)]
async fn the_readied_inner_service_is_the_one_called() {
    let limiter = RateLimiter::new("t", config(10_000));
    let mut service = RateLimit::new(StrictReadiness { ready: false }, limiter);
    for _ in 0..3 {
        service
            .ready()
            .await
            .unwrap()
            .call(weighing(10))
            .await
            .unwrap();
    }
}

#[test]
fn services_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<RateLimiter>();
    send_sync::<seawall::rate_limit::RateLimitLayer>();
    send_sync::<RateLimit<StrictReadiness>>();
    send::<<RateLimit<StrictReadiness> as Service<ChatRequest>>::Future>();
    send_sync::<seawall::failover::Failover>();
    send::<seawall::failover::future::ResponseFuture>();
}

#[tokio::test(start_paused = true)]
async fn a_waiter_behind_the_head_still_gives_up_at_its_deadline() {
    let limiter = RateLimiter::new("t", config(1_000).max_wait(Duration::from_secs(600)));
    let start = Instant::now();
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = RateLimit::new(service, limiter.clone());
    let _spent = tokio::spawn(service.ready().await.unwrap().call(weighing(1_000)));
    let (_, _in_flight) = handle.next_request().await.unwrap();
    let head = tokio::spawn(service.ready().await.unwrap().call(weighing(50)));
    tokio::task::yield_now().await;
    let mut request = weighing(50);
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(8)));
    // Predicted wait 6 s: it queues.
    let behind = tokio::spawn(service.ready().await.unwrap().call(request));
    tokio::task::yield_now().await;
    assert_eq!(limiter.snapshot().queue_len, 2);

    // The provider then says the window is exhausted for a minute: the head keeps waiting.
    limiter.sync(&tokens_left(1_000, 0, 60));
    let error = behind.await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(8));
    assert!(
        matches!(rejection(&error).reason, RejectReason::PastDeadline { .. }),
        "{error}"
    );
    assert_eq!(limiter.snapshot().queue_len, 1, "the head still waits");
    head.abort();
}

#[tokio::test(start_paused = true)]
async fn a_refund_admits_the_head_of_the_queue_before_its_timer() {
    let limiter = RateLimiter::new("t", config(1_000).max_wait(Duration::from_secs(600)));
    let start = Instant::now();
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = RateLimit::new(service, limiter.clone());
    // 100 prompt tokens and 900 reserved for output: the whole window.
    let first = tokio::spawn(
        service
            .ready()
            .await
            .unwrap()
            .call(weighing(100).with_max_output_tokens(900)),
    );
    let (_, in_flight) = handle.next_request().await.unwrap();
    let head = tokio::spawn(service.ready().await.unwrap().call(weighing(800)));
    tokio::task::yield_now().await;
    assert_eq!(limiter.snapshot().queue_len, 1);

    // Five seconds later the first call reports it used 100 tokens: 900 come back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    in_flight.send_response(reply("m", "ok").with_usage(Usage::new(100, 0)));
    first.await.unwrap().unwrap();
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.texts().next(), Some("800"));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5),
        "not the 48 s the timer said"
    );
    send.send_response(reply("m", "ok"));
    head.await.unwrap().unwrap();
}

/// Replicas sharing one account see each other in the reports: what the provider counted
/// beyond this process's calls is theirs. After a window in which others spent 300 tokens
/// and this process 200, the next window's room is taken at 15/16 of a 2/5 share, so that
/// replicas that all see it at the reset do not all take it.
#[tokio::test(start_paused = true)]
async fn a_replica_takes_its_share_of_the_room_the_reports_show() {
    let limiter = RateLimiter::new(
        "t",
        RateLimitConfig::new()
            .default_output_tokens(0)
            .estimator(Arc::new(NumberEstimator)),
    );
    let report = |remaining| tokens_left(1_000, remaining, 10);
    let answer = |remaining| {
        with_quota(
            reply("m", "ok").with_usage(Usage::new(100, 0)),
            report(remaining),
        )
    };
    // Alone so far: the whole room is this process's.
    send(&limiter, weighing(100), answer(900)).await.unwrap();
    assert_eq!(limiter.snapshot().capacity.tokens, Some(900));
    // 300 tokens more than this call were counted: others spent them.
    send(&limiter, weighing(100), answer(500)).await.unwrap();

    tokio::time::advance(Duration::from_secs(11)).await;
    // 200 of the 500 spent were this process's: 15/16 of 2/5 of the new window, 375,
    // rounded down in 1/1024ths.
    assert_eq!(limiter.snapshot().capacity.tokens, Some(374));
}

/// A process alone on its account keeps the whole window even when its calls use more
/// than they reserved: what it spent is its usage, not its reservations.
#[tokio::test(start_paused = true)]
async fn calls_that_use_more_than_they_reserved_are_not_taken_for_other_replicas() {
    let limiter = RateLimiter::new(
        "t",
        RateLimitConfig::new()
            .default_output_tokens(0)
            .estimator(Arc::new(NumberEstimator)),
    );
    for remaining in [700, 400] {
        let report = tokens_left(1_000, remaining, 10);
        // 100 reserved, 300 used.
        let answer = with_quota(reply("m", "ok").with_usage(Usage::new(100, 200)), report);
        send(&limiter, weighing(100), answer).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(limiter.snapshot().capacity.tokens, Some(1_000));
}
