use serde_json::{Value, json};

use seawall_core::StreamEvent;
use seawall_providers::StreamDecoder;
use seawall_providers::anthropic::AnthropicStreamDecoder;
use seawall_providers::sse::SseDecoder;

use super::*;

/// The frames of a written stream as (event name, data), checking the framing: every frame
/// is `event: <name>\ndata: <json>\n\n` and the data's `type` is the event's name.
fn frames(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).expect("UTF-8");
    assert!(text.ends_with("\n\n"), "{text}");
    text.strip_suffix("\n\n")
        .unwrap()
        .split("\n\n")
        .map(|frame| {
            let (event, data) = frame
                .strip_prefix("event: ")
                .and_then(|rest| rest.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not an Anthropic frame: {frame:?}"));
            let data: Value = serde_json::from_str(data).expect("JSON data");
            assert_eq!(data["type"], event, "{frame}");
            (event.to_owned(), data)
        })
        .collect()
}

fn names(frames: &[(String, Value)]) -> Vec<&str> {
    frames.iter().map(|(name, _)| name.as_str()).collect()
}

/// The recorded events of a stream: `*.chunks.txt` (one data payload a line) or the SSE in
/// a cassette's literal blocks (`data:` lines); the `n`th stream of the file.
fn recorded(text: &str, n: usize) -> Vec<Value> {
    let mut streams: Vec<Vec<Value>> = vec![Vec::new()];
    for line in text.lines().map(str::trim) {
        let json = line.strip_prefix("data: ").unwrap_or(line);
        if !json.starts_with('{') {
            continue;
        }
        let value: Value = serde_json::from_str(json).expect("recorded JSON");
        let stop = value["type"] == "message_stop";
        streams.last_mut().unwrap().push(value);
        if stop {
            streams.push(Vec::new());
        }
    }
    streams.swap_remove(n)
}

