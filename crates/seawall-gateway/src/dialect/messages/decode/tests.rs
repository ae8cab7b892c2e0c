use serde_json::json;

use seawall_core::{ImageSource, ToolCall};

use super::*;

fn ok(body: Value) -> ChatRequest {
    let inbound = decode_request(body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{body} was refused: {e:?}"));
    assert!(inbound.include_usage);
    inbound.request
}

/// The refusal of `body`: its param and message.
fn refused(body: Value) -> (String, String) {
    let bad = decode_request(body.to_string().as_bytes()).expect_err("refused");
    let param = bad.param.unwrap_or_default();
    assert!(
        bad.message.starts_with(&param),
        "the message names the param: {}",
        bad.message
    );
    (param, bad.message)
}

fn base() -> Value {
    json!({"model": "claude-x", "max_tokens": 64,
           "messages": [{"role": "user", "content": "hi"}]})
}

fn with(field: &str, value: Value) -> Value {
    let mut body = base();
    body[field] = value;
    body
}

#[test]
fn a_plain_request() {
    let request = ok(
        json!({"model": "claude-x", "max_tokens": 64, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": [{"type": "text", "text": "again"}]}],
        "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"], "stream": true,
        "metadata": {"user_id": "u-1"}}),
    );
    assert_eq!(&*request.model, "claude-x");
    assert_eq!(request.max_output_tokens, Some(64));
    assert_eq!(
        *request.messages,
        [
            Message::system("Be brief."),
            Message::user("hi"),
            Message::assistant("Hello"),
            Message::user("again"),
        ]
    );
    assert_eq!(request.temperature, Some(0.5));
    assert_eq!(request.top_p, Some(0.9));
    assert_eq!(*request.stop, ["END".to_owned()]);
    assert!(request.stream);
    assert_eq!(request.user.as_deref(), Some("u-1"));
    assert!(request.extra.is_empty());
}

#[test]
fn system_blocks_keep_their_cache_marks() {
    let request = ok(with(
        "system",
        json!([{"type": "text", "text": "A"},
               {"type": "text", "text": "B", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]),
    ));
    let system = &request.messages[0];
    assert_eq!(system.role, Role::System);
    assert_eq!(system.joined_text(), "AB");
    assert_eq!(
        system.content[1].cache_control(),
        Some(&CacheControl {
            kind: "ephemeral".into(),
            ttl: Some("1h".into())
        })
    );
    // An empty system prompt is no message at all.
    assert_eq!(ok(with("system", json!(""))).messages.len(), 1);
}

#[test]
fn images_from_base64_and_urls() {
    let request = ok(with(
        "messages",
        json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            {"type": "text", "text": "what is this?"}]}]),
    ));
    let content = &request.messages[0].content;
    assert!(
        matches!(&content[0], ContentPart::Image { source: ImageSource::Base64 { media_type, data }, .. }
        if media_type == "image/png" && data == "iVBO")
    );
    assert!(
        matches!(&content[1], ContentPart::Image { source: ImageSource::Url { url }, .. }
        if url == "https://example.com/a.jpg")
    );
    assert_eq!(request.messages[0].joined_text(), "what is this?");
}

