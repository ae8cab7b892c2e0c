//! Request translation (the bytes on the wire) and response translation, over a canned HTTP
//! service.

mod support;

use seawall_core::{
    CacheControl, ChatRequest, ContentPart, Cost, ErrorKind, FinishReason, ImageDetail,
    ImageSource, Message, ModelPrice, Prices, ResponseFormat, ToolCall, ToolChoice, ToolDefinition,
};
use seawall_providers::{
    Anthropic, AnthropicAuth, AnthropicConfig, ApiKey, Gemini, GeminiConfig, OpenAi, OpenAiConfig,
    ServerKind,
};
use serde_json::{Value, json};
use support::{Canned, ChunkedBody, events, llm_error};
use tower::ServiceExt;

const OPENAI_OK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06",
  "choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"finish_reason":"stop"}],
  "usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,
           "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}"#;

const ANTHROPIC_OK: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",
  "content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}],
  "stop_reason":"tool_use","stop_sequence":null,
  "usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":7}}"#;

const GEMINI_OK: &str = r#"{"candidates":[{"content":{"role":"model","parts":[
    {"text":"thinking...","thought":true},{"functionCall":{"name":"weather","args":{"city":"Paris"}}}]},
  "finishReason":"STOP","finishMessage":"Model generated function call(s)."}],
  "usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":5,"thoughtsTokenCount":30,"cachedContentTokenCount":8,"totalTokenCount":55},
  "modelVersion":"gemini-2.5-pro","responseId":"resp-1"}"#;

fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "weather",
        "Current weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

