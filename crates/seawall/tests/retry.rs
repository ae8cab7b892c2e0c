//! RetryLayer on the paused clock with tower-test mocks.

mod support;

use seawall::timeout::TokioClock;
use seawall_core::Clock as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use seawall::retry::{Backoff, RetryLayer, TpsBudget};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, Deadline, Disposition, ErrorKind, LlmError, TimedOut,
    TimeoutKind, classify, hints,
};
use support::{answer, error, request};
use tokio::time::Instant;
use tower::util::rng::Rng;
use tower::{Layer, ServiceExt};
use tower_test::mock;

type Handle = mock::Handle<ChatRequest, ChatResponse>;

fn spawn_call(
    layer: &RetryLayer,
    request: ChatRequest,
) -> (
    tokio::task::JoinHandle<Result<ChatResponse, BoxError>>,
    Handle,
) {
    let (service, handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);
    (tokio::spawn(service.oneshot(request)), handle)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

/// A 429 whose hints were parsed from `headers` at `now`, as an adapter does.
fn rate_limited_with(headers: &HeaderMap, now: SystemTime) -> LlmError {
    let mut error = error(ErrorKind::RateLimited, 429).with_hints(hints::retry_hints(headers, now));
    let quota = hints::quota_snapshot(headers, now);
    if !quota.is_empty() {
        error = error.with_quota(quota);
    }
    error
}

/// Fails the first attempt with `failure` and returns the wait before the second one.
async fn wait_before_retry(layer: &RetryLayer, failure: LlmError) -> Duration {
    let (call, mut handle) = spawn_call(layer, request());
    let (_, reply) = handle.next_request().await.expect("first attempt");
    let failed_at = Instant::now();
    reply.send_error(failure);
    let (_, reply) = handle.next_request().await.expect("a retry");
    let waited = failed_at.elapsed();
    reply.send_response(answer("Paris"));
    assert_eq!(call.await.unwrap().unwrap().text(), "Paris");
    waited
}

#[tokio::test(start_paused = true)]
async fn each_retry_after_form_gives_the_exact_wait() {
    // Whole seconds, as HTTP dates and these resets are (and tokio's timer has 1 ms steps).
    let unix_now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(unix_now);
    let in_3s = httpdate::fmt_http_date(now + Duration::from_secs(3));
    let anthropic_reset = rfc3339(unix_now + 2);
    let gemini_body = serde_json::json!({
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
            ]
        }
    });
    let cases: Vec<(&str, LlmError, Duration)> = vec![
        (
            "retry-after-ms",
            rate_limited_with(&headers(&[("retry-after-ms", "1250")]), now),
            Duration::from_millis(1250),
        ),
        (
            "retry-after-ms wins over retry-after",
            rate_limited_with(
                &headers(&[("retry-after-ms", "300"), ("retry-after", "4")]),
                now,
            ),
            Duration::from_millis(300),
        ),
        (
            "retry-after seconds",
            rate_limited_with(&headers(&[("retry-after", "2")]), now),
            Duration::from_secs(2),
        ),
        (
            "retry-after fractional seconds",
            rate_limited_with(&headers(&[("retry-after", "0.75")]), now),
            Duration::from_millis(750),
        ),
        (
            "retry-after HTTP date",
            rate_limited_with(&headers(&[("retry-after", &in_3s)]), now),
            Duration::from_secs(3),
        ),
        (
            "openai quota reset",
            rate_limited_with(
                &headers(&[
                    ("x-ratelimit-limit-requests", "500"),
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "4s"),
                ]),
                now,
            ),
            Duration::from_secs(4),
        ),
        (
            "anthropic quota reset",
            rate_limited_with(
                &headers(&[
                    ("anthropic-ratelimit-requests-limit", "50"),
                    ("anthropic-ratelimit-requests-remaining", "0"),
                    ("anthropic-ratelimit-requests-reset", &anthropic_reset),
                ]),
                now,
            ),
            Duration::from_secs(2),
        ),
        (
            "gemini RetryInfo",
            error(ErrorKind::RateLimited, 429)
                .with_retry_after(hints::gemini_retry_delay(&gemini_body).unwrap()),
            Duration::from_millis(1500),
        ),
        (
            "x-should-retry true on a 400, with retry-after-ms",
            error(ErrorKind::InvalidRequest, 400).with_hints(hints::retry_hints(
                &headers(&[("x-should-retry", "true"), ("retry-after-ms", "900")]),
                now,
            )),
            Duration::from_millis(900),
        ),
    ];
    let layer = RetryLayer::new().max_server_wait(Duration::from_secs(5));
    for (form, failure, expected) in cases {
        assert_eq!(wait_before_retry(&layer, failure).await, expected, "{form}");
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    let (year, month, day) = seawall_core::calendar::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test(start_paused = true)]
async fn the_hint_is_reread_on_every_attempt() {
    let layer = RetryLayer::new().max_attempts(3);
    let (call, mut handle) = spawn_call(&layer, request());
    let (_, reply) = handle.next_request().await.unwrap();
    let mut at = Instant::now();
    reply.send_error(error(ErrorKind::RateLimited, 429).with_retry_after(Duration::from_secs(1)));
    let (_, reply) = handle.next_request().await.unwrap();
    assert_eq!(at.elapsed(), Duration::from_secs(1));
    at = Instant::now();
    reply.send_error(error(ErrorKind::Overloaded, 529).with_retry_after(Duration::from_secs(3)));
    let (_, reply) = handle.next_request().await.unwrap();
    assert_eq!(at.elapsed(), Duration::from_secs(3));
    reply.send_response(answer("ok"));
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn raw_http_429_with_retry_after_ms_is_retried_after_exactly_that() {
    type Req = http::Request<Full<Bytes>>;
    type Res = http::Response<Full<Bytes>>;
    let (service, mut handle) = mock::pair::<Req, Res>();
    let service = RetryLayer::new().layer(service);
    let request = http::Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{\"model\":\"gpt-4o\"}")))
        .unwrap();
    let call = tokio::spawn(service.oneshot(request));

    let (first, reply) = handle.next_request().await.unwrap();
    assert_eq!(first.uri(), "/v1/chat/completions");
    let at = Instant::now();
    reply.send_response(
        http::Response::builder()
            .status(429)
            .header("retry-after-ms", "700")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    let (second, reply) = handle.next_request().await.unwrap();
    assert_eq!(at.elapsed(), Duration::from_millis(700));
    assert_eq!(
        http_body_util::BodyExt::collect(second.into_body())
            .await
            .unwrap()
            .to_bytes(),
        Bytes::from_static(b"{\"model\":\"gpt-4o\"}"),
        "the retry sends the same body"
    );
    reply.send_response(http::Response::new(Full::new(Bytes::from_static(b"{}"))));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn raw_http_returns_the_last_failed_response_when_attempts_run_out() {
    type Req = http::Request<Full<Bytes>>;
    type Res = http::Response<Full<Bytes>>;
    let (service, mut handle) = mock::pair::<Req, Res>();
    let service = RetryLayer::new()
        .max_attempts(2)
        .backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ))
        .layer(service);
    let call = tokio::spawn(service.oneshot(http::Request::new(Full::new(Bytes::new()))));
    for status in [502, 503] {
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_response(
            http::Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        );
    }
    assert_eq!(call.await.unwrap().unwrap().status(), 503);
    assert!(handle.next_request().await.is_none(), "no further attempt");
}

