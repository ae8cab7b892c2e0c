//! The non-streamed `response` object.

use serde_json::{Value, json};

use seawall_core::{
    AssistantMessage, ChatResponse, Cost, FinishReason, ProviderKind, ToolCall, Usage,
};

use super::super::encode_response;

fn encode(response: &ChatResponse) -> Value {
    serde_json::from_slice(&encode_response(
        response,
        "resp_1",
        "gpt-4o-mini",
        1_700_000_000,
    ))
    .unwrap()
}

fn answer(message: AssistantMessage, finish: FinishReason) -> ChatResponse {
    ChatResponse::new(ProviderKind::Anthropic, "ignored", message, finish)
}

#[test]
fn a_text_answer() {
    let response = answer(
        AssistantMessage::text("Hi \u{1F44B} \"there\""),
        FinishReason::Stop,
    )
    .with_usage(Usage::new(10, 5).with_cached_input(4).with_reasoning(2));
    let body = encode(&response);
    assert_eq!(body["id"], "resp_1");
    assert_eq!(body["object"], "response");
    assert_eq!(body["created_at"], 1_700_000_000);
    assert_eq!(body["completed_at"], 1_700_000_000);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "gpt-4o-mini", "the model that answered");
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["incomplete_details"], Value::Null);
    assert_eq!(
        body["output"],
        json!([{"id": "msg_1_0", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                "text": "Hi \u{1F44B} \"there\""}]}])
    );
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
            "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15})
    );
    // What the SDK's `Response` requires, at least.
    for key in [
        "parallel_tool_calls",
        "tool_choice",
        "tools",
        "instructions",
        "metadata",
        "temperature",
        "top_p",
    ] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["seawall"], json!({"cost_usd": null}));
}

#[test]
fn tool_calls_follow_the_text_as_function_call_items() {
    let mut message = AssistantMessage::text("Let me look.");
    message.tool_calls = vec![
        ToolCall {
            id: "toolu_1".into(),
            name: "weather".into(),
            arguments: "{\"city\":\"Paris\"}".into(),
        },
        ToolCall {
            id: "toolu_2".into(),
            name: "weather".into(),
            arguments: "{\"city\":\"Rome\"}".into(),
        },
    ];
    let mut response = answer(message, FinishReason::ToolCalls);
    response.cost = Some(Cost::from_usd(0.25));
    let body = encode(&response);
    assert_eq!(body["status"], "completed");
    let output = body["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    assert_eq!(output[0]["content"][0]["text"], "Let me look.");
    assert_eq!(
        output[1],
        json!({"id": "fc_1_1", "type": "function_call", "status": "completed",
            "arguments": "{\"city\":\"Paris\"}", "call_id": "toolu_1", "name": "weather"})
    );
    assert_eq!(output[2]["call_id"], "toolu_2");
    assert_eq!(output[2]["id"], "fc_1_2");
    assert_eq!(body["usage"], Value::Null, "unknown usage");
    assert_eq!(body["seawall"], json!({"cost_usd": 0.25}));

    // Only calls: no empty message item.
    let only_calls = answer(
        AssistantMessage::tool_calls([ToolCall {
            id: "c".into(),
            name: "f".into(),
            arguments: "{}".into(),
        }]),
        FinishReason::ToolCalls,
    );
    let body = encode(&only_calls);
    assert_eq!(body["output"].as_array().unwrap().len(), 1);
    assert_eq!(body["output"][0]["type"], "function_call");
    assert_eq!(body["output"][0]["id"], "fc_1_0");
}

#[test]
fn a_cut_or_filtered_answer_is_incomplete_and_a_refusal_is_a_refusal_part() {
    for (finish, reason) in [
        (FinishReason::Length, "max_output_tokens"),
        (FinishReason::ContentFilter, "content_filter"),
    ] {
        let body = encode(&answer(AssistantMessage::text("partial"), finish));
        assert_eq!(body["status"], "incomplete");
        assert_eq!(body["incomplete_details"], json!({"reason": reason}));
        assert_eq!(body["output"][0]["status"], "incomplete");
    }
    let mut refused = AssistantMessage::default();
    refused.refusal = Some("I can't help with that.".into());
    let body = encode(&answer(refused, FinishReason::Stop));
    assert_eq!(
        body["output"][0]["content"],
        json!([{"type": "refusal", "refusal": "I can't help with that."}])
    );
    // An empty answer is still one message, with empty text.
    let body = encode(&answer(AssistantMessage::default(), FinishReason::Stop));
    assert_eq!(body["output"][0]["content"][0]["text"], "");
}