/// A conversation that exercises every role: system, user, an assistant tool call, its
/// result, and a follow-up.
fn conversation(model: &str) -> ChatRequest {
    ChatRequest::new(
        model,
        [
            Message::system("Be brief."),
            Message::user("Weather in Paris?").with_cache_control(CacheControl::ephemeral()),
            Message::assistant_tool_calls([ToolCall {
                id: "call_1".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            }]),
            Message::tool_result("call_1", r#"{"temp_c":21}"#),
            Message::user("And tomorrow?"),
        ],
    )
    .with_tools([weather_tool()])
    .with_tool_choice(ToolChoice::Required)
    .with_max_output_tokens(256)
    .with_temperature(0.5)
}

#[tokio::test]
async fn openai_request_bytes() {
    let http = Canned::json(200, OPENAI_OK);
    let adapter = OpenAi::new(
        http.clone(),
        OpenAiConfig::new(ApiKey::new("sk-test"))
            .with_base_url("http://127.0.0.1:9/v1/")
            .with_organization("org-1"),
    );
    let request = conversation("gpt-4o")
        .with_response_format(ResponseFormat::JsonObject)
        .with_user("tenant-7")
        .with_extra("seed", json!(42))
        .with_extra("model", json!("overridden?"));
    let response = adapter.oneshot(request).await.unwrap();
    let sent = http.last();
    assert_eq!(sent.method, http::Method::POST);
    assert_eq!(sent.uri, "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
    assert!(sent.headers["authorization"].is_sensitive());
    assert_eq!(sent.header("openai-organization"), Some("org-1"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json();
    assert_eq!(
        body,
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "content": "{\"temp_c\":21}", "tool_call_id": "call_1"},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "max_completion_tokens": 256,
            "temperature": 0.5,
            "tools": [{"type": "function", "function": {"name": "weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "required",
            "response_format": {"type": "json_object"},
            "user": "tenant-7",
            "seed": 42
        })
    );
    assert_eq!(response.text(), "Hi");
    assert_eq!(response.id, "chatcmpl-1");
    assert_eq!(
        response.model, "gpt-4o-2024-08-06",
        "the model that answered"
    );
    let usage = response.usage.unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.reasoning_tokens
        ),
        (10, 2, 4, 1)
    );
    // Priced in OpenAI's shape: 6 fresh and 4 cached input tokens, 2 output tokens of which
    // 1 reasoning (billed as output), at the dated model's family price ($2.50 / $1.25 / $10).
    assert_eq!(
        Prices::builtin().cost(&response.model, &usage),
        Some(Cost::from_nanos(6 * 2_500 + 4 * 1_250 + 2 * 10_000))
    );
}

#[tokio::test]
async fn openai_max_tokens_field_follows_the_model_family_and_server() {
    for (model, server, field) in [
        ("o3-mini", ServerKind::OpenAi, "max_completion_tokens"),
        ("gpt-5", ServerKind::OpenAi, "max_completion_tokens"),
        ("gpt-4.1-mini", ServerKind::OpenAi, "max_completion_tokens"),
        ("gpt-4", ServerKind::OpenAi, "max_tokens"),
        ("gpt-3.5-turbo", ServerKind::OpenAi, "max_tokens"),
        ("llama3.2", ServerKind::Ollama, "max_tokens"),
        ("Qwen/Qwen2.5-7B", ServerKind::Vllm, "max_tokens"),
        ("gpt-4o", ServerKind::Other, "max_tokens"),
    ] {
        let http = Canned::json(200, OPENAI_OK);
        let config = if server == ServerKind::OpenAi {
            OpenAiConfig::new("sk")
        } else {
            OpenAiConfig::compatible("http://127.0.0.1:11434/v1", server)
        };
        let request = ChatRequest::new(model, [Message::user("hi")]).with_max_output_tokens(99);
        OpenAi::new(http.clone(), config)
            .oneshot(request)
            .await
            .unwrap();
        let body = http.last().json();
        assert_eq!(body[field], 99, "{model} on {server:?}");
        let other = if field == "max_tokens" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        assert!(body.get(other).is_none(), "{model}: only {field}");
    }
}

#[tokio::test]
async fn openai_compatible_server_without_key_sends_no_auth_and_reports_compatible() {
    let http = Canned::json(200, OPENAI_OK);
    let adapter = OpenAi::new(
        http.clone(),
        OpenAiConfig::compatible("http://127.0.0.1:8000/v1", ServerKind::LlamaCpp),
    );
    let response = adapter
        .oneshot(ChatRequest::new("local", [Message::user("hi")]))
        .await
        .unwrap();
    assert!(http.last().header("authorization").is_none());
    assert_eq!(
        response.provider,
        seawall_core::ProviderKind::OpenAiCompatible
    );
}

#[tokio::test]
async fn openai_streaming_always_asks_for_usage_and_event_stream() {
    let sse = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let http = Canned::sse(ChunkedBody::whole(sse));
    let adapter = OpenAi::new(http.clone(), OpenAiConfig::new("sk"));
    let response = adapter
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]).streaming())
        .await
        .unwrap();
    assert!(response.is_streaming());
    events(response).await;
    let sent = http.last();
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    let body = sent.json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

