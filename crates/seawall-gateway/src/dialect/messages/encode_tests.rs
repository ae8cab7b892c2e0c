use http::HeaderMap;
use serde_json::json;

use seawall_core::{AssistantMessage, ErrorKind, FinishReason, ProviderKind, Usage};
use seawall_providers::{AnthropicConfig, AnthropicDialect, Dialect};

use super::*;

fn body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

fn response(message: AssistantMessage, finish: FinishReason) -> ChatResponse {
    ChatResponse::new(ProviderKind::OpenAi, "ignored", message, finish)
}

#[test]
fn a_text_answer_has_the_recorded_shape() {
    let recorded = body(include_bytes!(
        "../testdata/messages/tidyllm__messages-e050b5-POST.body.json"
    ));
    let text = recorded["content"][0]["text"].as_str().unwrap();
    let answer =
        response(AssistantMessage::text(text), FinishReason::Stop).with_usage(Usage::new(16, 35));
    let ours = body(&encode_response(
        &answer,
        "msg_01ATtd6A2FAsaFDNqzGKiy5c",
        "claude-3-5-sonnet-20240620",
        7,
    ));
    let mut expected = recorded.clone();
    // The recording predates the cache fields; ours also reports the cost.
    expected["usage"]["cache_creation_input_tokens"] = json!(0);
    expected["usage"]["cache_read_input_tokens"] = json!(0);
    expected["seawall"] = json!({"cost_usd": null});
    assert_eq!(ours, expected);
}

#[test]
fn tool_calls_become_tool_use_blocks() {
    let mut message = AssistantMessage::tool_calls([
        ToolCall {
            id: "toolu_1".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        },
        ToolCall {
            id: "toolu_2".into(),
            name: "now".into(),
            arguments: String::new(),
        },
        ToolCall {
            id: "toolu_3".into(),
            name: "broken".into(),
            arguments: "{\"a\":".into(),
        },
    ]);
    message.text = "Checking.".into();
    // Gemini ends a calling turn with a plain stop; SDK loops wait for `tool_use`.
    let mut answer = response(message, FinishReason::Stop);
    answer.usage = Some(
        Usage::new(100, 20)
            .with_cached_input(60)
            .with_cache_writes(30),
    );
    answer.cost = Some(Cost::from_usd(0.25));
    assert_eq!(
        body(&encode_response(&answer, "msg_1", "gpt-4o", 7)),
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "gpt-4o",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
                {"type": "tool_use", "id": "toolu_3", "name": "broken",
                 "input": {"_raw_arguments": "{\"a\":"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 30,
                      "cache_read_input_tokens": 60, "output_tokens": 20},
            "seawall": {"cost_usd": 0.25}})
    );
}

#[test]
fn stop_reasons_and_refusals() {
    for (finish, expected) in [
        (FinishReason::Stop, "end_turn"),
        (FinishReason::Length, "max_tokens"),
        (FinishReason::ContentFilter, "refusal"),
        (FinishReason::Other("pause_turn".into()), "pause_turn"),
        (FinishReason::Other("RECITATION".into()), "end_turn"),
    ] {
        let answer = response(AssistantMessage::text("x"), finish);
        assert_eq!(
            body(&encode_response(&answer, "m", "m", 0))["stop_reason"],
            expected
        );
    }
    let mut refusal = AssistantMessage::default();
    refusal.refusal = Some("I can't help with that.".into());
    let answer = response(refusal, FinishReason::ContentFilter);
    let ours = body(&encode_response(&answer, "m", "m", 0));
    assert_eq!(
        ours["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
    // Nothing said: no blocks, and usage (required by the SDKs' types) is zero.
    let empty = response(AssistantMessage::default(), FinishReason::Stop);
    let ours = body(&encode_response(&empty, "m", "m", 0));
    assert_eq!(ours["content"], json!([]));
    assert_eq!(ours["usage"]["output_tokens"], 0);
}

/// What the gateway writes, read back by the Anthropic adapter: the same answer.
#[test]
fn the_anthropic_adapter_reads_it_back() {
    let mut message = AssistantMessage::text("Hi");
    message.tool_calls.push(ToolCall {
        id: "toolu_1".into(),
        name: "f".into(),
        arguments: r#"{"x":1}"#.into(),
    });
    let answer = response(message.clone(), FinishReason::ToolCalls)
        .with_usage(Usage::new(50, 5).with_cached_input(20));
    let dialect = AnthropicDialect::new(AnthropicConfig::new("sk-test"));
    let read = dialect
        .decode_response(
            &HeaderMap::new(),
            &encode_response(&answer, "msg_9", "claude", 0),
        )
        .unwrap();
    assert_eq!(read.message, message);
    assert_eq!(read.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(read.usage, answer.usage);
    assert_eq!(read.id, "msg_9");
    assert_eq!(read.model, "claude");
}

#[test]
fn counts() {
    assert_eq!(
        body(&encode_count(u64::MAX)),
        json!({"input_tokens": u64::MAX})
    );
}

#[test]
fn error_bodies_are_typed_by_status() {
    for (status, expected) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (504, "timeout_error"),
    ] {
        let error = body(&error_body(status, "server_error", None, None, "m"));
        assert_eq!(
            error,
            json!({"type": "error", "error": {"type": expected, "message": "m"}}),
            "{status}"
        );
    }
    assert_eq!(
        body(&error_body(
            404,
            "invalid_request_error",
            Some("model_not_found"),
            Some("model"),
            "The model `x` does not exist"
        )),
        json!({"type": "error", "error": {"type": "not_found_error",
            "message": "model: The model `x` does not exist",
            "details": {"error_code": "model_not_found"}}})
    );
    // A message that already names its parameter is not prefixed twice.
    let error = body(&error_body(
        400,
        "invalid_request_error",
        None,
        Some("max_tokens"),
        "max_tokens: Field required",
    ));
    assert_eq!(error["error"]["message"], "max_tokens: Field required");
}

#[test]
fn every_failure_class_has_an_anthropic_type() {
    use super::super::error_type;
    assert_eq!(error_type(ErrorKind::Overloaded), "overloaded_error");
    assert_eq!(error_type(ErrorKind::RateLimited), "rate_limit_error");
    assert_eq!(error_type(ErrorKind::Server), "api_error");
    assert_eq!(error_type(ErrorKind::StreamTruncated), "api_error");
    assert_eq!(error_type(ErrorKind::Timeout), "timeout_error");
    assert_eq!(
        error_type(ErrorKind::ContextLengthExceeded),
        "invalid_request_error"
    );
}
