//! The request, response and stream model: validation, accumulation, context and trail.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use seawall_core::{
    AttemptOutcome, AttemptRecord, CacheControl, ChatRequest, ChatResponse, Clock, Deadline,
    ErrorKind, EventStream, FinishReason, LlmError, Message, ProviderKind, QuotaSnapshot,
    QuotaWindow, RequestContext, ResponseFormat, StreamAccumulator, StreamEvent, ToolCall,
    ToolChoice, ToolDefinition, Usage,
};
use serde_json::json;

fn valid() -> ChatRequest {
    ChatRequest::new("gpt-4o", [Message::user("hi")])
}

#[test]
fn validation_names_the_field_at_fault() {
    assert!(valid().validate().is_ok());
    let cases: Vec<(ChatRequest, &str)> = vec![
        (ChatRequest::new(" ", [Message::user("hi")]), "model"),
        (ChatRequest::new("gpt-4o", []), "messages"),
        (valid().with_max_output_tokens(0), "max_output_tokens"),
        (valid().with_temperature(2.5), "temperature"),
        (
            ChatRequest {
                top_p: Some(-0.1),
                ..valid()
            },
            "top_p",
        ),
        (
            ChatRequest::new(
                "gpt-4o",
                [Message {
                    tool_call_id: None,
                    ..Message::tool_result("x", "42")
                }],
            ),
            "messages[0].tool_call_id",
        ),
        (
            ChatRequest::new(
                "gpt-4o",
                [Message {
                    content: Vec::new(),
                    ..Message::user("")
                }],
            ),
            "messages[0].content",
        ),
        (
            valid().with_tool_choice(ToolChoice::Tool("search".into())),
            "tool_choice",
        ),
        (
            valid().with_tools([ToolDefinition::new("", "nameless", json!({}))]),
            "tools[0].name",
        ),
    ];
    for (request, field) in cases {
        let error = request.validate().expect_err(field);
        assert_eq!(error.field, field);
        assert!(error.to_string().contains(field));
    }
}

#[test]
fn cloning_a_request_shares_its_messages() {
    let request = ChatRequest::new("gpt-4o", vec![Message::user("a"); 100]);
    let clone = request.clone();
    assert!(std::sync::Arc::ptr_eq(&request.messages, &clone.messages));
    assert_eq!(request, clone);
}

#[test]
fn requests_round_trip_through_json_with_cache_markers_and_pass_through_fields() {
    let request = ChatRequest::new(
        "claude-sonnet-4-5",
        [
            Message::system("long instructions").with_cache_control(CacheControl::ephemeral()),
            Message::user("hi"),
            Message::assistant_tool_calls([ToolCall {
                id: "call_1".into(),
                name: "lookup".into(),
                arguments: "{\"q\":1}".into(),
            }]),
            Message::tool_result("call_1", "found"),
        ],
    )
    .with_response_format(ResponseFormat::JsonSchema {
        name: "answer".into(),
        schema: json!({"type": "object"}),
        strict: true,
    })
    .with_extra(
        "thinking",
        json!({"type": "enabled", "budget_tokens": 1024}),
    )
    .with_user("tenant-7");
    let text = serde_json::to_string(&request).unwrap();
    assert!(
        text.contains("\"cache_control\":{\"type\":\"ephemeral\"}"),
        "{text}"
    );
    let back: ChatRequest = serde_json::from_str(&text).unwrap();
    assert_eq!(back, request);
    assert_eq!(
        back.messages[0].content[0].cache_control(),
        Some(&CacheControl::ephemeral())
    );
}

fn poll_all(mut stream: EventStream) -> Vec<StreamEvent> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut events = Vec::new();
    while let Poll::Ready(Some(event)) = Pin::new(&mut stream).poll_next(&mut cx) {
        events.push(event);
    }
    events
}

#[test]
fn accumulator_joins_text_and_tool_call_fragments() {
    let events = vec![
        StreamEvent::Start {
            id: Some("chatcmpl-1".into()),
            model: Some("gpt-4o-mini".into()),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            id: Some("call_1".into()),
            name: Some("get_capital".into()),
            arguments: "{\"".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            id: None,
            name: None,
            arguments: "country\":\"UK\"}".into(),
        },
        StreamEvent::TextDelta("Par".into()),
        StreamEvent::TextDelta("is".into()),
        StreamEvent::Finish(FinishReason::ToolCalls),
        StreamEvent::Usage(Usage::new(12, 7)),
    ];
    let mut acc = StreamAccumulator::new();
    for event in poll_all(EventStream::from_events(events)) {
        acc.push(&event).unwrap();
    }
    assert_eq!(acc.id(), Some("chatcmpl-1"));
    assert_eq!(acc.model(), Some("gpt-4o-mini"));
    assert_eq!(acc.content_events(), 4);
    let (message, reason, usage) = acc.finish().unwrap();
    assert_eq!(message.text, "Paris");
    assert_eq!(
        message.tool_calls,
        [ToolCall {
            id: "call_1".into(),
            name: "get_capital".into(),
            arguments: "{\"country\":\"UK\"}".into()
        }]
    );
    assert_eq!(reason, FinishReason::ToolCalls);
    assert_eq!(usage, Some(Usage::new(12, 7)));
}

