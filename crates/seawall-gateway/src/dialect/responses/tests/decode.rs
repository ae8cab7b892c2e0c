//! Request decoding: every content kind, every validation error, hostile input.

use serde_json::{Value, json};

use seawall_core::{ContentPart, ImageDetail, ImageSource, ResponseFormat, Role, ToolChoice};

use super::super::decode_request;
use crate::wire::{BadRequest, Inbound};

fn decode(body: &Value) -> Result<Inbound, BadRequest> {
    decode_request(&serde_json::to_vec(body).unwrap())
}

fn ok(body: Value) -> Inbound {
    decode(&body).unwrap_or_else(|e| panic!("{body}: {e:?}"))
}

/// The parameter and message of the error `body` gets.
fn err(body: Value) -> (Option<String>, String) {
    match decode(&body) {
        Ok(inbound) => panic!("{body} decoded: {:?}", inbound.request),
        Err(e) => (e.param, e.message),
    }
}

fn param(body: Value) -> String {
    err(body).0.unwrap_or_default()
}

#[test]
fn a_string_input_is_one_user_message_and_instructions_a_system_message() {
    let inbound = ok(json!({"model": "m", "input": "hi", "instructions": "be brief"}));
    let request = &inbound.request;
    assert_eq!(&*request.model, "m");
    assert_eq!(request.messages.len(), 2);
    assert_eq!(request.messages[0].role, Role::System);
    assert_eq!(request.messages[0].joined_text(), "be brief");
    assert_eq!(request.messages[1].role, Role::User);
    assert_eq!(request.messages[1].joined_text(), "hi");
    assert!(!request.stream);
    assert!(
        inbound.include_usage,
        "Responses streams always report usage"
    );
    assert!(request.extra.is_empty());
}

#[test]
fn message_items_with_every_content_part() {
    let inbound = ok(json!({"model": "m", "input": [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        ]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "a cat", "annotations": []}]},
        {"role": "system", "content": [{"type": "input_text", "text": "more rules"}]},
    ]}));
    let messages = &inbound.request.messages;
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::User, Role::Assistant, Role::System]
    );
    let user = &messages[1].content;
    assert_eq!(user.len(), 3);
    assert!(matches!(&user[0], ContentPart::Text { text, .. } if text == "what is this?"));
    assert!(matches!(&user[1], ContentPart::Image {
        source: ImageSource::Url { url }, detail: Some(ImageDetail::Low), ..
    } if url == "https://example.com/a.png"));
    let ContentPart::Image { source, detail, .. } = &user[2] else {
        panic!("{:?}", user[2]);
    };
    assert_eq!(source.inline(), Some(("image/png", "iVBORw0KGgo=")));
    assert_eq!(*detail, None);
    assert_eq!(messages[2].joined_text(), "a cat");
}

#[test]
fn function_calls_join_the_assistant_turn_and_outputs_become_tool_messages() {
    let inbound = ok(json!({"model": "m", "input": [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": ""},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": "{\"city\":\"Rome\"}", "id": "fc_2", "status": "completed"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
    ]}));
    let messages = &inbound.request.messages;
    assert_eq!(messages.len(), 4, "{messages:?}");
    let assistant = &messages[1];
    assert_eq!(assistant.role, Role::Assistant);
    assert!(assistant.content.is_empty(), "the empty text is dropped");
    let calls: Vec<(&str, &str)> = assistant
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("call_1", "{\"city\":\"Paris\"}"),
            ("call_2", "{\"city\":\"Rome\"}")
        ]
    );
    assert_eq!(messages[2].role, Role::Tool);
    assert_eq!(messages[2].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(messages[2].joined_text(), "sunny");
    assert_eq!(messages[3].tool_call_id.as_deref(), Some("call_2"));
    assert_eq!(messages[3].joined_text(), "rain");
}

#[test]
fn a_function_call_without_an_assistant_message_before_it_opens_one() {
    let inbound = ok(json!({"model": "m", "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "done"},
    ]}));
    let messages = &inbound.request.messages;
    assert_eq!(messages[1].role, Role::Assistant);
    assert_eq!(messages[1].tool_calls.len(), 1);
}

