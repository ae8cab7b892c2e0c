//! Every recording of real provider traffic in the fixtures directory, run through the
//! adapters (request encoding, response and stream decoding, error mapping).
//!
//! The recordings are found by walking `<root>/{openai,openai-responses,anthropic,gemini,azure}`, for the built-in
//! root `tests/fixtures/` of this crate (see its README for each file's source and licence)
//! and for every directory in `$SEAWALL_FIXTURES` (separated like `PATH`), which adds more.
//! Every recording is checked for what holds for any real recording; the named ones also for
//! exact values. A new recording needs no code change.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use saphyr_parser::{Event, Parser, ScalarStyle};
use seawall_core::{
    ChatRequest, ErrorKind, FinishReason, Message, ProviderKind, StreamAccumulator, StreamEvent,
    Usage,
};
use seawall_providers::{
    Anthropic, AnthropicConfig, ApiKey, Gemini, GeminiConfig, OpenAi, OpenAiConfig,
    OpenAiResponses, ResponsesConfig,
};
use serde_json::Value;
use support::{Canned, ChunkedBody, Outcome, events, llm_error};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    OpenAi,
    OpenAiResponses,
    Anthropic,
    Gemini,
    /// Azure OpenAI: the OpenAI dialect at an Azure endpoint.
    Azure,
}

/// One recorded request/response exchange.
#[derive(Debug, Clone)]
struct Exchange {
    /// `file#index`.
    name: String,
    provider: Provider,
    model: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    streamed: bool,
}

/// The recordings that ship with the crate.
fn builtin_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The built-in root, then the directories `$SEAWALL_FIXTURES` adds.
fn fixture_roots() -> Vec<PathBuf> {
    let mut roots = vec![builtin_root()];
    if let Some(extra) = std::env::var_os("SEAWALL_FIXTURES") {
        roots.extend(std::env::split_paths(&extra).filter(|dir| !dir.as_os_str().is_empty()));
    }
    roots
}

/// How many recordings ship in `tests/fixtures/` (files, not exchanges).
const BUILTIN_FILES: usize = 28;

fn recordings() -> Vec<Exchange> {
    let mut exchanges = Vec::new();
    let mut builtin_files = 0;
    for root in fixture_roots() {
        assert!(root.is_dir(), "no fixtures directory at {}", root.display());
        let builtin = root == builtin_root();
        for (dir, provider) in [
            ("openai", Provider::OpenAi),
            ("openai-responses", Provider::OpenAiResponses),
            ("anthropic", Provider::Anthropic),
            ("gemini", Provider::Gemini),
            ("azure", Provider::Azure),
        ] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&file).unwrap();
                let parsed = if name.ends_with(".yaml") || name.ends_with(".yml") {
                    from_cassette(&text, provider)
                } else if name.ends_with(".chunks.txt") {
                    vec![from_chunks(&text)]
                } else if name.ends_with(".json") {
                    vec![from_json_body(&text)]
                } else if name.ends_with(".R") {
                    vec![from_httr2_mock(&text)]
                } else {
                    continue;
                };
                if builtin {
                    builtin_files += 1;
                }
                for (i, mut exchange) in parsed.into_iter().enumerate() {
                    exchange.name = format!("{name}#{i}");
                    exchange.provider = provider;
                    exchanges.push(exchange);
                }
            }
        }
    }
    assert_eq!(
        builtin_files,
        BUILTIN_FILES,
        "recordings under {}",
        builtin_root().display()
    );
    exchanges
}

fn blank() -> Exchange {
    Exchange {
        name: String::new(),
        provider: Provider::OpenAi,
        model: "fixture-model".into(),
        status: 200,
        headers: Vec::new(),
        body: Vec::new(),
        streamed: false,
    }
}