#[test]
fn a_stream_without_its_end_of_message_is_truncated_never_complete() {
    let mut acc = StreamAccumulator::new();
    acc.push(&StreamEvent::TextDelta("The capital of".into()))
        .unwrap();
    assert!(!acc.is_complete());
    let error = acc.finish().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StreamTruncated);

    let mut acc = StreamAccumulator::new();
    let cut = LlmError::new(ErrorKind::Server, "error frame");
    assert_eq!(acc.push(&StreamEvent::Error(cut.clone())), Err(cut));
}

#[test]
fn usage_sums_over_attempts() {
    let a = Usage::new(10, 5).with_cached_input(3);
    let b = Usage::new(7, 4).with_reasoning(2);
    let sum = a.plus(b);
    assert_eq!(sum.total(), 26);
    assert_eq!((sum.cached_input_tokens, sum.reasoning_tokens), (3, 2));
}

/// A clock the test sets by hand: the one way to read a time a deadline takes.
struct SetClock(std::cell::Cell<Instant>);

impl Clock for SetClock {
    fn instant(&self) -> Instant {
        self.0.get()
    }
}

#[test]
fn deadline_counts_down_on_the_clock_it_was_built_with() {
    let start = Instant::now();
    let clock = SetClock(std::cell::Cell::new(start));
    let deadline = Deadline::after(clock.now(), Duration::from_secs(10));
    assert_eq!(deadline.remaining(clock.now()), Duration::from_secs(10));
    clock.0.set(start + Duration::from_secs(7));
    assert_eq!(deadline.remaining(clock.now()), Duration::from_secs(3));
    assert!(deadline.fits(clock.now(), Duration::from_secs(2)));
    assert!(!deadline.fits(clock.now(), Duration::from_secs(3)));
    clock.0.set(start + Duration::from_secs(10));
    assert!(deadline.is_expired(clock.now()));
    clock.0.set(start + Duration::from_secs(11));
    assert_eq!(deadline.remaining(clock.now()), Duration::ZERO);
    let sooner = Deadline::after(
        SetClock(std::cell::Cell::new(start)).now(),
        Duration::from_secs(5),
    );
    assert_eq!(deadline.min(sooner), sooner);
}

#[test]
fn clones_of_a_request_share_one_trail() {
    let mut request = valid();
    request.context.trail();
    let clone = request.clone();
    clone.context.trail.as_ref().unwrap().record(
        AttemptRecord::new("openai/gpt-4o".into(), "gpt-4o", AttemptOutcome::Succeeded).timed(
            Duration::ZERO,
            Duration::from_millis(5),
            None,
        ),
    );
    let trail = request.context.trail.as_ref().unwrap().snapshot();
    assert_eq!(trail.attempts.len(), 1);
    assert_eq!(trail.sent_attempts(), 1);
    let clock = SetClock(std::cell::Cell::new(Instant::now()));
    assert_eq!(RequestContext::default().remaining(clock.now()), None);
}

#[test]
fn quota_snapshot_reports_the_longest_exhausted_window() {
    let window = |remaining, reset| {
        QuotaWindow::new(Some(100), Some(remaining), Some(Duration::from_secs(reset)))
    };
    let snapshot = QuotaSnapshot::default()
        .with_requests(window(0, 2))
        .with_tokens(window(0, 9))
        .with_input_tokens(window(50, 30));
    assert_eq!(snapshot.exhausted_until(), Some(Duration::from_secs(9)));
    assert_eq!(QuotaSnapshot::default().exhausted_until(), None);
    assert!(QuotaSnapshot::default().is_empty());
}

#[test]
fn error_display_names_kind_provider_status_and_request_id() {
    let error = LlmError::new(ErrorKind::Overloaded, "Overloaded")
        .with_status(529)
        .with_provider(ProviderKind::Anthropic)
        .with_request_id("req_011");
    assert_eq!(
        error.to_string(),
        "overloaded from anthropic (529): Overloaded [request id req_011]"
    );
}

#[test]
fn streamed_responses_debug_without_their_stream() {
    let response =
        ChatResponse::streaming(ProviderKind::OpenAi, "gpt-4o", EventStream::from_events([]));
    assert!(response.is_streaming());
    assert!(format!("{response:?}").contains("streaming: true"));
}
