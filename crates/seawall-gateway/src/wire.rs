//! The OpenAI Chat Completions wire format, server side: inbound request bodies to
//! [`ChatRequest`], and [`ChatResponse`] / [`StreamEvent`](seawall_core::StreamEvent) to response bodies and SSE chunks.
//!
//! The client side of the same format lives in `seawall_providers::openai`; the two meet
//! in the round-trip tests, where the gateway's output is decoded by that adapter and by
//! the official SDK.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use seawall_core::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, ImageDetail, ImageSource, InvalidRequest,
    LlmError, Message, ResponseFormat, Role, ToolCall, ToolChoice, ToolDefinition, Usage,
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

#[derive(Deserialize)]
struct InRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    tools: Option<Vec<InTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

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
#[serde(untagged)]
enum InContent {
    Text(String),
    Parts(Vec<InPart>),
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

/// Decodes and validates an OpenAI Chat Completions request body.
///
/// Fields the unified model has no place for (`n`, `seed`, `logprobs`, ...) are ignored
/// rather than forwarded, because the call may be served by a provider that rejects them.
pub fn decode_request(body: &[u8]) -> Result<Inbound, BadRequest> {
    let raw: InRequest = serde_json::from_slice(body).map_err(|e| BadRequest {
        param: None,
        message: format!("invalid request body: {e}"),
    })?;
    let mut messages = Vec::with_capacity(raw.messages.len());
    for (i, m) in raw.messages.into_iter().enumerate() {
        messages.push(decode_message(i, m)?);
    }
    let mut request = ChatRequest::new(raw.model, messages);
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
    request.validate()?;
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
    }
}

fn usage_json(usage: &Usage) -> Value {
    let mut value = json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total(),
    });
    if usage.cached_input_tokens > 0 {
        value["prompt_tokens_details"] = json!({"cached_tokens": usage.cached_input_tokens});
    }
    if usage.reasoning_tokens > 0 {
        value["completion_tokens_details"] = json!({"reasoning_tokens": usage.reasoning_tokens});
    }
    value
}

fn tool_calls_json(calls: &[ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect(),
    )
}

/// The body of a complete response. `model` is the model that answered.
pub fn encode_response(response: &ChatResponse, id: &str, model: &str, created: u64) -> Vec<u8> {
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert(
        "content".into(),
        if response.message.text.is_empty() && !response.message.tool_calls.is_empty() {
            Value::Null
        } else {
            response.message.text.clone().into()
        },
    );
    if !response.message.tool_calls.is_empty() {
        message.insert(
            "tool_calls".into(),
            tool_calls_json(&response.message.tool_calls),
        );
    }
    if let Some(refusal) = &response.message.refusal {
        message.insert("refusal".into(), refusal.clone().into());
    }
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": response.finish_reason.as_ref().map(finish_reason).unwrap_or("stop"),
            "logprobs": null,
        }],
    });
    if let Some(usage) = &response.usage {
        body["usage"] = usage_json(usage);
    }
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
    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    fn delta(&self, delta: Value, finish: Option<&str>) -> Value {
        self.chunk(json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]))
    }

    /// The first chunk: the assistant's role.
    pub fn role(&self, out: &mut Vec<u8>) {
        sse(
            out,
            &self.delta(json!({"role": "assistant", "content": ""}), None),
        );
    }

    /// A text fragment.
    pub fn text(&self, out: &mut Vec<u8>, text: &str) {
        sse(out, &self.delta(json!({"content": text}), None));
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
        let mut call = json!({"index": index, "function": {"arguments": arguments}});
        if let Some(id) = id {
            call["id"] = id.into();
            call["type"] = "function".into();
        }
        if let Some(name) = name {
            call["function"]["name"] = name.into();
        }
        sse(out, &self.delta(json!({"tool_calls": [call]}), None));
    }

    /// The chunk that carries the finish reason.
    pub fn finish(&self, out: &mut Vec<u8>, reason: &FinishReason) {
        sse(out, &self.delta(json!({}), Some(finish_reason(reason))));
    }

    /// The usage chunk (`stream_options.include_usage`): no choices.
    pub fn usage(&self, out: &mut Vec<u8>, usage: &Usage) {
        let mut chunk = self.chunk(json!([]));
        chunk["usage"] = usage_json(usage);
        sse(out, &chunk);
    }
}

/// `data: [DONE]`.
pub fn done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// An in-band stream error event (OpenAI's shape for errors after the stream started).
pub fn stream_error(out: &mut Vec<u8>, error: &LlmError) {
    let body = error_body(
        error.message(),
        "server_error",
        None,
        Some(error.kind().as_str()),
    );
    sse(out, &body);
}

fn sse(out: &mut Vec<u8>, value: &Value) {
    out.extend_from_slice(b"data: ");
    // Writing a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

/// An OpenAI-shaped error body: `{"error":{"message","type","param","code"}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}
