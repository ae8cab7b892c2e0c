//! The OpenAI Chat Completions wire format, server side: inbound request bodies to
//! [`ChatRequest`], and [`ChatResponse`] / [`StreamEvent`](seawall_core::StreamEvent) to response bodies and SSE chunks.
//!
//! The client side of the same format lives in `seawall_providers::openai`; the two meet
//! in the round-trip tests, where the gateway's output is decoded by that adapter and by
//! the official SDK.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use seawall_core::{
    ChatRequest, ChatResponse, ContentPart, Cost, ErrorKind, FinishReason, ImageDetail,
    ImageSource, InvalidRequest, Message, ResponseFormat, Role, ToolCall, ToolChoice,
    ToolDefinition, Usage,
};

/// A request body the gateway cannot accept, with the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// The offending parameter, when one is to blame.
    pub param: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl From<InvalidRequest> for BadRequest {
    fn from(invalid: InvalidRequest) -> Self {
        Self {
            message: format!("{}: {}", invalid.field, invalid.problem),
            param: Some(invalid.field),
        }
    }
}

fn bad(param: impl Into<String>, message: impl Into<String>) -> BadRequest {
    BadRequest {
        param: Some(param.into()),
        message: message.into(),
    }
}

mod request;
mod text_or_list;

use request::InRequest;
use text_or_list::{InContent, Stop};

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<InContent>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<InToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InPart {
    Text { text: String },
    ImageUrl { image_url: InImageUrl },
}

#[derive(Deserialize)]
struct InImageUrl {
    url: String,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct InToolCall {
    id: String,
    function: InFunctionCall,
}

#[derive(Deserialize)]
struct InFunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct InTool {
    function: InFunction,
}

#[derive(Deserialize)]
struct InFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

/// A decoded inbound call: the request and what the client asked of the stream.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The unified request.
    pub request: ChatRequest,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

/// The first top-level field of a body that is JSON but not a valid request, whose value has
/// the wrong type (or that is missing): the `param` of the error, as OpenAI names it.
fn misplaced_param(body: &[u8]) -> Option<String> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    for required in ["model", "messages"] {
        if !fields.contains_key(required) {
            return Some(required.to_owned());
        }
    }
    let wrong = |name: &str, value: &Value| match name {
        "model" | "user" => !value.is_string(),
        "messages" | "tools" => !value.is_array(),
        "max_tokens" | "max_completion_tokens" => !(value.is_u64() || value.is_null()),
        "temperature" | "top_p" => !(value.is_number() || value.is_null()),
        "stream" => !(value.is_boolean() || value.is_null()),
        "stop" => !(value.is_string() || value.is_array() || value.is_null()),
        "stream_options" | "response_format" => !(value.is_object() || value.is_null()),
        _ => false,
    };
    fields
        .iter()
        .find(|(name, value)| wrong(name, value))
        .map(|(name, _)| name.clone())
        .or_else(|| {
            // A message of the wrong shape.
            let messages = fields.get("messages")?.as_array()?;
            messages.iter().enumerate().find_map(|(i, message)| {
                let role = message.get("role").map(Value::is_string);
                (role != Some(true)).then(|| format!("messages[{i}]"))
            })
        })
}