/// Every field the OpenAI body can carry, without pass-through fields: the body is written
/// from typed structs, in the key order a `serde_json::Value` writes (so the bytes are those
/// of the map-built body).
#[tokio::test]
async fn openai_request_bytes_for_every_field_in_key_order() {
    let http = Canned::sse(ChunkedBody::whole("data: [DONE]\n\n"));
    let adapter = OpenAi::new(http.clone(), OpenAiConfig::new("sk"));
    let mut system = Message::system("Be ");
    system.content.push(ContentPart::text("brief."));
    let mut user = Message::user("What is in these?").with_name("ann");
    user.content.push(ContentPart::Image {
        source: ImageSource::Url {
            url: "https://example.com/a.png".into(),
        },
        detail: Some(ImageDetail::High),
        cache_control: None,
    });
    user.content.push(ContentPart::Image {
        source: ImageSource::Base64 {
            media_type: "image/png".into(),
            data: "iVBORw0K".into(),
        },
        detail: None,
        cache_control: None,
    });
    let call = ToolCall {
        id: "call_1".into(),
        name: "weather".into(),
        arguments: r#"{"city":"Paris"}"#.into(),
    };
    let mut speaking_call = Message::assistant("Checking \"Paris\"\u{1F326}");
    speaking_call.tool_calls.push(call.clone());
    let mut request = ChatRequest::new(
        "gpt-4o",
        [
            system,
            user,
            speaking_call,
            Message::assistant_tool_calls([call]),
            Message::tool_result("call_1", r#"{"temp_c":21}"#),
            Message::assistant(""),
        ],
    )
    .with_tools([
        weather_tool(),
        ToolDefinition {
            description: None,
            ..weather_tool()
        },
    ])
    .with_tool_choice(ToolChoice::Tool("weather".into()))
    .with_response_format(ResponseFormat::JsonSchema {
        name: "answer".into(),
        schema: json!({"type": "object"}),
        strict: true,
    })
    .with_max_output_tokens(64)
    .with_temperature(0.5)
    .with_user("tenant-7")
    .streaming();
    request.top_p = Some(0.25);
    request.stop = vec!["END".to_owned(), "STOP".to_owned()].into();
    adapter.oneshot(request).await.unwrap();
    let sent = http.last();
    let body = sent.json();
    assert_eq!(
        serde_json::to_vec(&body).unwrap(),
        sent.body,
        "the bytes of a Value-built body"
    );
    assert_eq!(
        body,
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}]},
                {"role": "assistant", "content": "Checking \"Paris\"\u{1F326}", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "content": "{\"temp_c\":21}", "tool_call_id": "call_1"},
                {"role": "assistant", "content": ""}
            ],
            "max_completion_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.25,
            "stop": ["END", "STOP"],
            "tools": [
                {"type": "function", "function": {"name": "weather",
                    "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "response_format": {"type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "tenant-7"
        })
    );
}

#[tokio::test]
async fn anthropic_request_bytes_with_both_auth_forms() {
    for (auth, header, value, version) in [
        (AnthropicAuth::XApiKey, "x-api-key", "sk-ant", "2023-06-01"),
        (
            AnthropicAuth::Bearer,
            "authorization",
            "Bearer sk-ant",
            "2026-10-21",
        ),
    ] {
        let http = Canned::json(200, ANTHROPIC_OK);
        let adapter = Anthropic::new(
            http.clone(),
            AnthropicConfig::new("sk-ant")
                .with_base_url("http://127.0.0.1:9")
                .with_auth(auth),
        );
        let mut request = conversation("claude-sonnet-4-5");
        request.max_output_tokens = None;
        request.tools = vec![ToolDefinition {
            cache_control: Some(CacheControl::ephemeral()),
            ..weather_tool()
        }]
        .into();
        let response = adapter.oneshot(request).await.unwrap();
        let sent = http.last();
        assert_eq!(sent.uri, "http://127.0.0.1:9/v1/messages");
        assert_eq!(sent.header(header), Some(value));
        assert!(sent.headers[header].is_sensitive());
        assert_eq!(sent.header("anthropic-version"), Some(version));
        assert_eq!(
            sent.json(),
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": [{"type": "text", "text": "Be brief."}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?",
                        "cache_control": {"type": "ephemeral"}}]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1",
                        "name": "weather", "input": {"city": "Paris"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1",
                         "content": [{"type": "text", "text": "{\"temp_c\":21}"}]},
                        {"type": "text", "text": "And tomorrow?"}]}
                ],
                "tools": [{"name": "weather", "description": "Current weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                    "cache_control": {"type": "ephemeral"}}],
                "tool_choice": {"type": "any"},
                "temperature": 0.5
            })
        );
        // The response: text and a tool call, cached tokens counted into the input.
        assert_eq!(response.text(), "Let me check.");
        assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(response.message.tool_calls[0].name, "weather");
        assert_eq!(
            serde_json::from_str::<Value>(&response.message.tool_calls[0].arguments).unwrap(),
            json!({"city": "Paris"})
        );
        let usage = response.usage.unwrap();
        assert_eq!(usage.input_tokens, 115);
        assert_eq!(usage.cached_input_tokens, 100);
        assert_eq!(usage.cache_write_tokens, 5);
        assert_eq!(usage.output_tokens, 7);
        // Anthropic's shape, priced once per token: 10 fresh input, 100 cache reads, 5 cache
        // writes, 7 output.
        let sonnet = ModelPrice::per_million(3.0, 15.0)
            .cached_input(0.3)
            .cache_write(3.75);
        assert_eq!(
            sonnet.cost(&usage),
            Cost::from_nanos(10 * 3_000 + 100 * 300 + 5 * 3_750 + 7 * 15_000)
        );
    }
}