#[test]
fn a_tool_round_trip() {
    let request = ok(json!({"model": "claude-x", "max_tokens": 64,
        "tools": [{"name": "weather", "description": "Weather by city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "two calls", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                 "content": [{"type": "text", "text": "no data"}], "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Summarise."}]}]}));
    let tool = &request.tools[0];
    assert_eq!(tool.name, "weather");
    assert_eq!(tool.description.as_deref(), Some("Weather by city"));
    assert_eq!(tool.parameters["properties"]["city"]["type"], "string");
    assert_eq!(tool.cache_control, Some(CacheControl::ephemeral()));
    assert_eq!(
        request.tool_choice,
        Some(ToolChoice::Tool("weather".into()))
    );

    let m = &request.messages;
    assert_eq!(m.len(), 5);
    // The thinking block is dropped; text and calls stay.
    assert_eq!(m[1].role, Role::Assistant);
    assert_eq!(m[1].joined_text(), "Checking.");
    assert_eq!(
        m[1].tool_calls,
        [
            ToolCall {
                id: "toolu_1".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            },
            ToolCall {
                id: "toolu_2".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Rome"}"#.into()
            },
        ]
    );
    assert_eq!(m[2], Message::tool_result("toolu_1", "18C"));
    assert_eq!(
        m[3],
        Message::tool_result("toolu_2", "no data").with_cache_control(CacheControl::ephemeral())
    );
    assert_eq!(m[4], Message::user("Summarise."));
}

#[test]
fn tool_choices() {
    let tools = json!([{"name": "t", "input_schema": {"type": "object"}}]);
    for (choice, expected) in [
        (json!({"type": "auto"}), ToolChoice::Auto),
        (json!({"type": "any"}), ToolChoice::Required),
        (json!({"type": "none"}), ToolChoice::None),
        (
            json!({"type": "tool", "name": "t"}),
            ToolChoice::Tool("t".into()),
        ),
    ] {
        let mut body = with("tools", tools.clone());
        body["tool_choice"] = choice;
        assert_eq!(ok(body).tool_choice, Some(expected));
    }
}

#[test]
fn empty_tool_results_and_prefills() {
    let request = ok(json!({"model": "m", "max_tokens": 8, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        {"role": "assistant", "content": ""}]}));
    // The empty final assistant turn (an empty prefill) is nothing to continue.
    assert_eq!(request.messages.len(), 3);
    assert_eq!(request.messages[2], Message::tool_result("t1", ""));
    assert_eq!(request.messages[1].tool_calls[0].arguments, "{}");

    let prefill = ok(json!({"model": "m", "max_tokens": 8, "messages": [
        {"role": "user", "content": "go"}, {"role": "assistant", "content": "The answer is"}]}));
    assert_eq!(prefill.messages[1], Message::assistant("The answer is"));
}

#[test]
fn unmodelled_fields_pass_through_once() {
    let mut body = base();
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    body["top_k"] = json!(5);
    body["service_tier"] = json!("auto");
    body["container"] = Value::Null;
    let request = ok(body);
    let mut names: Vec<&str> = request.extra.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["service_tier", "thinking", "top_k"]);
    assert_eq!(request.extra["top_k"], 5);
    assert!(
        MODELLED
            .iter()
            .all(|name| !request.extra.contains_key(*name))
    );
}

#[test]
fn count_requests_need_no_max_tokens() {
    let mut body = base();
    body.as_object_mut().unwrap().remove("max_tokens");
    body["stream"] = json!(true);
    let request = decode_count_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(request.max_output_tokens, None);
    assert!(!request.stream);
    assert_eq!(
        refused(body),
        ("max_tokens".into(), "max_tokens: Field required".into())
    );
}

#[test]
fn validation_errors_name_the_parameter() {
    let cases = [
        (json!({"max_tokens": 1, "messages": []}), "model"),
        (with("model", json!(3)), "model"),
        (with("max_tokens", json!("10")), "max_tokens"),
        (with("max_tokens", json!(-1)), "max_tokens"),
        (with("max_tokens", json!(1.5)), "max_tokens"),
        (with("max_tokens", json!(0)), "max_tokens"),
        (with("max_tokens", json!(u64::MAX)), "max_tokens"),
        (with("messages", json!([])), "messages"),
        (with("messages", json!({"role": "user"})), "messages"),
        (with("messages", json!(["hi"])), "messages.0"),
        (
            with("messages", json!([{"content": "hi"}])),
            "messages.0.role",
        ),
        (
            with("messages", json!([{"role": "tool", "content": "hi"}])),
            "messages.0.role",
        ),
        (
            with("messages", json!([{"role": 7, "content": "hi"}])),
            "messages.0.role",
        ),
        (
            with("messages", json!([{"role": "user"}])),
            "messages.0.content",
        ),
        (
            with("messages", json!([{"role": "user", "content": 5}])),
            "messages.0.content",
        ),
        (
            with("messages", json!([{"role": "user", "content": ""}])),
            "messages.0",
        ),
        (
            with("messages", json!([{"role": "user", "content": []}])),
            "messages.0",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "text", "text": ""}]}]),
            ),
            "messages.0.content.0.text",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"text": "x"}]}]),
            ),
            "messages.0.content.0",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "video"}]}]),
            ),
            "messages.0.content.0.type",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]),
            ),
            "messages.0.content.0.type",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image",
            "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]}]),
            ),
            "messages.0.content.0.source.media_type",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image",
            "source": {"type": "url", "url": "data:image/png;base64,xx"}}]}]),
            ),
            "messages.0.content.0.source.url",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image",
            "source": {"type": "file", "file_id": "f"}}]}]),
            ),
            "messages.0.content.0.source.type",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "tool_use",
            "id": "t", "name": "f", "input": {}}]}]),
            ),
            "messages.0.content.0.type",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": "x"}, {"role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}]),
            ),
            "messages.1.content.0.input",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": "x"}, {"role": "assistant",
            "content": [{"type": "image", "source": {"type": "url", "url": "https://a"}}]}]),
            ),
            "messages.1.content.0.type",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": "x"},
            {"role": "assistant", "content": "ends in a space "}]),
            ),
            "messages.1",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": "no result"}]),
            ),
            "messages.1",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "ghost", "content": "x"}]}]),
            ),
            "messages.0.content.0",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": "yes"}]}]),
            ),
            "messages.2.content.0.is_error",
        ),
        (with("system", json!(5)), "system"),
        (with("system", json!([{"type": "image"}])), "system.0.type"),
        (with("temperature", json!(1.5)), "temperature"),
        (with("temperature", json!("hot")), "temperature"),
        (with("top_p", json!(-0.1)), "top_p"),
        (with("top_k", json!(-3)), "top_k"),
        (with("stop_sequences", json!("END")), "stop_sequences"),
        (with("stop_sequences", json!(["  "])), "stop_sequences.0"),
        (with("stop_sequences", json!([1])), "stop_sequences.0"),
        (with("stream", json!("yes")), "stream"),
        (with("metadata", json!("u")), "metadata"),
        (with("metadata", json!({"user_id": 1})), "metadata.user_id"),
        (
            with("metadata", json!({"session": "s"})),
            "metadata.session",
        ),
        (with("tools", json!({})), "tools"),
        (
            with("tools", json!([{"name": "bad name", "input_schema": {}}])),
            "tools.0.name",
        ),
        (
            with("tools", json!([{"name": "t"}])),
            "tools.0.input_schema",
        ),
        (
            with("tools", json!([{"name": "t", "input_schema": []}])),
            "tools.0.input_schema",
        ),
        (
            with(
                "tools",
                json!([{"type": "web_search_20250305", "name": "web_search"}]),
            ),
            "tools.0.type",
        ),
        (
            with(
                "tools",
                json!([{"name": "t", "input_schema": {}}, {"name": "t", "input_schema": {}}]),
            ),
            "tools",
        ),
        (with("tool_choice", json!("auto")), "tool_choice"),
        (
            with("tool_choice", json!({"type": "sometimes"})),
            "tool_choice.type",
        ),
        (
            with("tool_choice", json!({"type": "tool"})),
            "tool_choice.name",
        ),
        (
            with("tool_choice", json!({"type": "tool", "name": "missing"})),
            "tool_choice",
        ),
        (
            with(
                "tool_choice",
                json!({"type": "any", "disable_parallel_tool_use": 1}),
            ),
            "tool_choice.disable_parallel_tool_use",
        ),
    ];
    for (body, param) in cases {
        assert_eq!(refused(body.clone()).0, param, "{body}");
    }
}

