//! The stream writer: text, tool calls, usage, the in-band error, a model switch.

use serde_json::{Value, json};

use seawall_core::{Cost, ErrorKind, FinishReason, Usage};

use super::super::StreamWriter;
use super::{types, written};

fn writer() -> StreamWriter {
    StreamWriter::new("resp_7".into(), "gpt-4o-mini".into(), 1_700_000_000)
}

#[test]
fn a_text_stream() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.text(&mut out, "Hel");
    w.text(&mut out, "");
    w.text(&mut out, "lo \"w\u{f6}rld\"\n");
    w.finish(&mut out, &FinishReason::Stop);
    w.end(
        &mut out,
        Some(&Usage::new(12, 4)),
        Some(Cost::from_usd(0.5)),
    );
    let events = written(&out);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0]["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    assert!(created.get("seawall").is_none());
    assert_eq!(
        events[2]["item"],
        json!({"id": "msg_7_0", "type": "message", "status": "in_progress", "content": [], "role": "assistant"})
    );
    assert_eq!(
        events[4],
        json!({"type": "response.output_text.delta", "content_index": 0, "delta": "Hel",
            "item_id": "msg_7_0", "logprobs": [], "output_index": 0, "sequence_number": 4})
    );
    let text = "Hello \"w\u{f6}rld\"\n";
    assert_eq!(events[6]["text"], text);
    assert_eq!(events[7]["part"]["text"], text);
    assert_eq!(events[8]["item"]["status"], "completed");
    assert_eq!(events[8]["item"]["content"][0]["text"], text);
    let done = &events[9]["response"];
    assert_eq!(done["id"], "resp_7");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], json!([events[8]["item"]]));
    assert_eq!(done["usage"]["input_tokens"], 12);
    assert_eq!(done["usage"]["output_tokens"], 4);
    assert_eq!(done["usage"]["total_tokens"], 16);
    assert_eq!(done["seawall"], json!({"cost_usd": 0.5}));
}

#[test]
fn tool_calls_each_get_an_item_closed_before_the_next() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.text(&mut out, "Checking.");
    w.tool_call(&mut out, 0, Some("call_a"), Some("weather"), "");
    w.tool_call(&mut out, 0, None, None, "{\"city\":");
    w.tool_call(&mut out, 0, None, None, "\"Paris\"}");
    w.tool_call(&mut out, 1, Some("call_b"), Some("time"), "{}");
    w.finish(&mut out, &FinishReason::ToolCalls);
    w.end(&mut out, None, None);
    let events = written(&out);
    assert_eq!(
        types(&events)[2..],
        [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[8]["item"],
        json!({"id": "fc_7_1", "type": "function_call", "status": "in_progress",
            "arguments": "", "call_id": "call_a", "name": "weather"})
    );
    assert_eq!(events[8]["output_index"], 1);
    assert_eq!(
        events[9],
        json!({"type": "response.function_call_arguments.delta", "delta": "{\"city\":",
            "item_id": "fc_7_1", "output_index": 1, "sequence_number": 9})
    );
    assert_eq!(events[11]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[12]["item"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[12]["item"]["status"], "completed");
    assert_eq!(events[13]["output_index"], 2);
    let output = events[17]["response"]["output"].as_array().unwrap();
    let calls: Vec<(&Value, &Value, &Value)> = output
        .iter()
        .map(|item| (&item["type"], &item["id"], &item["call_id"]))
        .collect();
    assert_eq!(
        calls,
        [
            (&json!("message"), &json!("msg_7_0"), &Value::Null),
            (&json!("function_call"), &json!("fc_7_1"), &json!("call_a")),
            (&json!("function_call"), &json!("fc_7_2"), &json!("call_b")),
        ]
    );
    assert_eq!(output[2]["arguments"], "{}");
    assert_eq!(events[17]["response"]["usage"], Value::Null);
    assert_eq!(events[17]["response"]["seawall"], json!({"cost_usd": null}));
}

#[test]
fn a_call_with_no_id_gets_one_and_late_fragments_still_reach_the_final_object() {
    let mut w = writer();
    let mut out = Vec::new();
    w.tool_call(&mut out, 3, None, None, "{\"a\":");
    w.tool_call(&mut out, 4, Some("call_x"), Some("g"), "{}");
    // A fragment for a call already closed (an upstream that interleaves calls).
    w.tool_call(&mut out, 3, None, Some("f"), "1}");
    w.finish(&mut out, &FinishReason::ToolCalls);
    w.end(&mut out, None, None);
    let events = written(&out);
    assert_eq!(
        types(&events)[..2],
        ["response.created", "response.in_progress"]
    );
    let output = &events.last().unwrap()["response"]["output"];
    assert_eq!(output[0]["call_id"], "call_7_0");
    assert_eq!(output[0]["name"], "f");
    assert_eq!(output[0]["arguments"], "{\"a\":1}");
    assert_eq!(output[1]["call_id"], "call_x");
}

#[test]
fn text_after_a_tool_call_opens_a_new_message() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.tool_call(&mut out, 0, Some("c"), Some("f"), "{}");
    w.text(&mut out, "done");
    w.finish(&mut out, &FinishReason::Stop);
    w.end(&mut out, None, None);
    let events = written(&out);
    let output = &events.last().unwrap()["response"]["output"];
    assert_eq!(output[0]["type"], "function_call");
    assert_eq!(output[1]["type"], "message");
    assert_eq!(output[1]["id"], "msg_7_1");
}