#[tokio::test]
async fn gemini_request_bytes_and_urls() {
    for (stream, path) in [
        (false, "/v1beta/models/gemini-2.5-pro:generateContent"),
        (
            true,
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        ),
    ] {
        let http = if stream {
            Canned::sse(ChunkedBody::whole(format!(
                "data: {}\r\n\r\n",
                GEMINI_OK.replace('\n', "")
            )))
        } else {
            Canned::json(200, GEMINI_OK)
        };
        let adapter = Gemini::new(
            http.clone(),
            GeminiConfig::new("AIza-test").with_base_url("http://127.0.0.1:9"),
        );
        let mut request =
            conversation("models/gemini-2.5-pro").with_response_format(ResponseFormat::JsonObject);
        request.stream = stream;
        let response = adapter.oneshot(request).await.unwrap();
        let sent = http.last();
        assert_eq!(sent.uri, format!("http://127.0.0.1:9{path}"));
        assert_eq!(sent.header("x-goog-api-key"), Some("AIza-test"));
        assert!(sent.headers["x-goog-api-key"].is_sensitive());
        assert_eq!(
            sent.json(),
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"temp_c": 21}}},
                        {"text": "And tomorrow?"}]}
                ],
                "generationConfig": {"maxOutputTokens": 256, "temperature": 0.5,
                    "responseMimeType": "application/json"},
                "tools": [{"functionDeclarations": [{"name": "weather", "description": "Current weather",
                    "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}
            })
        );
        if !stream {
            assert_eq!(response.text(), "", "thoughts are not the answer");
            assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
            assert_eq!(response.id, "resp-1");
            assert_eq!(response.model, "gemini-2.5-pro");
            let usage = response.usage.unwrap();
            assert_eq!(
                (
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.reasoning_tokens,
                    usage.cached_input_tokens
                ),
                (20, 35, 30, 8)
            );
            // Gemini's shape: thoughts are output; 12 fresh and 8 cached input tokens.
            assert_eq!(
                Prices::builtin().cost(&response.model, &usage),
                Some(Cost::from_nanos(12 * 1_250 + 8 * 125 + 35 * 10_000))
            );
        } else {
            let events = events(response).await;
            assert!(matches!(
                events.last(),
                Some(seawall_core::StreamEvent::Finish(FinishReason::ToolCalls))
            ));
        }
    }
}

#[tokio::test]
async fn images_translate_per_provider() {
    let image = ContentPart::Image {
        source: ImageSource::Base64 {
            media_type: "image/png".into(),
            data: "iVBOR".into(),
        },
        detail: None,
        cache_control: None,
    };
    let mut message = Message::user("What is this?");
    message.content.push(image);
    let request = ChatRequest::new("m", [message]);

    let http = Canned::json(200, OPENAI_OK);
    OpenAi::new(http.clone(), OpenAiConfig::new("k"))
        .oneshot(request.clone())
        .await
        .unwrap();
    assert_eq!(
        http.last().json()["messages"][0]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}})
    );

    let http = Canned::json(200, ANTHROPIC_OK);
    Anthropic::new(http.clone(), AnthropicConfig::new("k"))
        .oneshot(request.clone())
        .await
        .unwrap();
    assert_eq!(
        http.last().json()["messages"][0]["content"][1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}})
    );

    let http = Canned::json(200, GEMINI_OK);
    Gemini::new(http.clone(), GeminiConfig::new("k"))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(
        http.last().json()["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBOR"}})
    );
}