struct Fixed(u64);

impl Rng for Fixed {
    fn next_u64(&mut self) -> u64 {
        self.0
    }
}

#[test]
fn backoff_is_full_jitter_under_a_doubling_capped_ceiling() {
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
    let ceilings: Vec<_> = (0..6).map(|n| backoff.ceiling(n)).collect();
    assert_eq!(
        ceilings,
        [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
    );
    assert_eq!(
        backoff.ceiling(200),
        Duration::from_millis(1000),
        "no overflow"
    );
    for retry in 0..6 {
        assert_eq!(backoff.wait(retry, &mut Fixed(0)), Duration::ZERO);
        let top = backoff.wait(retry, &mut Fixed(u64::MAX));
        assert!(top <= backoff.ceiling(retry));
        assert!(top > backoff.ceiling(retry).mul_f64(0.999));
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_stay_within_their_bounds() {
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(300));
    let layer = RetryLayer::new().max_attempts(5).backoff(backoff);
    let (call, mut handle) = spawn_call(&layer, request());
    let mut waits = Vec::new();
    let (_, mut reply) = handle.next_request().await.unwrap();
    for _ in 0..4 {
        let at = Instant::now();
        reply.send_error(error(ErrorKind::Server, 500));
        let (_, next) = handle.next_request().await.unwrap();
        waits.push(at.elapsed());
        reply = next;
    }
    reply.send_error(error(ErrorKind::Server, 500));
    let last = call.await.unwrap().unwrap_err();
    assert_eq!(last.downcast_ref::<LlmError>().unwrap().status(), Some(500));
    for (retry, wait) in waits.iter().enumerate() {
        assert!(
            *wait <= backoff.ceiling(retry as u32),
            "retry {retry} waited {wait:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_and_the_last_error_is_returned() {
    let layer = RetryLayer::new().max_attempts(3);
    let (call, mut handle) = spawn_call(&layer, request());
    for attempt in 0..3u32 {
        let (sent, reply) = handle.next_request().await.unwrap();
        assert_eq!(sent.context.attempt, attempt, "the attempt number travels");
        reply.send_error(
            LlmError::new(ErrorKind::Overloaded, format!("attempt {attempt}"))
                .with_status(529)
                .with_retry_after(Duration::from_millis(100)),
        );
    }
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(
        error.downcast_ref::<LlmError>().unwrap().message(),
        "attempt 2"
    );
    assert!(handle.next_request().await.is_none(), "no further attempt");
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_stops_retries_across_targets() {
    // One retry in reserve, none earned by calls: shared by two targets' layers.
    let budget = Arc::new(TpsBudget::new(Duration::from_secs(1), 1, 0.0));
    let first_target = RetryLayer::new().max_attempts(5).budget(budget.clone());
    let second_target = RetryLayer::new().max_attempts(5).budget(budget);
    let failure = || error(ErrorKind::Server, 500).with_retry_after(Duration::from_millis(10));

    let (call, mut handle) = spawn_call(&first_target, request());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure());
    let (_, reply) = handle
        .next_request()
        .await
        .expect("the reserve pays one retry");
    reply.send_error(failure());
    call.await.unwrap().unwrap_err();

    let (call, mut handle) = spawn_call(&second_target, request());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure());
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(
        error.downcast_ref::<LlmError>().unwrap().status(),
        Some(500)
    );
    assert!(handle.next_request().await.is_none(), "no further attempt");
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_returns_at_once_with_the_last_error() {
    let layer = RetryLayer::new().max_attempts(5);
    let mut request = request();
    let start = Instant::now();
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(2)));
    let (call, mut handle) = spawn_call(&layer, request);

    // The first wait fits the deadline and is waited out.
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(
        LlmError::new(ErrorKind::RateLimited, "first")
            .with_status(429)
            .with_retry_after(Duration::from_millis(800)),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(800));
    // 1.2 s are left: a 1.5 s wait does not fit.
    reply.send_error(
        LlmError::new(ErrorKind::RateLimited, "second")
            .with_status(429)
            .with_retry_after(Duration::from_millis(1500)),
    );
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(800),
        "no time spent waiting"
    );
    let error = error.downcast_ref::<LlmError>().unwrap();
    assert_eq!(error.message(), "second");
    let verdict = classify(error);
    assert_eq!(
        verdict.retry_after,
        Some(Duration::from_millis(1500)),
        "the hint stays for failover"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_wait_over_the_threshold_returns_at_once() {
    let layer = RetryLayer::new().max_server_wait(Duration::from_secs(5));
    let (call, mut handle) = spawn_call(&layer, request());
    let (_, reply) = handle.next_request().await.unwrap();
    let at = Instant::now();
    reply.send_error(error(ErrorKind::RateLimited, 429).with_retry_after(Duration::from_secs(30)));
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(at.elapsed(), Duration::ZERO);
    assert_eq!(
        classify(error.as_ref()).retry_after,
        Some(Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn failover_and_fatal_failures_are_not_retried() {
    let failures: Vec<(&str, BoxError)> = vec![
        (
            "attempt timeout",
            Box::new(TimedOut::new(TimeoutKind::Attempt, Duration::from_secs(10))),
        ),
        ("provider timeout", error(ErrorKind::Timeout, 504).into()),
        ("bad request", error(ErrorKind::InvalidRequest, 400).into()),
        ("auth", error(ErrorKind::Auth, 401).into()),
        (
            "quota exhausted",
            error(ErrorKind::QuotaExhausted, 429).into(),
        ),
        (
            "context length",
            error(ErrorKind::ContextLengthExceeded, 400).into(),
        ),
        (
            "x-should-retry false on a 500",
            error(ErrorKind::Server, 500)
                .with_hints(seawall_core::RetryHints::default().with_should_retry(false))
                .into(),
        ),
    ];
    let layer = RetryLayer::new().max_attempts(5);
    for (name, failure) in failures {
        let expected = classify(failure.as_ref()).disposition;
        assert_ne!(expected, Disposition::Retry, "{name}");
        let (call, mut handle) = spawn_call(&layer, request());
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(failure);
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(classify(error.as_ref()).disposition, expected, "{name}");
        assert!(handle.next_request().await.is_none(), "no further attempt");
    }
}