#[test]
fn a_cut_stream_ends_incomplete() {
    for (finish, reason) in [
        (FinishReason::Length, "max_output_tokens"),
        (FinishReason::ContentFilter, "content_filter"),
    ] {
        let mut w = writer();
        let mut out = Vec::new();
        w.start(&mut out);
        w.text(&mut out, "partial");
        w.finish(&mut out, &finish);
        w.end(&mut out, Some(&Usage::new(3, 16)), None);
        let events = written(&out);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": reason})
        );
        assert_eq!(last["response"]["completed_at"], 1_700_000_000);
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    }
}

#[test]
fn an_error_after_content_is_an_error_event_then_response_failed_and_nothing_more() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.text(&mut out, "par");
    w.error(&mut out, "upstream \"broke\"", ErrorKind::StreamTruncated);
    let end = out.len();
    w.text(&mut out, "more");
    w.end(&mut out, None, None);
    w.error(&mut out, "again", ErrorKind::Server);
    assert_eq!(out.len(), end, "nothing after the failure");
    let events = written(&out);
    assert_eq!(
        types(&events)[4..],
        ["response.output_text.delta", "error", "response.failed"]
    );
    assert_eq!(
        events[5],
        json!({"type": "error", "sequence_number": 5, "error": {"type": "server_error",
            "code": "stream_truncated", "message": "upstream \"broke\"", "param": null}})
    );
    let failed = &events[6]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "stream_truncated", "message": "upstream \"broke\""})
    );
    assert_eq!(failed["output"][0]["status"], "in_progress");
    assert_eq!(failed["output"][0]["content"][0]["text"], "par");
    assert_eq!(failed["completed_at"], Value::Null);

    for (kind, class, code) in [
        (
            ErrorKind::RateLimited,
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        (
            ErrorKind::QuotaExhausted,
            "insufficient_quota",
            "insufficient_quota",
        ),
        (
            ErrorKind::ContextLengthExceeded,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (ErrorKind::Timeout, "server_error", "timeout"),
    ] {
        let mut w = writer();
        let mut out = Vec::new();
        w.error(&mut out, "x", kind);
        let events = written(&out);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "error",
                "response.failed"
            ]
        );
        assert_eq!(events[2]["error"]["type"], class);
        assert_eq!(events[2]["error"]["code"], code);
        assert_eq!(events[3]["response"]["error"]["code"], code);
    }
}

#[test]
fn after_a_recovery_the_final_response_names_the_model_that_answered() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.text(&mut out, "Hello ");
    w.set_model("claude-3-5-haiku-latest".into());
    w.text(&mut out, "there");
    w.finish(&mut out, &FinishReason::Stop);
    w.end(&mut out, None, None);
    let events = written(&out);
    assert_eq!(events[0]["response"]["model"], "gpt-4o-mini");
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["model"], "claude-3-5-haiku-latest");
    assert_eq!(last["output"][0]["content"][0]["text"], "Hello there");
    assert_eq!(
        last["id"], events[0]["response"]["id"],
        "one response id throughout"
    );
}

#[test]
fn start_is_written_once() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.start(&mut out);
    w.end(&mut out, Some(&Usage::new(1, 0)), None);
    assert_eq!(
        types(&written(&out)),
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
}