#[test]
fn refusals_read_like_the_api() {
    let mut body = base();
    body.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(refused(body).1, "max_tokens: Field required");
    let (_, message) = refused(with(
        "messages",
        json!([{"role": "system", "content": "be nice"}]),
    ));
    assert_eq!(
        message,
        "messages.0.role: Unexpected role \"system\". The Messages API accepts a top-level \
         `system` parameter, not \"system\" as an input message role."
    );
    let (_, message) = refused(with(
        "messages",
        json!([{"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}]},
            {"role": "assistant", "content": "more"},
            {"role": "user", "content": "no result"}]),
    ));
    assert!(message.starts_with("messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_9."), "{message}");
}

#[test]
fn consecutive_turns_of_one_role_are_one_turn() {
    // A tool result answering a call two assistant messages back is fine: the API combines
    // consecutive messages of one role.
    let request = ok(with(
        "messages",
        json!([{"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "assistant", "content": "and"},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}]),
    ));
    assert_eq!(request.messages.len(), 5);
}

#[test]
fn hostile_bodies_are_refused_without_panicking() {
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    for body in [
        &b""[..],
        b"null",
        b"[]",
        b"\"text\"",
        b"{",
        b"\xff\xfe",
        b"{\"model\":\"m\",\"max_tokens\":1e400,\"messages\":[]}",
        b"{\"model\":\"m\",\"max_tokens\":18446744073709551616,\"messages\":[]}",
        deep.as_bytes(),
    ] {
        let bad = decode_request(body).expect_err("refused");
        assert!(!bad.message.is_empty());
    }
}

#[test]
fn blocks_nested_past_the_recursion_limit_are_refused() {
    // Each level is read by the typed block reader, not skipped: the JSON depth limit holds.
    let mut content = String::from("\"r\"");
    for _ in 0..10_000 {
        content = format!(r#"[{{"type":"tool_result","tool_use_id":"t","content":{content}}}]"#);
    }
    let body = format!(
        r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":{content}}}]}}"#
    );
    let bad = decode_request(body.as_bytes()).expect_err("refused");
    assert_eq!(bad.param, None);
    assert!(bad.message.contains("recursion limit exceeded"), "{bad:?}");
    // An unknown field is read through with the same limit, as a JSON value would be.
    let deep = "[".repeat(200) + &"]".repeat(200);
    let body = format!(
        r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":[{{"type":"text","text":"hi","citations":{deep}}}]}}]}}"#
    );
    let bad = decode_request(body.as_bytes()).expect_err("refused");
    assert!(bad.message.contains("recursion limit exceeded"), "{bad:?}");
}

#[test]
fn fields_read_in_any_order_and_the_last_of_a_repeated_key_holds() {
    let request = ok(
        json!({"messages": [{"content": [{"text": "hi", "type": "text"}], "role": "user"}],
        "max_tokens": 8, "model": "m"}),
    );
    assert_eq!(request.messages[0], Message::user("hi"));
    let body = br#"{"model":5,"model":"m","max_tokens":8,"top_k":1,"top_k":null,
        "messages":[{"role":5,"role":"user","content":[{"type":"image","text":"hi","type":"text"}]}]}"#;
    let request = decode_request(body).unwrap().request;
    assert_eq!(&*request.model, "m");
    assert_eq!(request.messages[0], Message::user("hi"));
    assert!(
        request.extra.is_empty(),
        "a null top_k is not passed through"
    );
}