#[test]
fn options_tools_and_formats() {
    let inbound = ok(json!({
        "model": "m", "input": "hi", "stream": true, "max_output_tokens": 16,
        "temperature": 0.5, "top_p": 1, "user": "u-1",
        "tools": [
            {"type": "function", "name": "weather", "description": "Weather of a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true},
            {"type": "function", "name": "noop"},
        ],
        "tool_choice": {"type": "function", "name": "weather"},
        "text": {"format": {"type": "json_schema", "name": "answer", "strict": true,
                            "schema": {"type": "object"}}, "verbosity": "low"},
        "stream_options": {"include_obfuscation": false},
        "metadata": {"team": "a"}, "store": false, "previous_response_id": "resp_1",
        "reasoning": {"effort": "low"}, "parallel_tool_calls": false,
    }));
    let request = &inbound.request;
    assert!(request.stream);
    assert_eq!(request.max_output_tokens, Some(16));
    assert_eq!(request.temperature, Some(0.5));
    assert_eq!(request.top_p, Some(1.0));
    assert_eq!(request.user.as_deref(), Some("u-1"));
    assert_eq!(request.tools.len(), 2);
    assert_eq!(request.tools[0].name, "weather");
    assert_eq!(
        request.tools[0].description.as_deref(),
        Some("Weather of a city")
    );
    assert_eq!(
        request.tools[0].parameters["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(request.tools[1].description, None);
    assert_eq!(
        request.tools[1].parameters,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(
        request.tool_choice,
        Some(ToolChoice::Tool("weather".into()))
    );
    assert_eq!(
        request.response_format,
        ResponseFormat::JsonSchema {
            name: "answer".into(),
            schema: json!({"type": "object"}),
            strict: true
        }
    );
    // What is not modelled passes through, and nothing modelled does.
    let extra: Vec<&str> = request.extra.keys().map(String::as_str).collect();
    assert_eq!(
        extra,
        [
            "metadata",
            "parallel_tool_calls",
            "previous_response_id",
            "reasoning",
            "store"
        ]
    );
    assert_eq!(request.extra["previous_response_id"], "resp_1");

    for (choice, expected) in [
        ("auto", ToolChoice::Auto),
        ("none", ToolChoice::None),
        ("required", ToolChoice::Required),
    ] {
        let inbound = ok(json!({"model": "m", "input": "hi", "tool_choice": choice}));
        assert_eq!(inbound.request.tool_choice, Some(expected));
    }
    for (format, expected) in [
        (json!({"type": "text"}), ResponseFormat::Text),
        (json!({"type": "json_object"}), ResponseFormat::JsonObject),
    ] {
        let inbound = ok(json!({"model": "m", "input": "hi", "text": {"format": format}}));
        assert_eq!(inbound.request.response_format, expected);
    }
    let nulls = ok(
        json!({"model": "m", "input": "hi", "instructions": null, "tools": null,
        "tool_choice": null, "max_output_tokens": null, "temperature": null, "text": null,
        "stream": null, "user": null}),
    );
    assert_eq!(nulls.request.messages.len(), 1);
    assert_eq!(nulls.request.max_output_tokens, None);
}

#[test]
fn missing_and_mistyped_parameters_are_named() {
    assert_eq!(
        err(json!({"input": "hi"})),
        (
            Some("model".into()),
            "Missing required parameter: 'model'.".into()
        )
    );
    assert_eq!(param(json!({"model": "m"})), "input");
    assert_eq!(param(json!({"model": "", "input": "hi"})), "model");
    assert_eq!(
        err(json!({"model": "m", "input": "hi", "temperature": "hot"})),
        (
            Some("temperature".into()),
            "Invalid type for 'temperature': expected a decimal, but got a string instead.".into()
        )
    );
    let cases = [
        (json!({"model": 7, "input": "hi"}), "model"),
        (json!({"model": "m", "input": {"role": "user"}}), "input"),
        (json!({"model": "m", "input": 3}), "input"),
        (
            json!({"model": "m", "input": "hi", "instructions": ["a"]}),
            "instructions",
        ),
        (
            json!({"model": "m", "input": "hi", "stream": "yes"}),
            "stream",
        ),
        (json!({"model": "m", "input": "hi", "user": 1}), "user"),
        (json!({"model": "m", "input": "hi", "top_p": [1]}), "top_p"),
        (json!({"model": "m", "input": "hi", "tools": {}}), "tools"),
        (
            json!({"model": "m", "input": "hi", "tools": ["f"]}),
            "tools[0]",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"name": "f"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters": "x"}]}),
            "tools[0].parameters",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f", "strict": "x"}]}),
            "tools[0].strict",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": " "}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": "any"}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": 1}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": {"type": "function"}}),
            "tool_choice.name",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": {"type": "file_search"}}),
            "tool_choice.type",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": {"type": "function", "name": "ghost"}}),
            "tool_choice",
        ),
        (json!({"model": "m", "input": "hi", "text": "json"}), "text"),
        (
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "xml"}}}),
            "text.format.type",
        ),
        (
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
        ),
        (
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "a"}}}),
            "text.format.schema",
        ),
        (
            json!({"model": "m", "input": "hi", "stream_options": true}),
            "stream_options",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(param(body.clone()), expected, "{body}");
    }
}