/// Decodes and validates an OpenAI Chat Completions request body.
///
/// Fields the unified model has no place for (`n`, `seed`, `logprobs`, ...) are ignored
/// rather than forwarded, because the call may be served by a provider that rejects them.
pub fn decode_request(body: &[u8]) -> Result<Inbound, BadRequest> {
    let raw: InRequest = serde_json::from_slice(body).map_err(|e| BadRequest {
        param: misplaced_param(body),
        message: format!("invalid request body: {e}"),
    })?;
    let mut messages = Vec::with_capacity(raw.messages.len());
    for (i, m) in raw.messages.into_iter().enumerate() {
        messages.push(decode_message(i, m)?);
    }
    let mut request = ChatRequest::new(raw.model, messages);
    // The name the client used, for an error about it.
    let max_tokens_name = if raw.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    request.max_output_tokens = raw.max_completion_tokens.or(raw.max_tokens);
    request.temperature = raw.temperature;
    request.top_p = raw.top_p;
    request.stop = match raw.stop {
        None => Arc::new([]),
        Some(Stop::One(s)) => Arc::new([s]),
        Some(Stop::Many(v)) => v.into(),
    };
    request.stream = raw.stream.unwrap_or(false);
    if let Some(tools) = raw.tools {
        request.tools = tools
            .into_iter()
            .map(|t| {
                ToolDefinition::new(
                    t.function.name,
                    t.function.description.unwrap_or_default(),
                    t.function
                        .parameters
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                )
            })
            .collect();
    }
    request.tool_choice = match raw.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(bad("tool_choice", format!("unknown tool_choice {other:?}"))),
        }),
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Some(ToolChoice::Tool(name.to_owned())),
            None => {
                return Err(bad(
                    "tool_choice",
                    "expected a string or {\"function\":{\"name\"}}",
                ));
            }
        },
    };
    request.response_format = match raw.response_format {
        None | Some(Value::Null) => ResponseFormat::Text,
        Some(v) => match v.get("type").and_then(Value::as_str) {
            Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => {
                let schema = v.get("json_schema").cloned().unwrap_or(Value::Null);
                ResponseFormat::JsonSchema {
                    name: schema
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("response")
                        .to_owned(),
                    strict: schema
                        .get("strict")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    schema: schema.get("schema").cloned().unwrap_or(Value::Null),
                }
            }
            _ => return Err(bad("response_format", "unknown response_format type")),
        },
    };
    request.user = raw.user.map(Into::into);
    if !raw.rest.is_empty() {
        request.extra = Arc::new(raw.rest);
        request.extra_for = Some(seawall_core::ProviderKind::OpenAi);
    }
    request.validate().map_err(|invalid| {
        let mut bad = BadRequest::from(invalid);
        // The unified model's name for it is not the client's.
        if bad.param.as_deref() == Some("max_output_tokens") {
            bad.param = Some(max_tokens_name.to_owned());
            bad.message = bad
                .message
                .replacen("max_output_tokens", max_tokens_name, 1);
        }
        bad
    })?;
    let include_usage = raw
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Ok(Inbound {
        request,
        include_usage,
    })
}

fn decode_message(i: usize, m: InMessage) -> Result<Message, BadRequest> {
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(bad(
                format!("messages[{i}].role"),
                format!("unknown role {other:?}"),
            ));
        }
    };
    let content = match m.content {
        None => Vec::new(),
        Some(InContent::Text(text)) => vec![ContentPart::text(text)],
        Some(InContent::Parts(parts)) => parts
            .into_iter()
            .map(|part| match part {
                InPart::Text { text } => ContentPart::text(text),
                InPart::ImageUrl { image_url } => ContentPart::Image {
                    source: ImageSource::Url { url: image_url.url },
                    detail: match image_url.detail.as_deref() {
                        Some("low") => Some(ImageDetail::Low),
                        Some("high") => Some(ImageDetail::High),
                        Some("auto") => Some(ImageDetail::Auto),
                        _ => None,
                    },
                    cache_control: None,
                },
            })
            .collect(),
    };
    Ok(Message {
        role,
        content,
        name: m.name,
        tool_calls: m
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect(),
        tool_call_id: m.tool_call_id,
    })
}

/// The OpenAI name of a finish reason.
pub fn finish_reason(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(other) => other,
        _ => "stop",
    }
}

/// The response bodies and chunks, as typed structs that borrow what they write. Fields are
/// declared in name order, the order a `serde_json::Map` writes them in.
mod out {
    use serde::Serialize;

    use seawall_core::{ToolCall, Usage};

