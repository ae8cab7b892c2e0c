//! Retry and quota hints: every retry-after form, Go durations, RFC 3339 resets, Gemini
//! RetryInfo, and the raw-HTTP side of `LlmRequest` / `LlmResponse`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use seawall_core::hints::{
    gemini_retry_delay, parse_go_duration, parse_protobuf_duration, parse_rfc3339, quota_snapshot,
    retry_after, retry_hints,
};
use seawall_core::tokens::{HeuristicEstimator, TokenEstimate};
use seawall_core::{
    ChatRequest, ErrorKind, LlmError, LlmRequest, LlmResponse, Message, QuotaWindow, RequestContext,
};
use serde_json::json;

type Header = (&'static str, &'static str);

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

#[test]
fn every_retry_after_form_gives_its_exact_wait() {
    let now = at(1_700_000_000);
    let cases: &[(&[Header], Option<Duration>)] = &[
        (&[("retry-after", "1")], Some(Duration::from_secs(1))),
        (&[("retry-after", "0.25")], Some(Duration::from_millis(250))),
        (
            &[("retry-after-ms", "300")],
            Some(Duration::from_millis(300)),
        ),
        (
            &[("retry-after-ms", "12.5")],
            Some(Duration::from_micros(12_500)),
        ),
        (
            &[("retry-after-ms", "300"), ("retry-after", "5")],
            Some(Duration::from_millis(300)),
        ),
        (
            // An HTTP date 3 s after `now` (1700000003 = Tue, 14 Nov 2023 22:13:23 GMT).
            &[("retry-after", "Tue, 14 Nov 2023 22:13:23 GMT")],
            Some(Duration::from_secs(3)),
        ),
        (
            &[("retry-after", "Tue, 14 Nov 2023 22:00:00 GMT")],
            Some(Duration::ZERO),
        ),
        (&[("retry-after", "soon")], None),
        (&[("retry-after", "-4")], None),
        (
            &[("retry-after-ms", "NaN"), ("retry-after", "2")],
            Some(Duration::from_secs(2)),
        ),
        (&[], None),
    ];
    for (pairs, expected) in cases {
        assert_eq!(retry_after(&headers(pairs), now), *expected, "{pairs:?}");
    }
}

#[test]
fn x_should_retry_is_read_either_way() {
    let now = at(0);
    assert_eq!(
        retry_hints(&headers(&[("x-should-retry", "true")]), now).should_retry,
        Some(true)
    );
    assert_eq!(
        retry_hints(&headers(&[("x-should-retry", "False")]), now).should_retry,
        Some(false)
    );
    assert_eq!(
        retry_hints(&headers(&[("x-should-retry", "maybe")]), now).should_retry,
        None
    );
}

#[test]
fn go_durations_as_openai_sends_them() {
    for (text, expected) in [
        ("6m0s", Duration::from_secs(360)),
        ("12ms", Duration::from_millis(12)),
        ("1ms", Duration::from_millis(1)),
        ("1s", Duration::from_secs(1)),
        ("34.337s", Duration::from_millis(34_337)),
        ("1h2m3.5s", Duration::from_millis(3_723_500)),
        ("250us", Duration::from_micros(250)),
        ("2", Duration::from_secs(2)),
    ] {
        assert_eq!(parse_go_duration(text), Some(expected), "{text}");
    }
    for bad in ["", "6x", "m", "1.2.3s", "-1s"] {
        assert_eq!(parse_go_duration(bad), None, "{bad}");
    }
}