/// The key paths of every object in `value`.
fn shape(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, inner) in fields {
                let at = format!("{path}.{name}");
                out.push(at.clone());
                shape(inner, &at, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn keys(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    shape(value, "", &mut out);
    out.sort();
    out.dedup();
    out
}

/// Keys of real streams the gateway cannot know (the provider's tier, region and cache
/// breakdown) or that only some recordings carry.
const UNKNOWABLE: &[&str] = &[
    ".message.usage.cache_creation",
    ".message.usage.cache_creation.ephemeral_1h_input_tokens",
    ".message.usage.cache_creation.ephemeral_5m_input_tokens",
    ".message.usage.service_tier",
    ".message.usage.inference_geo",
    ".message.stop_details",
    ".delta.stop_details",
];

/// Keys the gateway writes beyond a recording: the cumulative input counts the API sends in
/// `message_delta` too (not in every recording), and the cost.
const ADDED: &[&str] = &[
    ".usage.input_tokens",
    ".usage.cache_creation_input_tokens",
    ".usage.cache_read_input_tokens",
    ".seawall",
    ".seawall.cost_usd",
];

/// Replays a recorded stream's content through a writer, then checks that the event
/// sequence is the recording's and every event has the recorded keys.
fn replay_matches(recording: &[Value], usage: &Usage, finish: &FinishReason) {
    let start = &recording[0]["message"];
    let mut writer = StreamWriter::new(
        start["id"].as_str().unwrap().into(),
        start["model"].as_str().unwrap().into(),
        0,
    );
    let mut out = Vec::new();
    writer.start(&mut out);
    let mut calls = 0;
    for event in recording {
        let delta = &event["delta"];
        match (event["type"].as_str(), delta["type"].as_str()) {
            (Some("content_block_start"), _) if event["content_block"]["type"] == "tool_use" => {
                let block = &event["content_block"];
                writer.tool_call(
                    &mut out,
                    calls,
                    block["id"].as_str(),
                    block["name"].as_str(),
                    "",
                );
                calls += 1;
            }
            (_, Some("text_delta")) => writer.text(&mut out, delta["text"].as_str().unwrap()),
            (_, Some("input_json_delta")) => writer.tool_call(
                &mut out,
                calls - 1,
                None,
                None,
                delta["partial_json"].as_str().unwrap(),
            ),
            _ => {}
        }
    }
    writer.finish(&mut out, finish);
    writer.end(&mut out, Some(usage), None);
    let ours = frames(&out);
    // The recorded `input_json_delta` with an empty fragment carries nothing.
    let expected: Vec<&Value> = recording
        .iter()
        .filter(|e| e["delta"]["partial_json"] != "")
        .collect();
    assert_eq!(
        names(&ours),
        expected
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>()
    );
    for ((_, data), real) in ours.iter().zip(&expected) {
        let (ours, recorded) = (keys(data), keys(real));
        let missing: Vec<_> = recorded
            .iter()
            .filter(|k| !ours.contains(k) && !UNKNOWABLE.contains(&k.as_str()))
            .collect();
        let invented: Vec<_> = ours
            .iter()
            .filter(|k| !recorded.contains(k) && !ADDED.contains(&k.as_str()))
            .collect();
        assert!(
            missing.is_empty() && invented.is_empty(),
            "{data}: missing {missing:?}, invented {invented:?}"
        );
        // Same values where the content decides them.
        for pointer in [
            "/index",
            "/delta/text",
            "/delta/partial_json",
            "/delta/stop_reason",
            "/content_block/id",
            "/content_block/name",
            "/usage/output_tokens",
        ] {
            assert_eq!(
                data.pointer(pointer),
                real.pointer(pointer),
                "{pointer} of {data}"
            );
        }
    }
}

#[test]
fn a_recorded_text_stream_is_written_alike() {
    let recording = recorded(
        include_str!("../testdata/messages/vercel-ai__anthropic-text.chunks.txt"),
        0,
    );
    replay_matches(&recording, &Usage::new(12, 30), &FinishReason::Stop);
}

#[test]
fn a_recorded_tool_use_stream_and_its_follow_up_are_written_alike() {
    let cassette = include_str!(
        "../testdata/messages/pydantic-ai__test_anthropic_text_editor_toolset_stream.yaml"
    );
    replay_matches(
        &recorded(cassette, 0),
        &Usage::new(1270, 82),
        &FinishReason::ToolCalls,
    );
    // The second answer has no ping in the recording; the writer always sends one.
    let mut follow_up = recorded(cassette, 1);
    follow_up.insert(2, json!({"type": "ping"}));
    replay_matches(&follow_up, &Usage::new(1391, 49), &FinishReason::Stop);
}

fn writer() -> StreamWriter {
    StreamWriter::new("msg_1".into(), "claude-x".into(), 7)
}

#[test]
fn text_then_tools_open_a_block_each() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.start(&mut out); // once only
    w.text(&mut out, "Let me ");
    w.text(&mut out, "");
    w.text(&mut out, "check.");
    w.tool_call(&mut out, 0, Some("call_a"), Some("weather"), "{\"city\":");
    w.tool_call(&mut out, 0, None, None, "\"Paris\"}");
    w.tool_call(&mut out, 1, Some("call_b"), Some("time"), "");
    w.tool_call(&mut out, 1, None, None, "{}");
    w.finish(&mut out, &FinishReason::ToolCalls);
    w.end(
        &mut out,
        Some(&Usage::new(40, 9).with_cached_input(10)),
        Some(Cost::from_usd(0.5)),
    );
    w.text(&mut out, "after the end"); // ignored
    let frames = frames(&out);
    assert_eq!(
        names(&frames),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let data: Vec<&Value> = frames.iter().map(|(_, data)| data).collect();
    assert_eq!(
        *data[0],
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": 0}}})
    );
    assert_eq!(
        *data[1],
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(
        *data[4],
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}})
    );
    assert_eq!(
        *data[6],
        json!({"type": "content_block_start", "index": 1, "content_block":
            {"type": "tool_use", "id": "call_a", "name": "weather", "input": {}}})
    );
    assert_eq!(
        *data[8],
        json!({"type": "content_block_delta", "index": 1, "delta":
            {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})
    );
    assert_eq!(data[10]["content_block"]["id"], "call_b");
    assert_eq!(data[11]["index"], 2);
    assert_eq!(*data[12], json!({"type": "content_block_stop", "index": 2}));
    assert_eq!(
        *data[13],
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 30, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 10, "output_tokens": 9},
            "seawall": {"cost_usd": 0.5}})
    );
    assert_eq!(*data[14], json!({"type": "message_stop"}));
    // The ping is written as the API writes it.
    assert!(out.windows(PING.len()).any(|w| w == PING));
}