    #[derive(Serialize)]
    pub(super) struct Completion<'a, C> {
        pub(super) choices: C,
        pub(super) created: u64,
        pub(super) id: &'a str,
        pub(super) model: &'a str,
        pub(super) object: &'static str,
        /// seawall's own fields, under one name the SDKs ignore (keys in `Value` order).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) seawall: Option<Seawall>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) usage: Option<OutUsage>,
    }

    /// `"seawall": {"cost_usd": ...}`: what the call cost, `null` when its model has no
    /// price.
    #[derive(Serialize)]
    pub(super) struct Seawall {
        pub(super) cost_usd: Option<f64>,
    }

    #[derive(Serialize)]
    pub(super) struct Choice<'a> {
        pub(super) finish_reason: &'a str,
        pub(super) index: u32,
        pub(super) logprobs: (),
        pub(super) message: Message<'a>,
    }

    #[derive(Serialize)]
    pub(super) struct Message<'a> {
        pub(super) content: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) refusal: Option<&'a str>,
        pub(super) role: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) tool_calls: Option<ToolCalls<'a>>,
    }

    pub(super) struct ToolCalls<'a>(pub(super) &'a [ToolCall]);

    impl Serialize for ToolCalls<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(|call| Call {
                function: Function {
                    arguments: &call.arguments,
                    name: Some(&call.name),
                },
                id: Some(&call.id),
                index: None,
                kind: Some("function"),
            }))
        }
    }

    /// A tool call: whole in a response, a fragment (with its `index`) in a chunk.
    #[derive(Serialize)]
    pub(super) struct Call<'a> {
        pub(super) function: Function<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) index: Option<u32>,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub(super) kind: Option<&'static str>,
    }

    #[derive(Serialize)]
    pub(super) struct Function<'a> {
        pub(super) arguments: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) name: Option<&'a str>,
    }

    #[derive(Serialize)]
    pub(super) struct ChunkChoice<'a, D> {
        pub(super) delta: D,
        pub(super) finish_reason: Option<&'a str>,
        pub(super) index: u32,
        pub(super) logprobs: (),
    }

    #[derive(Serialize)]
    pub(super) struct RoleDelta {
        pub(super) content: &'static str,
        pub(super) role: &'static str,
    }

    #[derive(Serialize)]
    pub(super) struct TextDelta<'a> {
        pub(super) content: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct ToolCallDelta<'a> {
        pub(super) tool_calls: [Call<'a>; 1],
    }

    #[derive(Serialize)]
    pub(super) struct EmptyDelta {}

    #[derive(Serialize)]
    pub(super) struct OutUsage {
        completion_tokens: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        completion_tokens_details: Option<CompletionDetails>,
        prompt_tokens: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt_tokens_details: Option<PromptDetails>,
        total_tokens: u64,
    }

    #[derive(Serialize)]
    struct CompletionDetails {
        reasoning_tokens: u64,
    }

    #[derive(Serialize)]
    struct PromptDetails {
        cached_tokens: u64,
    }

    impl From<&Usage> for OutUsage {
        fn from(usage: &Usage) -> Self {
            Self {
                completion_tokens: usage.output_tokens,
                completion_tokens_details: (usage.reasoning_tokens > 0).then_some(
                    CompletionDetails {
                        reasoning_tokens: usage.reasoning_tokens,
                    },
                ),
                prompt_tokens: usage.input_tokens,
                prompt_tokens_details: (usage.cached_input_tokens > 0).then_some(PromptDetails {
                    cached_tokens: usage.cached_input_tokens,
                }),
                total_tokens: usage.total(),
            }
        }
    }
}