#[tokio::test]
async fn an_invalid_request_is_never_sent() {
    let invalid = [
        ChatRequest::new("gpt-4o", []),
        ChatRequest::new("", [Message::user("hi")]),
        ChatRequest::new("gpt-4o", [Message::user("hi")]).with_temperature(3.0),
        ChatRequest::new("gpt-4o", [Message::user("hi")]).with_max_output_tokens(0),
    ];
    for request in invalid {
        let http = Canned::json(200, OPENAI_OK);
        let error = OpenAi::new(http.clone(), OpenAiConfig::new("k"))
            .oneshot(request.clone())
            .await
            .unwrap_err();
        assert!(error.is::<seawall_core::InvalidRequest>(), "{error}");
        assert_eq!(
            seawall_core::classify(&*error).disposition,
            seawall_core::Disposition::Fatal
        );
        assert_eq!(http.count(), 0, "nothing went upstream for {request:?}");

        let http = Canned::json(200, ANTHROPIC_OK);
        Anthropic::new(http.clone(), AnthropicConfig::new("k"))
            .oneshot(request.clone())
            .await
            .unwrap_err();
        assert_eq!(http.count(), 0);
        let http = Canned::json(200, GEMINI_OK);
        Gemini::new(http.clone(), GeminiConfig::new("k"))
            .oneshot(request)
            .await
            .unwrap_err();
        assert_eq!(http.count(), 0);
    }
    // Tool-call arguments that are not JSON cannot become an Anthropic `input` object.
    let request = ChatRequest::new(
        "claude",
        [
            Message::user("hi"),
            Message::assistant_tool_calls([ToolCall {
                id: "c".into(),
                name: "t".into(),
                arguments: "{not json".into(),
            }]),
            Message::tool_result("c", "ok"),
        ],
    );
    let http = Canned::json(200, ANTHROPIC_OK);
    let error = llm_error(
        Anthropic::new(http.clone(), AnthropicConfig::new("k"))
            .oneshot(request)
            .await
            .unwrap_err(),
    );
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(http.count(), 0);
}

#[tokio::test]
async fn a_streaming_request_answered_in_one_piece_is_replayed_as_events() {
    let http = Canned::json(200, OPENAI_OK);
    let response = OpenAi::new(http, OpenAiConfig::new("k"))
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]).streaming())
        .await
        .unwrap();
    let events = events(response).await;
    assert_eq!(
        events.last(),
        Some(&seawall_core::StreamEvent::Finish(FinishReason::Stop))
    );
    assert!(events.contains(&seawall_core::StreamEvent::TextDelta("Hi".into())));
}

#[test]
fn api_keys_never_show_in_debug_output() {
    let key = "sk-very-secret-123";
    let openai = OpenAi::new((), OpenAiConfig::new(key));
    let anthropic = Anthropic::new((), AnthropicConfig::new(key));
    let gemini = Gemini::new((), GeminiConfig::new(key));
    for debug in [
        format!("{openai:?}"),
        format!("{anthropic:?}"),
        format!("{gemini:?}"),
        format!("{}", ApiKey::new(key)),
    ] {
        assert!(!debug.contains(key), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }
}

#[tokio::test]
async fn an_oversized_response_body_fails_instead_of_filling_memory() {
    let huge = format!(
        "{{\"choices\":[{{\"message\":{{\"content\":\"{}\"}}}}]}}",
        "x".repeat(seawall_providers::future::MAX_BODY_BYTES)
    );
    let http = Canned::json(200, &huge);
    let error = llm_error(
        OpenAi::new(http, OpenAiConfig::new("k"))
            .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.kind(), ErrorKind::Decode);
}

#[tokio::test]
async fn reply_content_given_as_text_parts_is_joined() {
    let body = r#"{"id":"x","model":"local","choices":[{"index":0,"message":{"role":"assistant",
        "content":[{"type":"text","text":"Hello, "},{"type":"text","text":"world"}]},"finish_reason":"stop"}]}"#;
    let response = OpenAi::new(
        Canned::json(200, body),
        OpenAiConfig::compatible("http://127.0.0.1:1/v1", ServerKind::Other),
    )
    .oneshot(ChatRequest::new("local", [Message::user("hi")]))
    .await
    .unwrap();
    assert_eq!(response.text(), "Hello, world");
}