#[test]
fn input_items_of_the_wrong_shape_are_named() {
    let cases = [
        (json!([]), "input"),
        (
            json!([{"role": "system", "content": "only rules"}]),
            "input",
        ),
        (json!(["hi"]), "input[0]"),
        (json!([{"content": "hi"}]), "input[0].role"),
        (
            json!([{"role": "user", "content": "a"}, {"role": "tool", "content": "hi"}]),
            "input[1].role",
        ),
        (json!([{"role": 5, "content": "hi"}]), "input[0].role"),
        (json!([{"role": "user"}]), "input[0].content"),
        (json!([{"role": "user", "content": 5}]), "input[0].content"),
        (json!([{"role": "user", "content": []}]), "input[0]"),
        (
            json!([{"role": "user", "content": [{"type": "input_text"}]}]),
            "input[0].content[0].text",
        ),
        (
            json!([{"role": "user", "content": [{"text": "x"}]}]),
            "input[0].content[0].type",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_video"}]}]),
            "input[0].content[0].type",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]),
            "input[0].content[0].type",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]),
            "input[0].content[0].file_id",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_image"}]}]),
            "input[0].content[0].image_url",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_image", "image_url": "https://x", "detail": "max"}]}]),
            "input[0].content[0].detail",
        ),
        (
            json!([{"type": "function_call", "name": "f", "arguments": "{}"}]),
            "input[0].call_id",
        ),
        (
            json!([{"type": "function_call", "call_id": "c", "arguments": "{}"}]),
            "input[0].name",
        ),
        (
            json!([{"type": "function_call", "call_id": "c", "name": "f"}]),
            "input[0].arguments",
        ),
        (
            json!([{"type": "function_call_output", "output": "x"}]),
            "input[0].call_id",
        ),
        (
            json!([{"type": "function_call_output", "call_id": "c"}]),
            "input[0].output",
        ),
        (
            json!([{"type": "item_reference", "id": "msg_1"}]),
            "input[0].type",
        ),
        (json!([{"type": 1}]), "input[0].type"),
    ];
    for (input, expected) in cases {
        let body = json!({"model": "m", "input": input});
        assert_eq!(param(body.clone()), expected, "{body}");
    }
}

#[test]
fn numbers_out_of_range_are_refused_as_the_real_api_words_it() {
    assert_eq!(
        err(json!({"model": "m", "input": "hi", "temperature": -1})),
        (
            Some("temperature".into()),
            "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1 instead.".into()
        )
    );
    assert_eq!(
        err(json!({"model": "m", "input": "hi", "max_output_tokens": 5})).1,
        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 5 instead."
    );
    let cases = [
        (json!({"temperature": 2.5}), "temperature"),
        (json!({"temperature": 1e308}), "temperature"),
        (json!({"top_p": 1.5}), "top_p"),
        (json!({"top_p": -0.1}), "top_p"),
        (json!({"max_output_tokens": 0}), "max_output_tokens"),
        (json!({"max_output_tokens": -20}), "max_output_tokens"),
        (json!({"max_output_tokens": 16.5}), "max_output_tokens"),
        (
            json!({"max_output_tokens": 4_294_967_296_u64}),
            "max_output_tokens",
        ),
        (json!({"max_output_tokens": u64::MAX}), "max_output_tokens"),
        (json!({"max_output_tokens": "100"}), "max_output_tokens"),
    ];
    for (fields, expected) in cases {
        let mut body = json!({"model": "m", "input": "hi"});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        assert_eq!(param(body.clone()), expected, "{body}");
    }
    let widest = ok(json!({"model": "m", "input": "hi", "max_output_tokens": u32::MAX}));
    assert_eq!(widest.request.max_output_tokens, Some(u32::MAX));
}

#[test]
fn bodies_that_are_not_a_json_object_are_refused_without_a_param() {
    let huge_number = format!(
        "{{\"model\":\"m\",\"input\":\"hi\",\"temperature\":1{}}}",
        "0".repeat(400)
    );
    for body in [
        &b""[..],
        b"nope",
        b"[]",
        b"\"text\"",
        b"null",
        b"{\"model\":",
        b"\xff\xfe",
        huge_number.as_bytes(),
    ] {
        match decode_request(body) {
            Ok(_) => panic!("{:?} decoded", String::from_utf8_lossy(body)),
            // A number too large for any field is refused by its field, or by the parser.
            Err(e) => assert!(
                e.param.is_none() || e.param.as_deref() == Some("temperature"),
                "{e:?}"
            ),
        }
    }
}

#[test]
fn deep_nesting_and_long_inputs_do_not_panic() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!("{{\"model\":\"m\",\"input\":{deep}}}");
    assert!(decode_request(body.as_bytes()).is_err());
    let many: Vec<Value> = (0..5_000)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "x"}))
        .collect();
    let inbound = ok(json!({"model": "m", "input": many}));
    assert_eq!(inbound.request.messages.len(), 5_000);
}

#[test]
fn content_nested_past_the_recursion_limit_is_refused() {
    let deep = "[".repeat(200) + &"]".repeat(200);
    for body in [
        format!(r#"{{"model":"m","input":[{{"role":"user","content":{deep}}}]}}"#),
        format!(
            r#"{{"model":"m","input":[{{"role":"user","content":[{{"type":"input_text","text":"hi","x":{deep}}}]}}]}}"#
        ),
    ] {
        let bad = decode_request(body.as_bytes()).expect_err("refused");
        assert_eq!(bad.param, None);
        assert!(bad.message.contains("recursion limit exceeded"), "{bad:?}");
    }
}