/// The body of a complete response. `model` is the model that answered.
pub fn encode_response(response: &ChatResponse, id: &str, model: &str, created: u64) -> Vec<u8> {
    let message = &response.message;
    let body = out::Completion {
        choices: [out::Choice {
            finish_reason: response
                .finish_reason
                .as_ref()
                .map(finish_reason)
                .unwrap_or("stop"),
            index: 0,
            logprobs: (),
            message: out::Message {
                content: if message.text.is_empty() && !message.tool_calls.is_empty() {
                    None
                } else {
                    Some(&message.text)
                },
                refusal: message.refusal.as_deref(),
                role: "assistant",
                tool_calls: (!message.tool_calls.is_empty())
                    .then_some(out::ToolCalls(&message.tool_calls)),
            },
        }],
        created,
        id,
        model,
        object: "chat.completion",
        usage: response.usage.as_ref().map(out::OutUsage::from),
        seawall: Some(out::Seawall {
            cost_usd: response.cost.map(Cost::usd),
        }),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What every chunk of one stream repeats.
#[derive(Debug, Clone)]
pub struct ChunkHead {
    /// The completion id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
}

impl ChunkHead {
    fn chunk<C: Serialize>(&self, choices: C, usage: Option<&Usage>) -> out::Completion<'_, C> {
        out::Completion {
            choices,
            created: self.created,
            id: &self.id,
            model: &self.model,
            object: "chat.completion.chunk",
            usage: usage.map(out::OutUsage::from),
            seawall: None,
        }
    }

    fn delta<D: Serialize>(&self, out: &mut Vec<u8>, delta: D, finish: Option<&str>) {
        let choice = out::ChunkChoice {
            delta,
            finish_reason: finish,
            index: 0,
            logprobs: (),
        };
        sse(out, &self.chunk([choice], None));
    }

    /// The first chunk: the assistant's role.
    pub fn role(&self, out: &mut Vec<u8>) {
        let delta = out::RoleDelta {
            content: "",
            role: "assistant",
        };
        self.delta(out, delta, None);
    }

    /// A text fragment.
    pub fn text(&self, out: &mut Vec<u8>, text: &str) {
        self.delta(out, out::TextDelta { content: text }, None);
    }

    /// A tool call fragment.
    pub fn tool_call(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        let call = out::Call {
            function: out::Function { arguments, name },
            id,
            index: Some(index),
            kind: id.map(|_| "function"),
        };
        let delta = out::ToolCallDelta { tool_calls: [call] };
        self.delta(out, delta, None);
    }

    /// The chunk that carries the finish reason.
    pub fn finish(&self, out: &mut Vec<u8>, reason: &FinishReason) {
        self.delta(out, out::EmptyDelta {}, Some(finish_reason(reason)));
    }

    /// The usage chunk (`stream_options.include_usage`): no choices.
    /// The usage chunk, with the call's cost (`None`: unknown) in the `seawall` field.
    pub fn usage(&self, out: &mut Vec<u8>, usage: &Usage, cost: Option<Cost>) {
        let mut chunk = self.chunk([(); 0], Some(usage));
        chunk.seawall = Some(out::Seawall {
            cost_usd: cost.map(Cost::usd),
        });
        sse(out, &chunk);
    }
}

/// `data: [DONE]`.
pub fn done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// An in-band stream error event (OpenAI's shape for errors after the stream started).
pub fn stream_error(out: &mut Vec<u8>, message: &str, kind: ErrorKind) {
    let body = error_body(message, "server_error", None, Some(kind.as_str()));
    sse(out, &body);
}

fn sse(out: &mut Vec<u8>, value: &impl Serialize) {
    out.extend_from_slice(b"data: ");
    // Writing these values into a `Vec` cannot fail: every map key is a string.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

/// An OpenAI-shaped error body: `{"error":{"message","type","param","code"}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

#[cfg(test)]
mod tests {
    use seawall_core::{AssistantMessage, ProviderKind};

    use super::*;

    /// The JSON of one SSE event, checked to be written in the key order (and number
    /// format) a `serde_json::Value` writes, so the bytes are those of a `Value`-built chunk.
    fn event(sse: &[u8]) -> Value {
        let json = sse
            .strip_prefix(b"data: ")
            .and_then(|rest| rest.strip_suffix(b"\n\n"))
            .expect("one SSE event");
        json_in_key_order(json)
    }

    fn json_in_key_order(json: &[u8]) -> Value {
        let value: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(
            serde_json::to_vec(&value).unwrap(),
            json,
            "{}",
            String::from_utf8_lossy(json)
        );
        value
    }

    fn head() -> ChunkHead {
        ChunkHead {
            id: "chatcmpl-1".into(),
            model: "m\"1".into(),
            created: 1_700_000_000,
        }
    }

    fn chunk(choices: Value) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": "m\"1", "choices": choices})
    }

    fn delta(delta: Value, finish: Option<&str>) -> Value {
        chunk(json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]))
    }

    #[test]
    fn unmodelled_fields_are_passed_through_for_the_chat_dialect_only() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],
            "seed":7,"logprobs":true,"temperature":0.5}"#;
        let request = decode_request(body).unwrap().request;
        assert_eq!(
            *request.extra,
            *json!({"seed": 7, "logprobs": true}).as_object().unwrap()
        );
        assert_eq!(request.extra_for, Some(seawall_core::ProviderKind::OpenAi));
        assert_eq!(
            request.temperature,
            Some(0.5),
            "modelled, not passed through"
        );

        let plain = decode_request(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let plain = plain.unwrap().request;
        assert!(plain.extra.is_empty());
        assert_eq!(plain.extra_for, None);
    }

    #[test]
    fn the_top_level_reads_as_the_derived_struct_did() {
        let hi = r#""messages":[{"role":"user","content":"hi"}]"#;
        let twice = format!(r#"{{"model":"a","model":"b",{hi}}}"#);
        let bad = decode_request(twice.as_bytes()).unwrap_err();
        assert!(bad.message.contains("duplicate field `model`"), "{bad:?}");
        let missing = decode_request(format!("{{{hi}}}").as_bytes()).unwrap_err();
        assert!(
            missing.message.contains("missing field `model`"),
            "{missing:?}"
        );
        let wrong =
            decode_request(format!(r#"{{"model":"m","temperature":"hot",{hi}}}"#).as_bytes());
        assert_eq!(wrong.unwrap_err().param.as_deref(), Some("temperature"));
        let nulls = format!(
            r#"{{"model":"m","max_tokens":null,"stream":null,"tools":null,"seed":1,"seed":2,{hi}}}"#
        );
        let request = decode_request(nulls.as_bytes()).unwrap().request;
        assert_eq!((request.max_output_tokens, request.stream), (None, false));
        assert_eq!(
            request.extra["seed"], 2,
            "a repeated unknown field: the last holds"
        );
        assert!(
            decode_request(b"[\"m\", []]").is_err(),
            "an array is not a request"
        );
    }

    #[test]
    fn stop_and_content_take_a_string_or_an_array() {
        let hi = r#""messages":[{"role":"user","content":"hi"}]"#;
        let stop = |stop: &str| {
            decode_request(format!(r#"{{"model":"m","stop":{stop},{hi}}}"#).as_bytes())
        };
        assert_eq!(*stop(r#""END""#).unwrap().request.stop, ["END".to_owned()]);
        assert_eq!(
            *stop(r#"["a","b"]"#).unwrap().request.stop,
            ["a".to_owned(), "b".to_owned()]
        );
        assert!(stop("null").unwrap().request.stop.is_empty());
        let wrong = stop("5").unwrap_err();
        assert_eq!(wrong.param.as_deref(), Some("stop"));
        assert!(
            wrong
                .message
                .contains("invalid type: integer `5`, expected a string or an array of strings"),
            "{wrong:?}"
        );
        assert!(stop(r#"["a",5]"#).is_err());

        let content = |content: &str| {
            decode_request(
                format!(r#"{{"model":"m","messages":[{{"role":"user","content":{content}}}]}}"#)
                    .as_bytes(),
            )
        };
        let parts = content(r#"[{"type":"text","text":"hi"}]"#).unwrap().request;
        assert_eq!(parts.messages[0], Message::user("hi"));
        let wrong = content(r#"{"type":"text","text":"hi"}"#).unwrap_err();
        assert!(
            wrong
                .message
                .contains("invalid type: map, expected a string or an array of content parts"),
            "{wrong:?}"
        );
    }

    #[test]
    fn chunks() {
        let head = head();
        let mut out = Vec::new();
        head.role(&mut out);
        assert_eq!(
            event(&out),
            delta(json!({"role": "assistant", "content": ""}), None)
        );

        out.clear();
        head.text(&mut out, "caf\u{e9} \"\n");
        assert_eq!(
            event(&out),
            delta(json!({"content": "caf\u{e9} \"\n"}), None)
        );

        out.clear();
        head.tool_call(&mut out, 2, Some("call_1"), Some("weather"), "{\"ci");
        assert_eq!(
            event(&out),
            delta(
                json!({"tool_calls": [{"index": 2, "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"ci"}}]}),
                None
            )
        );

        out.clear();
        head.tool_call(&mut out, 0, None, None, "ty\"}");
        assert_eq!(
            event(&out),
            delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "ty\"}"}}]}),
                None
            )
        );

        out.clear();
        head.finish(&mut out, &FinishReason::Other("pause_turn".into()));
        assert_eq!(event(&out), delta(json!({}), Some("pause_turn")));

        out.clear();
        head.usage(&mut out, &Usage::new(10, 5), None);
        let mut expected = chunk(json!([]));
        expected["usage"] =
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
        expected["seawall"] = json!({"cost_usd": null});
        assert_eq!(event(&out), expected);

        out.clear();
        let usage = Usage::new(10, 5).with_cached_input(4).with_reasoning(3);
        head.usage(&mut out, &usage, Some(Cost::from_nanos(1_500)));
        expected["seawall"] = json!({"cost_usd": 0.0000015});
        expected["usage"] = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 3}});
        assert_eq!(event(&out), expected);
    }

    #[test]
    fn responses() {
        let text = ChatResponse::new(
            ProviderKind::OpenAi,
            "ignored",
            AssistantMessage::text("Hi \u{1F44B}"),
            FinishReason::Stop,
        );
        assert_eq!(
            json_in_key_order(&encode_response(&text, "chatcmpl-1", "m", 7)),
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                    "message": {"role": "assistant", "content": "Hi \u{1F44B}"}}],
                "seawall": {"cost_usd": null}})
        );

        let mut calls = ChatResponse::new(
            ProviderKind::OpenAi,
            "ignored",
            {
                let mut message = AssistantMessage::tool_calls([ToolCall {
                    id: "call_1".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                }]);
                message.refusal = Some("no".into());
                message
            },
            FinishReason::ToolCalls,
        );
        calls.finish_reason = None;
        calls.usage = Some(Usage::new(3, 2).with_reasoning(1));
        calls.cost = Some(Cost::from_usd(0.25));
        assert_eq!(
            json_in_key_order(&encode_response(&calls, "chatcmpl-2", "m", 7)),
            json!({"id": "chatcmpl-2", "object": "chat.completion", "created": 7, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                    "message": {"role": "assistant", "content": null, "refusal": "no",
                        "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                    "completion_tokens_details": {"reasoning_tokens": 1}},
                "seawall": {"cost_usd": 0.25}})
        );
    }
}