/// Bodies the typed readings refuse (fields of unexpected types, an array at the top)
/// decode as the loose `Value` reading always decoded them.
#[test]
fn loosely_typed_response_bodies_decode_as_before() {
    use seawall_providers::{Dialect, GeminiDialect, OpenAiDialect};

    let headers = http::HeaderMap::new();
    let openai = OpenAiDialect::new(OpenAiConfig::new("sk"));
    let odd = br#"{"id":"x","model":"m","choices":[{"message":{"content":7,"tool_calls":{}},
        "finish_reason":"length"}],"usage":{"prompt_tokens":1.5,"completion_tokens":3}}"#;
    let response = openai.decode_response(&headers, odd).unwrap();
    assert_eq!(response.text(), "");
    assert!(response.message.tool_calls.is_empty());
    assert_eq!(response.finish_reason, Some(FinishReason::Length));
    let usage = response.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (0, 3));
    let parts = br#"{"choices":[{"message":{"content":[{"text":"a"},{"type":"image"},"x",{"text":"b"}]}}]}"#;
    assert_eq!(
        openai.decode_response(&headers, parts).unwrap().text(),
        "ab"
    );
    let array = br#"[null, null, [{"message": {"content": "x"}}]]"#;
    let error = openai.decode_response(&headers, array).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("no `choices` in the body"));

    let gemini = GeminiDialect::new(GeminiConfig::new("sk"));
    let odd = br#"{"candidates":[{"content":{"parts":[{"text":"a","thought":"yes"},
        {"functionCall":"weather"}]}}],"usageMetadata":{"promptTokenCount":-1}}"#;
    let response = gemini.decode_response(&headers, odd).unwrap();
    assert_eq!(response.text(), "a");
    assert!(
        response.message.tool_calls.is_empty(),
        "a functionCall that names nothing is no call"
    );
    assert_eq!(response.usage.unwrap().input_tokens, 0);

    // The same chunk in a stream, then a blocked prompt opening another stream.
    use seawall_core::StreamEvent;
    use seawall_providers::StreamDecoder;
    use seawall_providers::sse::SseEvent;
    let event = |data: &[u8]| SseEvent {
        event: None,
        data: String::from_utf8(data.to_vec()).unwrap(),
        id: None,
    };
    let mut decoder = gemini.stream_decoder();
    let mut out = Vec::new();
    decoder.decode(&event(odd), &mut out).unwrap();
    let Some(StreamEvent::Start {
        id: None,
        model: None,
    }) = out.first()
    else {
        panic!("{out:?}");
    };
    assert!(matches!(&out[1], StreamEvent::TextDelta(text) if text == "a"));
    assert!(matches!(&out[2], StreamEvent::Usage(u) if u.input_tokens == 0));
    assert_eq!(out.len(), 3, "{out:?}");
    let mut decoder = gemini.stream_decoder();
    let mut out = Vec::new();
    let blocked = br#"{"responseId":"r","promptFeedback":{"blockReason":"SAFETY"}}"#;
    let flow = decoder.decode(&event(blocked), &mut out).unwrap();
    assert!(matches!(flow, seawall_providers::dialect::Flow::End));
    assert!(matches!(&out[0], StreamEvent::Start { id: Some(id), .. } if id == "r"));
    assert!(matches!(&out[1], StreamEvent::Error(e) if e.kind() == ErrorKind::ContentFiltered));
}

