//! The Responses adapter's stream rules on hand-written event sequences: `sequence_number`
//! gaps and repeats, both shapes of the `error` event, `response.failed` and
//! `response.incomplete`.

mod support;

use seawall_core::{ChatRequest, ErrorKind, FinishReason, Message, StreamEvent};
use seawall_providers::{MalformedPolicy, OpenAiResponses, ResponsesConfig};
use support::{Canned, ChunkedBody, events};
use tower::ServiceExt;

/// An SSE body of `(type, sequence_number, rest of the JSON object)` events.
fn body(events: &[(&str, u64, &str)]) -> String {
    events
        .iter()
        .map(|(kind, seq, rest)| {
            let comma = if rest.is_empty() { "" } else { "," };
            format!(
                "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq}{comma}{rest}}}\n\n"
            )
        })
        .collect()
}

const CREATED: (&str, u64, &str) = (
    "response.created",
    0,
    r#""response":{"id":"resp_1","model":"gpt-5","status":"in_progress"}"#,
);

fn delta(seq: u64, text: &str) -> (&'static str, u64, String) {
    (
        "response.output_text.delta",
        seq,
        format!(r#""item_id":"msg_1","output_index":0,"delta":"{text}""#),
    )
}

fn completed(seq: u64) -> (&'static str, u64, String) {
    (
        "response.completed",
        seq,
        r#""response":{"id":"resp_1","status":"completed","usage":{"input_tokens":5,"output_tokens":2,"total_tokens":7}}"#.to_owned(),
    )
}

async fn stream(sse: String, policy: MalformedPolicy) -> (Vec<StreamEvent>, u64) {
    let http = Canned::sse(ChunkedBody::whole(sse));
    let adapter =
        OpenAiResponses::new(http, ResponsesConfig::new("sk-test")).with_malformed_policy(policy);
    let metrics = adapter.stream_metrics().clone();
    let request = ChatRequest::new("gpt-5", [Message::user("hi")]).streaming();
    let response = adapter.oneshot(request).await.unwrap();
    (events(response).await, metrics.malformed_skipped())
}

fn owned<'a>(events: &'a [(&'static str, u64, String)]) -> Vec<(&'static str, u64, &'a str)> {
    events
        .iter()
        .map(|(k, s, r)| (*k, *s, r.as_str()))
        .collect()
}

fn text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_repeated_event_is_dropped_and_counted() {
    let mut events = vec![(CREATED.0, CREATED.1, CREATED.2.to_owned())];
    events.extend([
        delta(1, "Hel"),
        delta(1, "Hel"),
        delta(2, "lo"),
        completed(3),
    ]);
    let sse = body(&owned(&events));
    let (decoded, skipped) = stream(sse.clone(), MalformedPolicy::Skip).await;
    assert_eq!(text(&decoded), "Hello", "the repeat is not text twice");
    assert_eq!(skipped, 1);
    assert!(matches!(
        decoded.last(),
        Some(StreamEvent::Finish(FinishReason::Stop))
    ));

    let (decoded, _) = stream(sse, MalformedPolicy::Fail).await;
    let Some(StreamEvent::Error(error)) = decoded.last() else {
        panic!("{decoded:?}")
    };
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert!(
        error.message().contains("sequence_number 1 after 1"),
        "{error}"
    );
}

#[tokio::test]
async fn a_gap_keeps_the_event_and_counts_the_loss() {
    let mut events = vec![(CREATED.0, CREATED.1, CREATED.2.to_owned())];
    events.extend([delta(1, "Hel"), delta(3, "lo"), completed(4)]);
    let sse = body(&owned(&events));
    let (decoded, skipped) = stream(sse.clone(), MalformedPolicy::Skip).await;
    assert_eq!(text(&decoded), "Hello");
    assert_eq!(skipped, 1, "events 2 are missing");
    assert!(matches!(
        decoded.last(),
        Some(StreamEvent::Finish(FinishReason::Stop))
    ));
    let (decoded, _) = stream(sse, MalformedPolicy::Fail).await;
    assert!(
        matches!(decoded.last(), Some(StreamEvent::Error(e)) if e.kind() == ErrorKind::Decode),
        "{decoded:?}"
    );
}

#[tokio::test]
async fn the_flat_error_event_of_the_specification_is_read_too() {
    let sse = body(&[
        CREATED,
        (
            "error",
            1,
            r#""code":"rate_limit_exceeded","message":"Rate limit reached for gpt-5","param":null"#,
        ),
    ]);
    let (decoded, _) = stream(sse, MalformedPolicy::Skip).await;
    let Some(StreamEvent::Error(error)) = decoded.last() else {
        panic!("{decoded:?}")
    };
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.code(), Some("rate_limit_exceeded"));
    assert_eq!(error.message(), "Rate limit reached for gpt-5");
}

#[tokio::test]
async fn a_failed_response_is_classified_by_its_code() {
    for (code, kind) in [
        ("server_error", ErrorKind::Server),
        ("rate_limit_exceeded", ErrorKind::RateLimited),
        ("invalid_prompt", ErrorKind::InvalidRequest),
        ("image_content_policy_violation", ErrorKind::ContentFiltered),
    ] {
        let failed = format!(
            r#""response":{{"id":"resp_1","status":"failed","error":{{"code":"{code}","message":"no"}}}}"#
        );
        let sse = body(&[CREATED, ("response.failed", 1, &failed)]);
        let (decoded, _) = stream(sse, MalformedPolicy::Skip).await;
        let Some(StreamEvent::Error(error)) = decoded.last() else {
            panic!("{decoded:?}")
        };
        assert_eq!(error.kind(), kind, "{code}");
        assert_eq!(error.code(), Some(code));
    }
}

#[tokio::test]
async fn an_incomplete_response_finishes_with_its_reason() {
    for (reason, finish) in [
        ("max_output_tokens", FinishReason::Length),
        ("content_filter", FinishReason::ContentFilter),
    ] {
        let incomplete = format!(
            r#""response":{{"id":"resp_1","status":"incomplete","incomplete_details":{{"reason":"{reason}"}},"usage":{{"input_tokens":5,"output_tokens":16,"output_tokens_details":{{"reasoning_tokens":4}},"input_tokens_details":{{"cached_tokens":3}}}}}}"#
        );
        let events = vec![
            (CREATED.0, CREATED.1, CREATED.2.to_owned()),
            delta(1, "Once"),
            ("response.incomplete", 2, incomplete),
        ];
        let (decoded, _) = stream(body(&owned(&events)), MalformedPolicy::Skip).await;
        let n = decoded.len();
        assert_eq!(decoded[n - 1], StreamEvent::Finish(finish), "{reason}");
        let StreamEvent::Usage(usage) = &decoded[n - 2] else {
            panic!("{decoded:?}")
        };
        assert_eq!((usage.input_tokens, usage.output_tokens), (5, 16));
        assert_eq!((usage.cached_input_tokens, usage.reasoning_tokens), (3, 4));
    }
}