/// The first document of a YAML text as JSON (enough YAML for VCR cassettes: block and
/// flow collections, every scalar style, plain scalars resolved to null, booleans and
/// numbers).
fn yaml_to_json(text: &str) -> Value {
    enum Open {
        List(Vec<Value>),
        Map(serde_json::Map<String, Value>, Option<String>),
    }
    fn plain(text: &str) -> Value {
        match text {
            "" | "~" | "null" | "Null" | "NULL" => Value::Null,
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ => text
                .parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                })
                .unwrap_or_else(|| Value::from(text)),
        }
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut done: Option<Value> = None;
    // Adds a finished value to the collection being built, or finishes the document.
    let push =
        |stack: &mut Vec<Open>, value: Value, done: &mut Option<Value>| match stack.last_mut() {
            Some(Open::List(items)) => items.push(value),
            Some(Open::Map(map, key)) => match key.take() {
                Some(key) => {
                    map.insert(key, value);
                }
                None => {
                    *key = Some(match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                }
            },
            None => {
                if done.is_none() {
                    *done = Some(value);
                }
            }
        };
    for event in Parser::new_from_str(text) {
        let (event, _) = event.expect("cassette YAML parses");
        match event {
            Event::Scalar(value, style, _, _) => {
                let value = if style == ScalarStyle::Plain {
                    plain(&value)
                } else {
                    Value::from(value.into_owned())
                };
                push(&mut stack, value, &mut done);
            }
            Event::SequenceStart(..) => stack.push(Open::List(Vec::new())),
            Event::MappingStart(..) => stack.push(Open::Map(serde_json::Map::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match stack.pop().expect("balanced") {
                    Open::List(items) => Value::Array(items),
                    Open::Map(map, _) => Value::Object(map),
                };
                push(&mut stack, value, &mut done);
            }
            _ => {}
        }
    }
    done.unwrap_or(Value::Null)
}

/// A VCR cassette in any of the three serialisations.
fn from_cassette(text: &str, provider: Provider) -> Vec<Exchange> {
    let doc = yaml_to_json(text);
    let interactions = doc["interactions"].as_array().expect("interactions");
    interactions
        .iter()
        .map(|interaction| {
            let request = &interaction["request"];
            let response = &interaction["response"];
            let mut exchange = blank();
            // The request body: a mapping, `{type, content}` or a JSON string.
            let request_body = [
                &request["parsed_body"],
                &request["body"]["content"],
                &request["body"],
            ]
            .into_iter()
            .find_map(|v| match v {
                Value::Object(map) if map.contains_key("model") || map.contains_key("contents") => {
                    Some(v.clone())
                }
                Value::String(s) => serde_json::from_str(s).ok(),
                Value::Object(map) => map
                    .get("string")
                    .and_then(Value::as_str)
                    .and_then(|s| serde_json::from_str(s).ok()),
                _ => None,
            })
            .unwrap_or(Value::Null);
            let uri = request["uri"].as_str().unwrap_or_default();
            exchange.model = request_body["model"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    let rest = uri.split("/models/").nth(1)?;
                    Some(rest.split(':').next()?.to_owned())
                })
                .unwrap_or_else(|| "fixture-model".into());
            exchange.status = match &response["status"] {
                Value::Number(n) => n.as_u64().unwrap() as u16,
                status => status["code"].as_u64().unwrap_or(200) as u16,
            };
            if let Some(headers) = response["headers"].as_object() {
                for (name, values) in headers {
                    match values {
                        Value::Array(values) => {
                            for value in values {
                                let value = match value {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                };
                                exchange.headers.push((name.to_lowercase(), value));
                            }
                        }
                        Value::String(s) => exchange.headers.push((name.to_lowercase(), s.clone())),
                        other => exchange
                            .headers
                            .push((name.to_lowercase(), other.to_string())),
                    }
                }
            }
            let body = &response["body"];
            exchange.body = match (&response["parsed_body"], body) {
                (parsed @ Value::Object(_), _) => parsed.to_string().into_bytes(),
                (_, Value::Object(map)) => match map.get("string").or_else(|| map.get("content")) {
                    Some(Value::String(s)) => s.clone().into_bytes(),
                    Some(other @ Value::Object(_)) => other.to_string().into_bytes(),
                    _ => Vec::new(),
                },
                (_, Value::String(s)) => s.clone().into_bytes(),
                _ => Vec::new(),
            };
            let content_type = exchange
                .headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            let head = String::from_utf8_lossy(&exchange.body[..exchange.body.len().min(16)])
                .trim_start()
                .to_owned();
            exchange.streamed = content_type.contains("event-stream")
                || head.starts_with("data:")
                || head.starts_with("event:")
                || uri.contains("alt=sse");
            let _ = provider;
            exchange
        })
        .collect()
}

/// vercel-ai `*.chunks.txt`: one SSE data payload per line, framing stripped.
fn from_chunks(text: &str) -> Exchange {
    let mut body = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        body.push_str("data: ");
        body.push_str(line);
        body.push_str("\n\n");
    }
    let mut exchange = blank();
    // The first chunk that names a model (Azure's first one holds only filter results).
    let model = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|chunk| {
            [
                &chunk["message"]["model"],
                &chunk["response"]["model"],
                &chunk["model"],
                &chunk["modelVersion"],
            ]
            .into_iter()
            .find_map(|m| m.as_str().filter(|m| !m.is_empty()).map(str::to_owned))
        });
    if let Some(model) = model {
        exchange.model = model.to_owned();
    }
    exchange.headers = vec![("content-type".into(), "text/event-stream".into())];
    exchange.body = body.into_bytes();
    exchange.streamed = true;
    exchange
}

/// vercel-ai `*.json`: a body without status; an error body carries its status inside.
fn from_json_body(text: &str) -> Exchange {
    let value: Value = serde_json::from_str(text).expect("fixture JSON parses");
    let mut exchange = blank();
    if let Some(error) = value.get("error") {
        exchange.status = error["code"].as_u64().map_or_else(
            || match error["type"].as_str().unwrap_or_default() {
                "authentication_error" => 401,
                "permission_error" => 403,
                "not_found_error" => 404,
                "request_too_large" => 413,
                "rate_limit_error" => 429,
                "api_error" => 500,
                "overloaded_error" => 529,
                _ => 400,
            },
            |code| code as u16,
        );
    }
    if let Some(model) = value["modelVersion"].as_str().or(value["model"].as_str()) {
        exchange.model = model.to_owned();
    }
    exchange.headers = vec![("content-type".into(), "application/json".into())];
    exchange.body = text.as_bytes().to_vec();
    exchange
}

/// An R string literal starting at `text` (after the opening quote): the unescaped value.
fn r_string(text: &str) -> (String, usize) {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, i + 1),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    (out, text.len())
}