#[test]
fn unknown_usage_and_a_missing_finish() {
    let mut w = writer();
    let mut out = Vec::new();
    w.text(&mut out, "hi"); // starts the message itself
    w.end(&mut out, None, None);
    let frames = frames(&out);
    assert_eq!(frames[0].0, "message_start");
    let delta = &frames[frames.len() - 2].1;
    assert_eq!(
        *delta,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 0}, "seawall": {"cost_usd": null}})
    );
}

#[test]
fn a_call_without_an_id_gets_one_and_late_fragments_find_their_block() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.tool_call(&mut out, 0, None, Some("f"), "{\"a\":");
    w.tool_call(&mut out, 1, Some("call_2"), Some("g"), "{}");
    w.tool_call(&mut out, 0, None, None, "1}");
    // A plain stop after calls is still a tool-use turn.
    w.finish(&mut out, &FinishReason::Stop);
    w.end(&mut out, None, None);
    let frames = frames(&out);
    assert_eq!(frames[1].1["content_block"]["id"], "toolu_msg_1_0");
    let late = frames
        .iter()
        .find(|(_, d)| d["delta"]["partial_json"] == "1}")
        .unwrap();
    assert_eq!(late.1["index"], 0);
    assert_eq!(
        frames[frames.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );
}

#[test]
fn an_error_ends_the_stream() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.text(&mut out, "partial");
    let before = out.len();
    w.error(&mut out, "upstream overloaded", ErrorKind::Overloaded);
    assert_eq!(
        std::str::from_utf8(&out[before..]).unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"upstream overloaded\"}}\n\n"
    );
    let len = out.len();
    w.error(&mut out, "again", ErrorKind::Server);
    w.text(&mut out, "more");
    w.end(&mut out, None, None);
    assert_eq!(out.len(), len, "nothing follows the error");

    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.error(&mut out, "cut", ErrorKind::StreamTruncated);
    assert_eq!(frames(&out)[1].1["error"]["type"], "api_error");
}

#[test]
fn a_recovery_names_the_new_model_only_where_anthropic_names_models() {
    let mut w = writer();
    w.set_model("gpt-4o".into());
    let mut out = Vec::new();
    w.start(&mut out);
    assert_eq!(frames(&out)[0].1["message"]["model"], "gpt-4o");
    // After `message_start` the model shows nowhere: the frames stay the same.
    let mut a = writer();
    let mut b = writer();
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    a.start(&mut out_a);
    b.start(&mut out_b);
    b.set_model("gpt-4o".into());
    for (w, out) in [(&mut a, &mut out_a), (&mut b, &mut out_b)] {
        w.text(out, "x");
        w.end(out, Some(&Usage::new(1, 1)), None);
    }
    assert_eq!(out_a, out_b);
}

/// What the writer writes, read by the gateway's own Anthropic adapter: the same events.
#[test]
fn the_anthropic_adapter_reads_it_back() {
    let mut w = writer();
    let mut out = Vec::new();
    w.start(&mut out);
    w.text(&mut out, "caf\u{e9} \"quoted\"\n");
    w.tool_call(&mut out, 0, Some("toolu_1"), Some("f"), "{\"x\":");
    w.tool_call(&mut out, 0, None, None, "1}");
    w.finish(&mut out, &FinishReason::ToolCalls);
    let usage = Usage::new(50, 7).with_cached_input(5).with_cache_writes(3);
    w.end(&mut out, Some(&usage), None);

    let mut sse = SseDecoder::new();
    let mut raw = Vec::new();
    sse.feed(&out, &mut raw);
    let mut decoder = AnthropicStreamDecoder::default();
    let mut events = Vec::new();
    for event in &raw {
        decoder.decode(event, &mut events).unwrap();
    }
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "caf\u{e9} \"quoted\"\n");
    let arguments: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta { arguments, .. } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(arguments, "{\"x\":1}");
    assert!(events.iter().any(|e| matches!(e, StreamEvent::ToolCallDelta { id: Some(id), name: Some(name), .. } if id == "toolu_1" && name == "f")));
    let last_usage = events.iter().rev().find_map(|e| match e {
        StreamEvent::Usage(u) => Some(*u),
        _ => None,
    });
    assert_eq!(last_usage, Some(usage));
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Finish(FinishReason::ToolCalls))
    ));
}