#[test]
fn rfc3339_resets_as_anthropic_sends_them() {
    // 2025-08-21T12:40:59Z is 1755780059 seconds after the epoch.
    assert_eq!(
        parse_rfc3339("2025-08-21T12:40:59Z"),
        Some(at(1_755_780_059))
    );
    assert_eq!(
        parse_rfc3339("2025-08-21T12:40:59.5Z"),
        Some(at(1_755_780_059) + Duration::from_millis(500))
    );
    assert_eq!(
        parse_rfc3339("2025-08-21T14:40:59+02:00"),
        Some(at(1_755_780_059))
    );
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
    assert_eq!(
        parse_rfc3339("2024-02-29T00:00:00Z"),
        Some(at(1_709_164_800))
    );
    for bad in [
        "2025-08-21",
        "2025-13-01T00:00:00Z",
        "2025-08-21T12:40:59",
        "yesterday",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn quota_snapshots_from_both_header_families() {
    // From the recorded OpenAI response in fixtures (tidyllm completions-f382f0).
    let openai = headers(&[
        ("x-ratelimit-limit-requests", "5000"),
        ("x-ratelimit-remaining-requests", "4999"),
        ("x-ratelimit-reset-requests", "12ms"),
        ("x-ratelimit-limit-tokens", "800000"),
        ("x-ratelimit-remaining-tokens", "799970"),
        ("x-ratelimit-reset-tokens", "2ms"),
    ]);
    let snapshot = quota_snapshot(&openai, at(0));
    assert_eq!(
        snapshot.requests,
        Some(QuotaWindow::new(
            Some(5000),
            Some(4999),
            Some(Duration::from_millis(12))
        ))
    );
    assert_eq!(
        snapshot.tokens.unwrap().reset_after,
        Some(Duration::from_millis(2))
    );
    assert_eq!(snapshot.exhausted_until(), None);

    let now = at(1_755_780_000);
    let anthropic = headers(&[
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "0"),
        ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
        ("anthropic-ratelimit-input-tokens-limit", "20000"),
        ("anthropic-ratelimit-input-tokens-remaining", "20000"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2025-08-21T12:40:00Z",
        ),
    ]);
    let snapshot = quota_snapshot(&anthropic, now);
    assert_eq!(snapshot.requests.unwrap().remaining, Some(0));
    assert_eq!(snapshot.input_tokens.unwrap().limit, Some(20_000));
    assert_eq!(snapshot.exhausted_until(), Some(Duration::from_secs(59)));
    assert_eq!(
        retry_hints(&anthropic, now).quota_reset,
        Some(Duration::from_secs(59))
    );
}

#[test]
fn quota_headers_first_value_counts_and_unknown_names_are_ignored() {
    let mut map = headers(&[
        ("x-ratelimit-remaining-tokens", "10"),
        ("x-ratelimit-reset-tokens", "not a duration"),
        // Neither family nor field known: ignored, not misread.
        ("x-ratelimit-limit-images", "5"),
        ("x-ratelimit-limit", "7"),
        ("anthropic-ratelimit-requests", "9"),
        ("anthropic-ratelimit-tokens-used", "3"),
        ("anthropic-ratelimit-output-tokens-remaining", " 42 "),
    ]);
    map.append("x-ratelimit-remaining-tokens", "99".parse().unwrap());
    let snapshot = quota_snapshot(&map, at(0));
    assert_eq!(
        snapshot.tokens,
        Some(QuotaWindow::new(None, Some(10), None))
    );
    assert_eq!(snapshot.requests, None);
    assert_eq!(snapshot.input_tokens, None);
    assert_eq!(snapshot.output_tokens.unwrap().remaining, Some(42));
    // OpenAI's family wins where both report the same window.
    let both = headers(&[
        ("anthropic-ratelimit-requests-remaining", "1"),
        ("x-ratelimit-remaining-requests", "2"),
    ]);
    assert_eq!(
        quota_snapshot(&both, at(0)).requests.unwrap().remaining,
        Some(2)
    );
}

#[test]
fn gemini_retry_info_is_read_from_the_error_body() {
    let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}
    ]}});
    assert_eq!(
        gemini_retry_delay(&body),
        Some(Duration::from_millis(34_400))
    );
    assert_eq!(gemini_retry_delay(&json!({"error": {"code": 429}})), None);
    assert_eq!(
        parse_protobuf_duration("26s"),
        Some(Duration::from_secs(26))
    );
    assert_eq!(parse_protobuf_duration("26"), None);
}

#[test]
fn raw_http_requests_carry_context_and_an_upper_bound_weight() {
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let mut request = http::Request::new(http_body_full(body));
    assert!(LlmRequest::context(&request).is_none());
    request.context_mut().attempt = 2;
    assert_eq!(LlmRequest::context(&request).map(|c| c.attempt), Some(2));
    let estimate = request.estimate(&HeuristicEstimator::default(), 256);
    assert_eq!(estimate.reserved_output, 256);
    assert!(estimate.prompt >= body.len() as u64 / 3);

    request.extensions_mut().insert(TokenEstimate {
        prompt: 9,
        reserved_output: 1,
    });
    assert_eq!(
        request
            .estimate(&HeuristicEstimator::default(), 256)
            .total(),
        10
    );

    let mut typed = ChatRequest::new("gpt-4o", [Message::user("hi")]);
    typed.context_mut().attempt = 1;
    let mut expected = RequestContext::default();
    expected.attempt = 1;
    assert_eq!(typed.context, expected);
}

#[test]
fn raw_http_responses_are_judged_by_status_headers_and_extensions() {
    let ok = http::Response::new(());
    assert!(ok.failure().is_none());

    let mut limited = http::Response::new(());
    *limited.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    limited
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("2"));
    let failure = limited.failure().unwrap();
    assert_eq!(failure.kind(), ErrorKind::RateLimited);
    assert_eq!(failure.status(), Some(429));
    assert_eq!(failure.hints().retry_after, Some(Duration::from_secs(2)));

    // A layer that read the body knows better than the status.
    limited.extensions_mut().insert(LlmError::new(
        ErrorKind::QuotaExhausted,
        "insufficient_quota",
    ));
    assert_eq!(limited.failure().unwrap().kind(), ErrorKind::QuotaExhausted);
}

/// A body with an exact size hint, like `http_body_util::Full`.
fn http_body_full(text: &'static str) -> ExactBody {
    ExactBody(text.len() as u64)
}

struct ExactBody(u64);

impl http_body::Body for ExactBody {
    type Data = std::io::Cursor<Vec<u8>>;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(None)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0)
    }
}

/// Found by the `hints` fuzz target: a wait of more seconds than a clock can add. Every hint
/// is at most `MAX_HINT`, so `now + wait` never overflows downstream.
#[test]
fn absurd_waits_are_capped_so_no_clock_overflows() {
    use seawall_core::hints::MAX_HINT;
    let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    for value in ["11406509395579377545", "1e300", "99999999999999999999999"] {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_str(value).unwrap());
        let wait = retry_after(&headers, now).unwrap();
        assert_eq!(wait, MAX_HINT, "{value}");
        assert!(now.checked_add(wait).is_some());
        let mut headers = HeaderMap::new();
        headers.insert("retry-after-ms", HeaderValue::from_str(value).unwrap());
        assert_eq!(retry_after(&headers, now), Some(MAX_HINT), "ms {value}");
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        "retry-after",
        HeaderValue::from_static("Fri, 31 Dec 9999 23:59:59 GMT"),
    );
    assert_eq!(retry_after(&headers, now), Some(MAX_HINT));
    assert_eq!(parse_go_duration("99999999999999999999h"), Some(MAX_HINT));
    assert_eq!(parse_protobuf_duration("1e30s"), Some(MAX_HINT));
    // Ordinary values are untouched.
    assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
}