/// tidyllm `*.R`: an httr2 mock response as an R expression.
fn from_httr2_mock(text: &str) -> Exchange {
    let mut exchange = blank();
    let status = text
        .split("status_code = ")
        .nth(1)
        .and_then(|rest| rest.split('L').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("status_code");
    exchange.status = status;
    let headers_start = text.find("headers = structure(list(").expect("headers") + 25;
    let headers_end = headers_start
        + text[headers_start..]
            .find("class = \"httr2_headers\"")
            .expect("end of headers");
    let mut rest = &text[headers_start..headers_end];
    // Entries: `name` = "value" or name = "value", separated by commas.
    while let Some(eq) = rest.find(" = \"") {
        let name = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .trim_matches('`')
            .to_lowercase();
        let (value, used) = r_string(&rest[eq + 4..]);
        exchange.headers.push((name, value));
        rest = &rest[eq + 4 + used..];
    }
    let body_start = text.find("charToRaw(\"").expect("body") + 11;
    let (body, _) = r_string(&text[body_start..]);
    exchange.body = body.into_bytes();
    exchange.streamed = exchange
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.contains("event-stream"));
    if let Some(model) = text
        .split("/models/")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
    {
        exchange.model = model.to_owned();
    }
    exchange
}

/// Runs `exchange` through its provider's adapter, with the body delivered as one chunk
/// (`split` empty) or cut into pieces of the given sizes.
async fn run(exchange: &Exchange, split: &[usize]) -> (Outcome, u64) {
    let body = if split.is_empty() {
        ChunkedBody::whole(exchange.body.clone())
    } else {
        ChunkedBody::split(&exchange.body, split)
    };
    let http = Canned::with_headers(exchange.status, exchange.headers.clone(), body);
    let mut request = ChatRequest::new(exchange.model.as_str(), [Message::user("fixture")]);
    request.stream = exchange.streamed;
    let key = ApiKey::new("test-key");
    macro_rules! drive {
        ($adapter:expr) => {{
            let adapter = $adapter;
            let metrics = adapter.stream_metrics().clone();
            let outcome = match adapter.oneshot(request).await {
                Ok(response) if response.is_streaming() && exchange.streamed => {
                    Outcome::Stream(events(response).await)
                }
                Ok(response) => Outcome::Complete(Box::new(response)),
                Err(error) => Outcome::Failed(llm_error(error)),
            };
            (outcome, metrics.malformed_skipped())
        }};
    }
    match exchange.provider {
        Provider::OpenAi => drive!(OpenAi::new(http, OpenAiConfig::new(key))),
        Provider::OpenAiResponses => {
            drive!(OpenAiResponses::new(http, ResponsesConfig::new(key)))
        }
        Provider::Anthropic => drive!(Anthropic::new(http, AnthropicConfig::new(key))),
        Provider::Gemini => drive!(Gemini::new(http, GeminiConfig::new(key))),
        Provider::Azure => drive!(OpenAi::new(
            http,
            OpenAiConfig::azure_v1("https://fixture.openai.azure.com", key)
        )),
    }
}

fn body_text(exchange: &Exchange) -> String {
    String::from_utf8_lossy(&exchange.body).into_owned()
}

/// Whether the recorded stream holds the provider's end of message.
fn has_end_of_message(exchange: &Exchange) -> bool {
    let text = body_text(exchange);
    match exchange.provider {
        Provider::OpenAi | Provider::Azure => {
            text.contains("\"finish_reason\":\"") || text.contains("\"finish_reason\": \"")
        }
        Provider::OpenAiResponses => {
            text.contains("response.completed") || text.contains("response.incomplete")
        }
        Provider::Anthropic => text.contains("message_stop"),
        Provider::Gemini => text.contains("finishReason"),
    }
}