/// Anthropic bodies and stream events the typed readings refuse (fields of unexpected
/// types) decode as the loose `Value` reading always decoded them: a field of another type
/// counts as absent.
#[test]
fn loosely_typed_anthropic_bodies_and_deltas_decode_as_before() {
    use seawall_core::StreamEvent;
    use seawall_providers::sse::SseEvent;
    use seawall_providers::{AnthropicDialect, Dialect, StreamDecoder};

    let anthropic = AnthropicDialect::new(AnthropicConfig::new("sk"));
    let odd = br#"{"id":"x","model":"m","content":[{"type":"text","text":5},
        {"type":"text","text":"hi"},{"type":"tool_use","id":7,"name":"w","input":{"a":1}}],
        "stop_reason":"max_tokens","usage":{"input_tokens":"3","output_tokens":4,
        "cache_read_input_tokens":2}}"#;
    let response = anthropic
        .decode_response(&http::HeaderMap::new(), odd)
        .unwrap();
    assert_eq!(response.text(), "hi");
    assert_eq!(response.message.tool_calls.len(), 1);
    let call = &response.message.tool_calls[0];
    assert_eq!(
        (&*call.id, &*call.name, &*call.arguments),
        ("", "w", r#"{"a":1}"#)
    );
    assert_eq!(response.finish_reason, Some(FinishReason::Length));
    let usage = response.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (2, 4));
    let no_content = anthropic.decode_response(&http::HeaderMap::new(), br#"{"content":3}"#);
    assert_eq!(no_content.unwrap_err().kind(), ErrorKind::Decode);

    let event = |data: &str| SseEvent {
        event: None,
        data: data.to_owned(),
        id: None,
    };
    let mut decoder = anthropic.stream_decoder();
    let mut out = Vec::new();
    for data in [
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
        // A non-string text: nothing to add, the stream goes on.
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":9}}"#,
        r#"{"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"b"}}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"w"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":7}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}","x":[]}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":"5"}}"#,
    ] {
        decoder.decode(&event(data), &mut out).unwrap();
    }
    let texts: String = out
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    // The delta at index "0" (a string) reads as index 0.
    assert_eq!(texts, "ab");
    let arguments: Vec<&str> = out
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta { arguments, .. } if !arguments.is_empty() => {
                Some(arguments.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(arguments, ["{}"]);
    assert!(
        out.iter()
            .any(|e| matches!(e, StreamEvent::Usage(u) if u.output_tokens == 0))
    );
}

/// Fields a gateway relays from an Anthropic-dialect client reach Anthropic targets only:
/// an OpenAI target gets a body without them, and the trail names what was left out.
#[tokio::test]
async fn pass_through_fields_reach_only_their_own_wire_format() {
    let anthropic_only = || {
        ChatRequest::new("m", [Message::user("Hi")])
            .with_max_output_tokens(16)
            .with_extra("top_k", json!(5))
            .with_extra_for(seawall_core::ProviderKind::Anthropic)
    };

    let http = Canned::json(200, OPENAI_OK);
    let openai = OpenAi::new(http.clone(), OpenAiConfig::new(ApiKey::new("sk-test")));
    let mut request = anthropic_only();
    let trail = request.context.trail().clone();
    openai.oneshot(request).await.unwrap();
    assert!(
        http.last().json().get("top_k").is_none(),
        "not sent to OpenAI"
    );
    assert_eq!(trail.snapshot().dropped_fields(), ["top_k"]);

    let http = Canned::json(200, ANTHROPIC_OK);
    let anthropic = Anthropic::new(http.clone(), AnthropicConfig::new("sk-ant-test"));
    let mut request = anthropic_only();
    let trail = request.context.trail().clone();
    anthropic.oneshot(request).await.unwrap();
    assert_eq!(http.last().json()["top_k"], 5, "sent to Anthropic");
    assert!(trail.snapshot().dropped_fields().is_empty());

    // Written for the chat dialect: an OpenAI-compatible server reads it the same way.
    let http = Canned::json(200, OPENAI_OK);
    let compatible = OpenAi::new(
        http.clone(),
        OpenAiConfig::compatible("http://127.0.0.1:8000/v1", ServerKind::LlamaCpp),
    );
    let request = ChatRequest::new("m", [Message::user("Hi")])
        .with_extra("seed", json!(7))
        .with_extra_for(seawall_core::ProviderKind::OpenAi);
    compatible.oneshot(request).await.unwrap();
    assert_eq!(http.last().json()["seed"], 7);
}