/// Whether the recorded stream ends in the provider's own error event (rather than breaking
/// off): the stream must end in that error, not a truncation.
fn has_error_event(exchange: &Exchange) -> bool {
    let text = body_text(exchange);
    exchange.provider == Provider::OpenAiResponses
        && (text.contains(r#""type":"error""#) || text.contains(r#""type":"response.failed""#))
}

fn has_usage(exchange: &Exchange) -> bool {
    let text = body_text(exchange);
    match exchange.provider {
        Provider::OpenAi | Provider::OpenAiResponses | Provider::Azure => {
            text.contains("\"usage\":{") || text.contains("\"usage\": {")
        }
        Provider::Anthropic => text.contains("\"usage\""),
        Provider::Gemini => text.contains("usageMetadata"),
    }
}

/// The kinds a status can map to, whatever the body says.
fn kinds_for_status(status: u16) -> &'static [ErrorKind] {
    match status {
        400 => &[
            ErrorKind::InvalidRequest,
            ErrorKind::ContextLengthExceeded,
            ErrorKind::ContentFiltered,
            ErrorKind::Auth,
            ErrorKind::Permission,
        ],
        401 => &[ErrorKind::Auth],
        403 => &[ErrorKind::Permission, ErrorKind::Auth],
        404 => &[ErrorKind::NotFound],
        413 => &[ErrorKind::RequestTooLarge],
        429 => &[
            ErrorKind::RateLimited,
            ErrorKind::QuotaExhausted,
            ErrorKind::RequestTooLarge,
        ],
        500..=599 => &[
            ErrorKind::Server,
            ErrorKind::Overloaded,
            ErrorKind::Timeout,
            ErrorKind::ContextLengthExceeded,
        ],
        _ => &[ErrorKind::InvalidRequest, ErrorKind::Transient],
    }
}

fn provider_kind(provider: Provider) -> ProviderKind {
    match provider {
        Provider::OpenAi => ProviderKind::OpenAi,
        Provider::OpenAiResponses => ProviderKind::OpenAiResponses,
        Provider::Anthropic => ProviderKind::Anthropic,
        Provider::Gemini => ProviderKind::Gemini,
        Provider::Azure => ProviderKind::AzureOpenAi,
    }
}

/// What holds for any real recording.
fn check_any(exchange: &Exchange, outcome: &Outcome, skipped: u64) {
    let name = &exchange.name;
    assert_eq!(skipped, 0, "{name}: every event decodes");
    match outcome {
        Outcome::Stream(events) => {
            assert!(
                matches!(events.first(), Some(StreamEvent::Start { .. })),
                "{name}: a stream starts with Start: {events:?}"
            );
            let starts = events
                .iter()
                .filter(|e| matches!(e, StreamEvent::Start { .. }))
                .count();
            assert_eq!(starts, 1, "{name}: one Start");
            let mut accumulator = StreamAccumulator::new();
            let mut result = Ok(());
            for event in events {
                if let Err(error) = accumulator.push(event) {
                    result = Err(error);
                }
            }
            if has_end_of_message(exchange) {
                assert!(result.is_ok(), "{name}: no error in a complete stream");
                let finish_at = events
                    .iter()
                    .position(|e| matches!(e, StreamEvent::Finish(_)))
                    .unwrap_or_else(|| panic!("{name}: a complete stream finishes"));
                let after: Vec<_> = events[finish_at + 1..].iter().collect();
                assert!(
                    after.len() <= 1 && after.iter().all(|e| matches!(e, StreamEvent::Usage(_))),
                    "{name}: at most one Usage follows Finish: {after:?}"
                );
            } else if has_error_event(exchange) {
                let last = events.last().unwrap();
                assert!(
                    matches!(last, StreamEvent::Error(e) if e.kind() != ErrorKind::StreamTruncated),
                    "{name}: a stream that ends in an error event ends in that error: {last:?}"
                );
            } else {
                let last = events.last().unwrap();
                assert!(
                    matches!(last, StreamEvent::Error(e) if e.kind() == ErrorKind::StreamTruncated),
                    "{name}: a stream without end of message ends in a truncation error"
                );
            }
            for call in accumulator.tool_calls() {
                assert!(
                    !call.id.is_empty() && !call.name.is_empty(),
                    "{name}: {call:?}"
                );
                serde_json::from_str::<Value>(&call.arguments).unwrap_or_else(|e| {
                    panic!("{name}: tool call arguments join to JSON ({e}): {call:?}")
                });
            }
            // A refusal ends without content, and says so in its finish reason.
            let content = events.iter().any(StreamEvent::is_content)
                || accumulator.finish_reason() == Some(&FinishReason::ContentFilter);
            assert!(
                content || has_error_event(exchange),
                "{name}: a recorded stream has content"
            );
            if has_usage(exchange) {
                let usage = accumulator.usage().expect("usage is read");
                assert!(usage.total() > 0, "{name}: usage counts tokens: {usage:?}");
            }
        }
        Outcome::Complete(response) => {
            assert!(exchange.status < 300, "{name}: only a 2xx succeeds");
            assert_eq!(response.provider, provider_kind(exchange.provider));
            assert!(
                !response.message.text.is_empty()
                    || !response.message.tool_calls.is_empty()
                    || response.finish_reason == Some(FinishReason::ContentFilter),
                "{name}: a reply has text or tool calls, or is a refusal"
            );
            assert!(response.finish_reason.is_some(), "{name}: a finish reason");
            for call in &response.message.tool_calls {
                serde_json::from_str::<Value>(&call.arguments).expect("tool arguments are JSON");
            }
            if has_usage(exchange) {
                assert!(
                    response.usage.is_some_and(|u| u.total() > 0),
                    "{name}: usage"
                );
            }
            let quota_headers = exchange.headers.iter().any(|(k, _)| {
                k.starts_with("x-ratelimit-") || k.starts_with("anthropic-ratelimit-")
            });
            assert_eq!(
                response.quota.is_some(),
                quota_headers,
                "{name}: quota snapshot"
            );
        }
        Outcome::Failed(error) => {
            assert_eq!(
                error.provider(),
                Some(provider_kind(exchange.provider)),
                "{name}"
            );
            assert_ne!(error.kind(), ErrorKind::Decode, "{name}: {error}");
            assert!(
                !error.message().is_empty(),
                "{name}: the provider's message"
            );
            if exchange.status >= 400 {
                assert_eq!(error.status(), Some(exchange.status), "{name}");
                assert!(
                    kinds_for_status(exchange.status).contains(&error.kind()),
                    "{name}: {:?} for status {}",
                    error.kind(),
                    exchange.status
                );
            } else {
                // A 2xx that fails: a prompt blocked before any candidate.
                assert_eq!(error.kind(), ErrorKind::ContentFiltered, "{name}");
            }
        }
    }
}

type Summary = (
    String,
    Vec<(String, String)>,
    Option<Usage>,
    Option<FinishReason>,
);

fn stream_summary(events: &[StreamEvent]) -> Summary {
    let mut accumulator = StreamAccumulator::new();
    for event in events {
        let _ = accumulator.push(event);
    }
    let calls = accumulator
        .tool_calls()
        .iter()
        .map(|c| (c.name.clone(), c.arguments.clone()))
        .collect();
    (
        accumulator.text().to_owned(),
        calls,
        accumulator.usage(),
        accumulator.finish_reason().cloned(),
    )
}

/// Exact values for the named recordings.
fn check_named(exchange: &Exchange, outcome: &Outcome) {
    let file = exchange.name.as_str();
    let json = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    match (file, outcome) {
        (
            "pydantic-ai__test_run_stream_sync_streams_real_model.yaml#0",
            Outcome::Stream(events),
        ) => {
            let (text, calls, usage, finish) = stream_summary(events);
            assert_eq!(text, "");
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].0, "get_capital");
            assert_eq!(calls[0].1, r#"{"country":"UK"}"#, "5 fragments join");
            assert_eq!(finish, Some(FinishReason::ToolCalls));
            assert!(usage.is_some());
            assert!(
                matches!(events.last(), Some(StreamEvent::Usage(_))),
                "usage after finish is kept"
            );
            assert!(
                matches!(&events[0], StreamEvent::Start { model: Some(m), .. } if m == "gpt-4o-mini-2024-07-18")
            );
        }
        (
            "pydantic-ai__test_run_stream_sync_streams_real_model.yaml#1",
            Outcome::Stream(events),
        ) => {
            let (text, calls, usage, finish) = stream_summary(events);
            assert!(text.contains("London"), "{text}");
            assert!(calls.is_empty());
            assert_eq!(finish, Some(FinishReason::Stop));
            assert!(usage.is_some_and(|u| u.input_tokens > 0 && u.output_tokens > 0));
        }
        ("pydantic-ai__test_dbos_model_stream_direct.yaml#0", Outcome::Stream(events)) => {
            let (text, _, usage, finish) = stream_summary(events);
            assert_eq!(text, "The capital of Mexico is Mexico City.");
            assert_eq!(finish, Some(FinishReason::Stop));
            let usage = usage.unwrap();
            assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
        }
        ("pydantic-ai__test_openai_moderation_stream.yaml#0", Outcome::Stream(events)) => {
            let (text, _, usage, finish) = stream_summary(events);
            assert_eq!(text, "Paris.");
            assert_eq!(finish, Some(FinishReason::Stop));
            assert!(usage.is_some());
        }
        ("pydantic-ai__test_reasoning_model_with_temperature.yaml#0", Outcome::Complete(r)) => {
            let usage = r.usage.unwrap();
            assert_eq!(usage.output_tokens, 238);
            assert_eq!(usage.reasoning_tokens, 192);
            assert!(r.model.starts_with("o3-mini"), "{}", r.model);
        }
        (
            "pydantic-ai__test_openai_web_search_tool_model_not_supported.yaml#0",
            Outcome::Failed(e),
        ) => {
            assert_eq!(e.kind(), ErrorKind::InvalidRequest);
            assert_eq!(e.status(), Some(400));
            assert_eq!(
                e.message(),
                "Web search options not supported with this model."
            );
            assert_eq!(e.code(), Some("invalid_request_error"));
        }
        ("tidyllm__completions-f382f0-POST.R#0", Outcome::Complete(r)) => {
            assert_eq!(r.text(), "Hello! How can I help you today?");
            assert_eq!(r.model, "gpt-5.1-chat-latest");
            let usage = r.usage.unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (20, 18));
            let quota = r.quota.as_deref().unwrap();
            let requests = quota.requests.unwrap();
            assert_eq!(
                (requests.limit, requests.remaining),
                (Some(5000), Some(4999))
            );
            assert_eq!(requests.reset_after, Some(Duration::from_millis(12)));
            let tokens = quota.tokens.unwrap();
            assert_eq!(
                (tokens.limit, tokens.remaining),
                (Some(800_000), Some(799_986))
            );
            assert_eq!(tokens.reset_after, Some(Duration::from_millis(1)));
        }
        (
            "pydantic-ai__test_anthropic_model_thinking_part_redacted_stream.yaml#0",
            Outcome::Stream(events),
        ) => {
            let (text, calls, usage, finish) = stream_summary(events);
            assert!(!text.is_empty());
            assert!(calls.is_empty(), "redacted thinking is not a tool call");
            assert_eq!(finish, Some(FinishReason::Stop));
            let usage = usage.unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (92, 189));
        }
        ("vercel-ai__anthropic-text.chunks.txt#0", Outcome::Stream(events)) => {
            let (_, _, usage, finish) = stream_summary(events);
            assert_eq!(finish, Some(FinishReason::Stop));
            assert_eq!(usage.unwrap().output_tokens, 30);
        }
        (
            "vercel-ai__anthropic-issue-10819-web-fetch-error.1.chunks.txt#0",
            Outcome::Stream(events),
        ) => {
            let (text, calls, _, finish) = stream_summary(events);
            assert!(text.contains("Step 2: web_fetch has returned"), "{text}");
            assert_eq!(
                calls,
                vec![("display_products".to_owned(), "{}".to_owned())],
                "server tools are not client calls"
            );
            assert_eq!(finish, Some(FinishReason::ToolCalls));
        }
        (
            "pydantic-ai__test_anthropic_text_editor_toolset_stream.yaml#0",
            Outcome::Stream(events),
        ) => {
            let (_, calls, usage, finish) = stream_summary(events);
            assert_eq!(calls.len(), 1);
            assert!(json(&calls[0].1).is_object());
            assert_eq!(finish, Some(FinishReason::ToolCalls));
            assert!(usage.is_some_and(|u| u.output_tokens > 0));
        }
        ("tidyllm__messages-e050b5-POST.R#0", Outcome::Complete(r)) => {
            assert_eq!(r.provider, ProviderKind::Anthropic);
            assert!(r.model.starts_with("claude-3-5-sonnet"));
            let quota = r.quota.as_deref().unwrap();
            let requests = quota.requests.unwrap();
            assert_eq!((requests.limit, requests.remaining), (Some(50), Some(49)));
            assert_eq!(quota.tokens.unwrap().limit, Some(40_000));
        }
        (
            "pydantic-ai__test_google_stream_usage_is_live_mid_stream.yaml#0",
            Outcome::Stream(events),
        ) => {
            let (text, _, usage, finish) = stream_summary(events);
            assert!(text.starts_with("1\n2\n3\n"), "{text:?}");
            assert!(
                text.contains("\n14\n"),
                "text split mid-number joins: {text:?}"
            );
            assert_eq!(finish, Some(FinishReason::Stop));
            let usage = usage.unwrap();
            assert_eq!(usage.input_tokens, 18);
            assert_eq!(
                usage.output_tokens - usage.reasoning_tokens,
                80,
                "last cumulative count"
            );
            let usages = events
                .iter()
                .filter(|e| matches!(e, StreamEvent::Usage(_)))
                .count();
            assert_eq!(usages, 3, "usage is live mid-stream");
        }
        ("pydantic-ai__test_google_model_retry.yaml#0", Outcome::Complete(r)) => {
            assert_eq!(r.message.tool_calls.len(), 1);
            assert_eq!(r.message.tool_calls[0].name, "get_capital");
            assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
            assert!(r.usage.is_some_and(|u| u.reasoning_tokens > 0));
        }
        ("vercel-ai__google-tool-call.chunks.txt#0", Outcome::Stream(events)) => {
            let (_, calls, _, finish) = stream_summary(events);
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].0, "weather");
            assert!(json(&calls[0].1)["location"].is_string());
            assert_eq!(finish, Some(FinishReason::ToolCalls));
        }
        ("vercel-ai__google-stream-tool-call-arguments.chunks.txt#0", Outcome::Stream(events)) => {
            let (text, calls, usage, finish) = stream_summary(events);
            assert_eq!(text, "");
            let calls: Vec<(String, Value)> =
                calls.into_iter().map(|(n, a)| (n, json(&a))).collect();
            assert_eq!(
                calls,
                vec![
                    ("getWeather".to_owned(), json(r#"{"location":"Boston"}"#)),
                    (
                        "getWeather".to_owned(),
                        json(r#"{"location":"San Francisco"}"#)
                    ),
                ],
                "two calls streamed in pieces, each ended by an empty functionCall"
            );
            let fragments = events
                .iter()
                .filter(|e| matches!(e, StreamEvent::ToolCallDelta { arguments, .. } if !arguments.is_empty()))
                .count();
            assert!(
                fragments >= 4,
                "arguments arrive as they stream: {events:?}"
            );
            assert_eq!(finish, Some(FinishReason::ToolCalls));
            assert_eq!(usage.unwrap().input_tokens, 26);
        }
        (
            "vercel-ai__google-stream-tool-call-array-arguments-missing-terminal-function-call.chunks.txt#0",
            Outcome::Stream(events),
        ) => {
            let (_, calls, _, finish) = stream_summary(events);
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].0, "writeItems");
            assert_eq!(
                json(&calls[0].1),
                json(
                    r#"{"operations":[
                        {"action":"add","description":"Fresh red apple","itemid":"apple_001","price":0.5},
                        {"action":"add","description":"Ripe yellow banana","itemid":"banana_001","price":0.3}
                    ]}"#
                ),
                "a last part without willContinue ends the call"
            );
            assert_eq!(finish, Some(FinishReason::ToolCalls));
        }
        (
            "vercel-ai__google-vertex-stream-tool-call-arguments-nested.1.chunks.txt#0",
            Outcome::Stream(events),
        ) => {
            let (_, calls, _, finish) = stream_summary(events);
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].0, "cookRecipe");
            let args = json(&calls[0].1);
            let recipe = &args["recipe"];
            assert_eq!(recipe["name"], "Lasagna");
            let ingredients = recipe["ingredients"].as_array().unwrap();
            assert_eq!(ingredients.len(), 10);
            assert_eq!(
                ingredients[0],
                json(r#"{"amount":"16 oz","name":"Lasagna noodles"}"#)
            );
            let steps = recipe["steps"].as_array().unwrap();
            assert_eq!(steps.len(), 10);
            assert_eq!(
                steps[1],
                "Cook lasagna noodles according to package directions, drain and set aside."
            );
            assert_eq!(
                steps[4],
                "In a 9x13 baking dish, spread a thin layer of meat sauce."
            );
            assert_eq!(finish, Some(FinishReason::ToolCalls));
        }
        ("vercel-ai__anthropic-refusal.chunks.txt#0", Outcome::Stream(events)) => {
            let (text, calls, usage, finish) = stream_summary(events);
            assert_eq!((text.as_str(), calls.len()), ("", 0));
            assert_eq!(
                finish,
                Some(FinishReason::ContentFilter),
                "a refusal, not an empty answer"
            );
            assert_eq!(usage.unwrap().output_tokens, 5);
        }
        ("vercel-ai__anthropic-refusal.json#0", Outcome::Complete(r)) => {
            assert_eq!(r.message.text, "");
            assert_eq!(r.finish_reason, Some(FinishReason::ContentFilter));
            assert!(
                r.message
                    .refusal
                    .as_deref()
                    .is_some_and(|why| why.contains("Usage Policy")),
                "{:?}",
                r.message
            );
        }
        ("vercel-ai__azure-model-router.1.chunks.txt#0", Outcome::Stream(events)) => {
            assert_eq!(
                events.first(),
                Some(&StreamEvent::Start {
                    id: Some("chatcmpl-CYPS1lijGoK8gd9lYzY3r9Sx50nbt".into()),
                    model: Some("gpt-5-nano-2025-08-07".into()),
                }),
                "the prompt-filter chunk does not start the stream with an empty id and model"
            );
            let (text, _, usage, finish) = stream_summary(events);
            assert_eq!(text, "Capital of Denmark.");
            assert_eq!(finish, Some(FinishReason::Stop));
            assert_eq!(usage.unwrap().reasoning_tokens, 64);
        }
        ("mirascope__test_refusal__azure_openai_gpt_5_mini__sync.yaml#0", Outcome::Failed(e)) => {
            assert_eq!(e.kind(), ErrorKind::ContentFiltered);
            assert_eq!(e.status(), Some(400));
            assert_eq!(e.code(), Some("content_filter"));
            assert_eq!(e.provider(), Some(ProviderKind::AzureOpenAi));
            assert!(
                e.message().ends_with("[filtered: self_harm (medium)]"),
                "{}",
                e.message()
            );
        }
        ("vercel-ai__google-429-retry-info.json#0", Outcome::Failed(e)) => {
            assert_eq!(
                e.kind(),
                ErrorKind::RateLimited,
                "a per-minute quota clears"
            );
            assert_eq!(e.status(), Some(429));
            assert_eq!(e.code(), Some("RESOURCE_EXHAUSTED"));
            assert_eq!(e.hints().retry_after, Some(Duration::from_millis(34_400)));
        }
        ("vercel-ai__issue-19758-prompt-block.json#0", Outcome::Failed(e)) => {
            assert_eq!(e.kind(), ErrorKind::ContentFiltered);
            assert_eq!(e.code(), Some("PROHIBITED_CONTENT"));
        }
        ("pydantic-ai__test_openai_responses_streaming_usage.yaml#0", Outcome::Stream(events)) => {
            let (text, calls, usage, finish) = stream_summary(events);
            assert_eq!(text, "", "reasoning is not text");
            assert_eq!(
                calls,
                vec![("final_result".to_owned(), r#"{"result":6666}"#.to_owned())],
                "6 fragments join; the reasoning item is no call"
            );
            assert_eq!(finish, Some(FinishReason::ToolCalls));
            let usage = usage.unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (53, 469));
            assert_eq!(usage.reasoning_tokens, 448);
            let first_call = events.iter().find_map(|e| match e {
                StreamEvent::ToolCallDelta { index, id, .. } => Some((*index, id.clone())),
                _ => None,
            });
            assert_eq!(
                first_call,
                Some((0, Some("call_CWXgs68YprAjp6t0371hiPOI".to_owned()))),
                "the call_id, at index 0 although its output index is 1"
            );
            assert!(
                matches!(&events[0], StreamEvent::Start { model: Some(m), .. } if m == "gpt-5-2025-08-07")
            );
        }
        (
            "pydantic-ai__test_openai_responses_moderation_stream.yaml#0",
            Outcome::Stream(events),
        ) => {
            let (text, calls, usage, finish) = stream_summary(events);
            assert_eq!(text, "Paris.");
            assert!(calls.is_empty());
            assert_eq!(finish, Some(FinishReason::Stop));
            let usage = usage.unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (13, 59));
        }
        (
            "pydantic-ai__test_openai_responses_model_simple_response.yaml#0",
            Outcome::Complete(r),
        ) => {
            assert_eq!(r.provider, ProviderKind::OpenAiResponses);
            assert_eq!(r.text(), "The capital of France is Paris.");
            assert_eq!(r.model, "gpt-4o-2024-08-06");
            assert_eq!(r.finish_reason, Some(FinishReason::Stop));
            let usage = r.usage.unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (14, 8));
            assert_eq!(usage.total(), 22);
        }
        ("pydantic-ai__test_openai_responses_model_http_error.yaml#0", Outcome::Failed(e)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidRequest);
            assert_eq!(e.status(), Some(400));
            assert_eq!(e.code(), Some("decimal_below_min_value"));
            assert!(e.message().starts_with("Invalid 'temperature'"), "{e}");
        }
        ("vercel-ai__openai-error.1.chunks.txt#0", Outcome::Stream(events)) => {
            let errors: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::Error(e) => Some(e),
                    _ => None,
                })
                .collect();
            let [error] = errors.as_slice() else {
                panic!("one error: {events:?}")
            };
            assert_eq!(error.kind(), ErrorKind::QuotaExhausted, "nested `error`");
            assert_eq!(error.code(), Some("insufficient_quota"));
            assert!(
                error
                    .message()
                    .starts_with("You exceeded your current quota")
            );
            assert!(
                matches!(&events[0], StreamEvent::Start { model: Some(m), .. } if m == "gpt-5-nano-2025-08-07")
            );
        }
        (name, outcome) if NAMED.contains(&name) => {
            panic!("{name}: unexpected outcome {outcome:?}")
        }
        _ => {}
    }
}

const NAMED: &[&str] = &[
    "pydantic-ai__test_run_stream_sync_streams_real_model.yaml#0",
    "pydantic-ai__test_run_stream_sync_streams_real_model.yaml#1",
    "pydantic-ai__test_dbos_model_stream_direct.yaml#0",
    "pydantic-ai__test_openai_moderation_stream.yaml#0",
    "pydantic-ai__test_reasoning_model_with_temperature.yaml#0",
    "pydantic-ai__test_openai_web_search_tool_model_not_supported.yaml#0",
    "tidyllm__completions-f382f0-POST.R#0",
    "pydantic-ai__test_anthropic_model_thinking_part_redacted_stream.yaml#0",
    "vercel-ai__anthropic-text.chunks.txt#0",
    "vercel-ai__anthropic-issue-10819-web-fetch-error.1.chunks.txt#0",
    "pydantic-ai__test_anthropic_text_editor_toolset_stream.yaml#0",
    "tidyllm__messages-e050b5-POST.R#0",
    "pydantic-ai__test_google_stream_usage_is_live_mid_stream.yaml#0",
    "pydantic-ai__test_google_model_retry.yaml#0",
    "vercel-ai__google-tool-call.chunks.txt#0",
    "vercel-ai__google-429-retry-info.json#0",
    "vercel-ai__issue-19758-prompt-block.json#0",
    "vercel-ai__google-stream-tool-call-arguments.chunks.txt#0",
    "vercel-ai__google-stream-tool-call-array-arguments-missing-terminal-function-call.chunks.txt#0",
    "vercel-ai__google-vertex-stream-tool-call-arguments-nested.1.chunks.txt#0",
    "vercel-ai__anthropic-refusal.chunks.txt#0",
    "vercel-ai__anthropic-refusal.json#0",
    "vercel-ai__azure-model-router.1.chunks.txt#0",
    "mirascope__test_refusal__azure_openai_gpt_5_mini__sync.yaml#0",
    "pydantic-ai__test_openai_responses_streaming_usage.yaml#0",
    "pydantic-ai__test_openai_responses_moderation_stream.yaml#0",
    "pydantic-ai__test_openai_responses_model_simple_response.yaml#0",
    "pydantic-ai__test_openai_responses_model_http_error.yaml#0",
    "vercel-ai__openai-error.1.chunks.txt#0",
];

#[tokio::test]
async fn every_recording_decodes_through_its_adapter() {
    let exchanges = recordings();
    let mut seen = BTreeMap::new();
    for exchange in &exchanges {
        let (outcome, skipped) = run(exchange, &[]).await;
        check_any(exchange, &outcome, skipped);
        check_named(exchange, &outcome);
        seen.insert(exchange.name.clone(), ());
    }
    for name in NAMED {
        assert!(
            seen.contains_key(*name),
            "the named recording {name} was found"
        );
    }
}

#[tokio::test]
async fn every_recorded_stream_decodes_the_same_whatever_the_chunk_boundaries() {
    for exchange in recordings().iter().filter(|e| e.streamed) {
        let (whole, _) = run(exchange, &[]).await;
        for sizes in [&[1][..], &[2, 3], &[7, 1, 13], &[64, 5]] {
            let (split, skipped) = run(exchange, sizes).await;
            assert_eq!(skipped, 0, "{}", exchange.name);
            match (&whole, &split) {
                (Outcome::Stream(a), Outcome::Stream(b)) => {
                    assert_eq!(a, b, "{} split {sizes:?}", exchange.name)
                }
                other => panic!("{}: {other:?}", exchange.name),
            }
        }
    }
}

#[tokio::test]
async fn a_recorded_stream_cut_short_ends_in_a_truncation_error() {
    // Every complete recorded stream, cut before its last event, must not pass for complete.
    for exchange in recordings()
        .iter()
        .filter(|e| e.streamed && e.status == 200)
    {
        let text = body_text(exchange);
        let marker = match exchange.provider {
            Provider::OpenAi | Provider::Azure => "finish_reason\":\"",
            Provider::OpenAiResponses => "\"type\":\"response.completed\"",
            Provider::Anthropic => "message_stop",
            Provider::Gemini => "finishReason",
        };
        let Some(at) = text.find(marker) else {
            continue;
        };
        // Cut at the start of the line that holds the marker.
        let cut = text[..at].rfind("data:").unwrap();
        let mut short = exchange.clone();
        short.body = text.as_bytes()[..cut].to_vec();
        let (outcome, _) = run(&short, &[]).await;
        let Outcome::Stream(events) = outcome else {
            panic!("{}", exchange.name)
        };
        assert!(
            matches!(events.last(), Some(StreamEvent::Error(e)) if e.kind() == ErrorKind::StreamTruncated),
            "{}: {:?}",
            exchange.name,
            events.last()
        );
        assert!(
            !events.iter().any(|e| matches!(e, StreamEvent::Finish(_))),
            "{}",
            exchange.name
        );
    }
}
