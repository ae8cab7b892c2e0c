//! Anthropic Messages.
//!
//! - `POST {base_url}/v1/messages` with either auth form ([`AnthropicAuth`]):
//!   `x-api-key` + `anthropic-version: 2023-06-01` (the default, what most clients and all
//!   recordings use) or `Authorization: Bearer` + `anthropic-version: 2026-10-21` (the
//!   newest SDKs).
//! - System messages go to the top-level `system`; `max_tokens` is required, so
//!   [`AnthropicConfig::default_max_tokens`] fills it when the request has no cap; tool
//!   calls become `tool_use` blocks and tool results `tool_result` blocks in a user turn;
//!   [`seawall_core::CacheControl`] markers on content parts and tools become
//!   `cache_control`.
//! - Errors: `{"type":"error","error":{type,message,details},"request_id"}`; a 429 whose
//!   `details.error_code` is `enforced_spend_limit_reached` (or a `billing_error`) is
//!   [`ErrorKind::QuotaExhausted`], `prompt is too long` and `exceed context limit` are
//!   [`ErrorKind::ContextLengthExceeded`], `overloaded_error` (529) is
//!   [`ErrorKind::Overloaded`].
//! - `stop_reason: "refusal"` (streamed or not) is [`FinishReason::ContentFilter`], so a
//!   refusal is told apart from an empty answer; a complete response also carries
//!   `stop_details.explanation` as [`AssistantMessage::refusal`].
//!
//! ```
//! use seawall_providers::{Anthropic, AnthropicAuth, AnthropicConfig, ApiKey};
//! # fn demo<S>(http: S) {
//! let anthropic = Anthropic::new(
//!     http,
//!     AnthropicConfig::new(ApiKey::new("sk-ant-..."))
//!         .with_base_url("http://127.0.0.1:8080")
//!         .with_auth(AnthropicAuth::Bearer),
//! );
//! # }
//! ```

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::Full;
use seawall_core::{
    AssistantMessage, CacheControl, ChatRequest, ChatResponse, ContentPart, ErrorKind,
    FinishReason, ImageSource, LlmError, ProviderKind, Role, StreamEvent, ToolCall, ToolChoice,
    Usage,
};
use serde_json::{Map, Value, json};

use crate::adapter::Adapter;
use crate::dialect::{Dialect, Flow, Malformed, StreamDecoder, header_text};
use crate::encode::refuse_plain_data_urls;
use crate::error::{decode_error, from_response, mentions_context_length, non_json_message};
use crate::json::{get, is_object, join_url, merge_extra, post, str_at};
use crate::key::ApiKey;
use crate::sse::SseEvent;

/// Anthropic's API base URL.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// The `max_tokens` sent when a request sets no output cap.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Which of the two auth forms to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnthropicAuth {
    /// `x-api-key: <key>` with `anthropic-version: 2023-06-01`.
    #[default]
    XApiKey,
    /// `Authorization: Bearer <key>` with `anthropic-version: 2026-10-21`.
    Bearer,
}

impl AnthropicAuth {
    /// The `anthropic-version` that goes with this auth form.
    pub const fn version(self) -> &'static str {
        match self {
            Self::XApiKey => "2023-06-01",
            Self::Bearer => "2026-10-21",
        }
    }
}

/// How to reach Anthropic.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// The base URL, without `/v1`.
    pub base_url: String,
    /// The key.
    pub api_key: ApiKey,
    /// The auth form.
    pub auth: AnthropicAuth,
    /// An `anthropic-version` other than the one of [`auth`](Self::auth).
    pub version: Option<String>,
    /// An `anthropic-beta` header value.
    pub beta: Option<String>,
    /// The `max_tokens` sent when a request sets no output cap.
    pub default_max_tokens: u32,
}

impl AnthropicConfig {
    /// Anthropic at [`ANTHROPIC_BASE_URL`] with `key`, `x-api-key` auth and
    /// [`DEFAULT_MAX_TOKENS`].
    pub fn new(key: impl Into<ApiKey>) -> Self {
        Self {
            base_url: ANTHROPIC_BASE_URL.to_owned(),
            api_key: key.into(),
            auth: AnthropicAuth::default(),
            version: None,
            beta: None,
            default_max_tokens: DEFAULT_MAX_TOKENS,
        }
    }

    /// Sets the base URL.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the auth form.
    #[must_use]
    pub fn with_auth(mut self, auth: AnthropicAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the `anthropic-beta` header.
    #[must_use]
    pub fn with_beta(mut self, beta: impl Into<String>) -> Self {
        self.beta = Some(beta.into());
        self
    }

    /// Sets the default `max_tokens`.
    #[must_use]
    pub fn with_default_max_tokens(mut self, max: u32) -> Self {
        self.default_max_tokens = max;
        self
    }
}

dialect! {
    /// The Anthropic Messages wire format.
    AnthropicDialect, AnthropicConfig
}

/// An adapter for Anthropic Messages over the HTTP service `S`.
pub type Anthropic<S> = Adapter<AnthropicDialect, S>;

fn invalid(problem: impl Into<String>) -> LlmError {
    LlmError::new(ErrorKind::InvalidRequest, problem).with_provider(ProviderKind::Anthropic)
}

impl Dialect for AnthropicDialect {
    type Decoder = AnthropicStreamDecoder;

    fn provider(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn encode(&self, request: &ChatRequest) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let body = encode_body(request, self.0.default_max_tokens)?;
        let config = &self.0;
        let key_error = || {
            LlmError::new(
                ErrorKind::Auth,
                "the API key holds characters a header cannot carry",
            )
            .with_provider(ProviderKind::Anthropic)
        };
        let mut headers = Vec::with_capacity(3);
        match config.auth {
            AnthropicAuth::XApiKey => {
                headers.push((
                    "x-api-key",
                    config.api_key.header_value("").ok_or_else(key_error)?,
                ));
            }
            AnthropicAuth::Bearer => headers.push((
                "authorization",
                config
                    .api_key
                    .header_value("Bearer ")
                    .ok_or_else(key_error)?,
            )),
        }
        let version = config.version.as_deref().unwrap_or(config.auth.version());
        headers.push((
            "anthropic-version",
            HeaderValue::from_str(version).map_err(|_| invalid("invalid anthropic-version"))?,
        ));
        if let Some(beta) = &config.beta {
            headers.push((
                "anthropic-beta",
                HeaderValue::from_str(beta).map_err(|_| invalid("invalid anthropic-beta"))?,
            ));
        }
        let url = join_url(&config.base_url, "v1/messages");
        post(&url, &body, request.stream, headers).map_err(invalid)
    }

    fn decode_response(&self, _headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse, LlmError> {
        // The typed reading is the fast path; error bodies and fields of unexpected types are
        // read again loosely, into the same typed message.
        if is_object(body)
            && let Ok(typed) = serde_json::from_slice::<wire::Message<'_>>(body)
            && typed.kind.as_deref() != Some("error")
            && let Some(response) = message_response(typed)
        {
            return Ok(response);
        }
        let provider = ProviderKind::Anthropic;
        let value: Value =
            serde_json::from_slice(body).map_err(|e| decode_error(provider, "response", e))?;
        if str_at(&value, &["type"]) == Some("error") {
            return Err(anthropic_error(None, &value));
        }
        message_response(wire::Message::loose(&value))
            .ok_or_else(|| decode_error(provider, "response", "no `content` in the body"))
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
        let parsed = serde_json::from_slice::<Value>(body)
            .ok()
            .filter(|v| get(v, &["error"]).is_some());
        let Some(value) = parsed else {
            return from_response(
                ProviderKind::Anthropic,
                ErrorKind::from_status(status),
                status,
                headers,
                non_json_message(status, headers, body),
                "request-id",
            );
        };
        let error = anthropic_error(Some(status), &value);
        let mut full = from_response(
            ProviderKind::Anthropic,
            error.kind(),
            status,
            headers,
            error.message(),
            "request-id",
        );
        if let Some(code) = error.code() {
            full = full.with_code(code);
        }
        if let Some(id) = str_at(&value, &["request_id"]) {
            full = full.with_request_id(id);
        }
        full
    }

    fn stream_decoder(&self) -> AnthropicStreamDecoder {
        AnthropicStreamDecoder::default()
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        header_text(headers, "request-id")
    }

    fn encode_count_tokens(
        &self,
        request: &ChatRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let messages = self.encode(&crate::count::unstreamed(request))?;
        crate::count::anthropic_request(messages)
    }

    fn decode_count_tokens(&self, body: &[u8]) -> Result<u64, LlmError> {
        crate::count::anthropic_count(body)
    }
}

fn anthropic_error(status: Option<u16>, value: &Value) -> LlmError {
    let error = get(value, &["error"]).unwrap_or(value);
    let kind_name = str_at(error, &["type"]).unwrap_or_default();
    let message = str_at(error, &["message"]).unwrap_or_default();
    let detail_code = str_at(error, &["details", "error_code"]).unwrap_or_default();
    let kind = if mentions_context_length(message) {
        ErrorKind::ContextLengthExceeded
    } else if detail_code == "enforced_spend_limit_reached" || kind_name == "billing_error" {
        ErrorKind::QuotaExhausted
    } else {
        match kind_name {
            "invalid_request_error" => ErrorKind::InvalidRequest,
            "authentication_error" => ErrorKind::Auth,
            "permission_error" => ErrorKind::Permission,
            "not_found_error" => ErrorKind::NotFound,
            "request_too_large" => ErrorKind::RequestTooLarge,
            "rate_limit_error" => ErrorKind::RateLimited,
            "api_error" => ErrorKind::Server,
            "overloaded_error" => ErrorKind::Overloaded,
            "timeout_error" => ErrorKind::Timeout,
            "conflict_error" => ErrorKind::Transient,
            _ => status.map_or(ErrorKind::Server, ErrorKind::from_status),
        }
    };
    let mut llm = LlmError::new(kind, message).with_provider(ProviderKind::Anthropic);
    let code = if detail_code.is_empty() {
        kind_name
    } else {
        detail_code
    };
    if !code.is_empty() {
        llm = llm.with_code(code);
    }
    if let Some(id) = str_at(value, &["request_id"]) {
        llm = llm.with_request_id(id);
    }
    llm
}

fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// The response a message stands for; `None` when it has no `content`.
fn message_response(body: wire::Message<'_>) -> Option<ChatResponse> {
    let mut message = AssistantMessage::default();
    for block in body.content? {
        match block.kind.as_deref() {
            Some("text") => message.text.push_str(block.text.as_deref().unwrap_or("")),
            Some("tool_use") => message.tool_calls.push(ToolCall {
                id: block.id.map(Cow::into_owned).unwrap_or_default(),
                name: block.name.map(Cow::into_owned).unwrap_or_default(),
                arguments: block
                    .input
                    .map_or_else(|| "{}".to_owned(), |input| input.to_string()),
            }),
            _ => {}
        }
    }
    let finish = body
        .stop_reason
        .as_deref()
        .map_or(FinishReason::Stop, stop_reason);
    if finish == FinishReason::ContentFilter {
        // A refusal: an empty content with the reason Anthropic gives, not an empty answer.
        message.refusal = body
            .stop_details
            .and_then(|details| details.explanation)
            .map(Cow::into_owned);
    }
    let mut response = ChatResponse::new(
        ProviderKind::Anthropic,
        body.model.unwrap_or_default(),
        message,
        finish,
    )
    .with_id(body.id.unwrap_or_default());
    if let Some(usage) = body.usage {
        let mut totals = UsageTotals::default();
        totals.merge(&usage);
        response.usage = Some(totals.usage());
    }
    Some(response)
}

/// Anthropic's usage, cumulative: later values overwrite earlier ones field by field.
#[derive(Debug, Clone, Copy, Default)]
struct UsageTotals {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
    thinking: u64,
}

impl UsageTotals {
    fn merge(&mut self, usage: &wire::Usage) {
        let set = |field: &mut u64, value: Option<u64>| {
            if let Some(n) = value {
                *field = n;
            }
        };
        set(&mut self.input, usage.input_tokens);
        set(&mut self.cache_read, usage.cache_read_input_tokens);
        set(&mut self.cache_creation, usage.cache_creation_input_tokens);
        set(&mut self.output, usage.output_tokens);
        set(
            &mut self.thinking,
            usage
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens),
        );
    }

    /// `input_tokens` excludes cached tokens; the unified model counts them in.
    fn usage(&self) -> Usage {
        Usage::new(
            self.input + self.cache_read + self.cache_creation,
            self.output,
        )
        .with_cached_input(self.cache_read)
        .with_cache_writes(self.cache_creation)
        .with_reasoning(self.thinking)
    }
}

fn cache_control(cache: Option<&CacheControl>) -> Option<Value> {
    cache.map(|cache| {
        let mut value = Map::new();
        value.insert("type".into(), cache.kind.clone().into());
        if let Some(ttl) = &cache.ttl {
            value.insert("ttl".into(), ttl.clone().into());
        }
        Value::Object(value)
    })
}

fn with_cache(mut block: Value, cache: Option<&CacheControl>) -> Value {
    if let (Some(cache), Some(object)) = (cache_control(cache), block.as_object_mut()) {
        object.insert("cache_control".into(), cache);
    }
    block
}

fn encode_part(part: &ContentPart) -> Option<Value> {
    match part {
        ContentPart::Text {
            text,
            cache_control,
        } => (!text.is_empty()).then(|| {
            with_cache(
                json!({"type": "text", "text": text}),
                cache_control.as_ref(),
            )
        }),
        ContentPart::Image {
            source,
            cache_control,
            ..
        } => {
            // Bytes in the request (inline, or a base64 `data:` URL) are a base64 source;
            // Anthropic fetches only `http(s)` URLs.
            let source = match (source.inline(), source) {
                (Some((media_type, data)), _) => {
                    json!({"type": "base64", "media_type": media_type, "data": data})
                }
                (None, ImageSource::Url { url }) => json!({"type": "url", "url": url}),
                (None, ImageSource::Base64 { .. }) => return None,
            };
            Some(with_cache(
                json!({"type": "image", "source": source}),
                cache_control.as_ref(),
            ))
        }
    }
}

fn encode_body(request: &ChatRequest, default_max_tokens: u32) -> Result<Value, LlmError> {
    refuse_plain_data_urls(request, ProviderKind::Anthropic)?;
    let mut system = Vec::new();
    // (role, blocks) turns; consecutive turns of one role merge (tool results join the user
    // turn that follows the assistant's calls).
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let (role, blocks): (&'static str, Vec<Value>) = match message.role {
            Role::System => {
                system.extend(message.content.iter().filter_map(encode_part));
                continue;
            }
            Role::User => (
                "user",
                message.content.iter().filter_map(encode_part).collect(),
            ),
            Role::Assistant => {
                let mut blocks: Vec<Value> =
                    message.content.iter().filter_map(encode_part).collect();
                for call in &message.tool_calls {
                    let input: Value = if call.arguments.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&call.arguments).map_err(|e| {
                            invalid(format!(
                                "messages[{i}]: the arguments of tool call `{}` are not JSON: {e}",
                                call.id
                            ))
                        })?
                    };
                    blocks.push(
                        json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}),
                    );
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                let content: Vec<Value> = message.content.iter().filter_map(encode_part).collect();
                let cache = message.content.last().and_then(ContentPart::cache_control);
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id.clone().unwrap_or_default(),
                    "content": content,
                });
                ("user", vec![with_cache(block, cache)])
            }
        };
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(&*request.model));
    body.insert(
        "max_tokens".into(),
        request
            .max_output_tokens
            .unwrap_or(default_max_tokens)
            .into(),
    );
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert(
        "messages".into(),
        turns
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
    );
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut out = Map::new();
                out.insert("name".into(), tool.name.clone().into());
                if let Some(description) = &tool.description {
                    out.insert("description".into(), description.clone().into());
                }
                out.insert("input_schema".into(), tool.parameters.clone());
                if let Some(cache) = cache_control(tool.cache_control.as_ref()) {
                    out.insert("cache_control".into(), cache);
                }
                Value::Object(out)
            })
            .collect();
        body.insert("tools".into(), tools);
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(&*request.stop));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if request.stream {
        body.insert("stream".into(), true.into());
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": &**user}));
    }
    merge_extra(&mut body, &request.extra);
    Ok(Value::Object(body))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Tool { call: u32, has_arguments: bool },
    Other,
}

/// Decodes Anthropic message events, dispatching on the JSON `type` (so a stream whose
/// `event:` lines were stripped decodes too). Only client `tool_use` blocks become tool
/// calls; server tools, thinking and their results are not the caller's to act on.
#[derive(Debug, Default)]
pub struct AnthropicStreamDecoder {
    blocks: Vec<(u64, Block)>,
    tool_calls: u32,
    usage: UsageTotals,
    stop: Option<FinishReason>,
}

impl AnthropicStreamDecoder {
    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, block)| block)
    }
}

impl AnthropicStreamDecoder {
    fn content_delta(
        &mut self,
        index: u64,
        delta: Option<wire::Delta<'_>>,
        out: &mut Vec<StreamEvent>,
    ) {
        let Some(delta) = delta else { return };
        match (self.block(index).copied(), delta.kind.as_deref()) {
            (Some(Block::Text), Some("text_delta")) => {
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta(text.into_owned()));
                }
            }
            (Some(Block::Tool { call, .. }), Some("input_json_delta")) => {
                if let Some(fragment) = delta.partial_json.filter(|f| !f.is_empty()) {
                    out.push(StreamEvent::ToolCallDelta {
                        index: call,
                        id: None,
                        name: None,
                        arguments: fragment.into_owned(),
                    });
                    if let Some(Block::Tool { has_arguments, .. }) = self.block(index) {
                        *has_arguments = true;
                    }
                }
            }
            _ => {}
        }
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed> {
        // Content deltas, nearly all of a stream, are read typed; the other events, and
        // deltas with fields of unexpected types, are read loosely.
        if is_object(event.data.as_bytes())
            && let Ok(typed) = serde_json::from_str::<wire::Event<'_>>(&event.data)
            && typed.kind.as_deref().or(event.event.as_deref()) == Some("content_block_delta")
        {
            self.content_delta(typed.index.unwrap_or(0), typed.delta, out);
            return Ok(Flow::Continue);
        }
        let value: Value = serde_json::from_str(&event.data)?;
        let kind = str_at(&value, &["type"]).or(event.event.as_deref());
        let index = get(&value, &["index"]).and_then(Value::as_u64).unwrap_or(0);
        match kind {
            Some("message_start") => {
                out.push(StreamEvent::Start {
                    id: str_at(&value, &["message", "id"]).map(str::to_owned),
                    model: str_at(&value, &["message", "model"]).map(str::to_owned),
                });
                if let Some(usage) = get(&value, &["message", "usage"]) {
                    self.usage.merge(&wire::Usage::loose(usage));
                    out.push(StreamEvent::Usage(self.usage.usage()));
                }
            }
            Some("content_block_start") => {
                let block = get(&value, &["content_block"]).unwrap_or(&Value::Null);
                let kind = match str_at(block, &["type"]) {
                    Some("text") => {
                        if let Some(text) = str_at(block, &["text"]).filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta(text.to_owned()));
                        }
                        Block::Text
                    }
                    Some("tool_use") => {
                        let call = self.tool_calls;
                        self.tool_calls += 1;
                        // A start block may already hold the whole input.
                        let arguments = get(block, &["input"])
                            .filter(|input| input.as_object().is_some_and(|o| !o.is_empty()))
                            .map(Value::to_string)
                            .unwrap_or_default();
                        let has_arguments = !arguments.is_empty();
                        out.push(StreamEvent::ToolCallDelta {
                            index: call,
                            id: str_at(block, &["id"]).map(str::to_owned),
                            name: str_at(block, &["name"]).map(str::to_owned),
                            arguments,
                        });
                        Block::Tool {
                            call,
                            has_arguments,
                        }
                    }
                    _ => Block::Other,
                };
                self.blocks.push((index, kind));
            }
            Some("content_block_delta") => {
                let delta = get(&value, &["delta"]).map(wire::Delta::loose);
                self.content_delta(index, delta, out);
            }
            Some("content_block_stop") => {
                if let Some(Block::Tool {
                    call,
                    has_arguments: false,
                }) = self.block(index).copied()
                {
                    // A call without arguments: make the joined arguments valid JSON.
                    out.push(StreamEvent::ToolCallDelta {
                        index: call,
                        id: None,
                        name: None,
                        arguments: "{}".to_owned(),
                    });
                }
            }
            Some("message_delta") => {
                if let Some(reason) = str_at(&value, &["delta", "stop_reason"]) {
                    self.stop = Some(stop_reason(reason));
                }
                if let Some(usage) = get(&value, &["usage"]) {
                    self.usage.merge(&wire::Usage::loose(usage));
                    out.push(StreamEvent::Usage(self.usage.usage()));
                }
            }
            Some("message_stop") => {
                out.push(StreamEvent::Finish(
                    self.stop.take().unwrap_or(FinishReason::Stop),
                ));
                return Ok(Flow::End);
            }
            Some("error") => {
                out.push(StreamEvent::Error(anthropic_error(None, &value)));
                return Ok(Flow::End);
            }
            _ => {} // ping and event types added later
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _clean: bool, _out: &mut Vec<StreamEvent>) -> bool {
        // Only `message_stop` completes a message, and it ends decoding by itself.
        false
    }
}

/// Typed messages and content-delta events: the fast paths of `decode_response` and
/// [`AnthropicStreamDecoder`]. Strings borrow from the input unless they hold escapes. A
/// field of an unexpected type fails the typed reading, and the caller falls back to the
/// loose one.
mod wire {
    use std::borrow::Cow;

    use serde::Deserialize;
    use serde_json::Value;

    use crate::json::{cow_at, get, u64_at};

    #[derive(Deserialize)]
    pub(super) struct Message<'a> {
        #[serde(rename = "type", borrow, default)]
        pub(super) kind: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) model: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) content: Option<Vec<ContentBlock<'a>>>,
        #[serde(borrow, default)]
        pub(super) stop_reason: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) stop_details: Option<StopDetails<'a>>,
        #[serde(default)]
        pub(super) usage: Option<Usage>,
    }

    /// Why a message stopped, beyond its `stop_reason` (a refusal's explanation).
    #[derive(Deserialize)]
    pub(super) struct StopDetails<'a> {
        #[serde(borrow, default)]
        pub(super) explanation: Option<Cow<'a, str>>,
    }

    impl<'a> Message<'a> {
        /// The same fields read from any JSON value: a field of another type is absent.
        pub(super) fn loose(value: &'a Value) -> Self {
            Self {
                kind: cow_at(value, &["type"]),
                id: cow_at(value, &["id"]),
                model: cow_at(value, &["model"]),
                content: get(value, &["content"])
                    .and_then(Value::as_array)
                    .map(|blocks| {
                        blocks
                            .iter()
                            .map(|block| ContentBlock {
                                kind: cow_at(block, &["type"]),
                                text: cow_at(block, &["text"]),
                                id: cow_at(block, &["id"]),
                                name: cow_at(block, &["name"]),
                                input: get(block, &["input"]).cloned(),
                            })
                            .collect()
                    }),
                stop_reason: cow_at(value, &["stop_reason"]),
                stop_details: get(value, &["stop_details"]).map(|details| StopDetails {
                    explanation: cow_at(details, &["explanation"]),
                }),
                usage: get(value, &["usage"]).map(Usage::loose),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct ContentBlock<'a> {
        #[serde(rename = "type", borrow, default)]
        pub(super) kind: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) text: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) name: Option<Cow<'a, str>>,
        #[serde(default)]
        pub(super) input: Option<Value>,
    }

    #[derive(Deserialize)]
    pub(super) struct Usage {
        #[serde(default)]
        pub(super) input_tokens: Option<u64>,
        #[serde(default)]
        pub(super) cache_read_input_tokens: Option<u64>,
        #[serde(default)]
        pub(super) cache_creation_input_tokens: Option<u64>,
        #[serde(default)]
        pub(super) output_tokens: Option<u64>,
        #[serde(default)]
        pub(super) output_tokens_details: Option<UsageDetails>,
    }

    impl Usage {
        /// The same fields read from any JSON value: a field of another type is absent.
        pub(super) fn loose(value: &Value) -> Self {
            Self {
                input_tokens: u64_at(value, &["input_tokens"]),
                cache_read_input_tokens: u64_at(value, &["cache_read_input_tokens"]),
                cache_creation_input_tokens: u64_at(value, &["cache_creation_input_tokens"]),
                output_tokens: u64_at(value, &["output_tokens"]),
                output_tokens_details: Some(UsageDetails {
                    thinking_tokens: u64_at(value, &["output_tokens_details", "thinking_tokens"]),
                }),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct UsageDetails {
        #[serde(default)]
        pub(super) thinking_tokens: Option<u64>,
    }

    #[derive(Deserialize)]
    pub(super) struct Event<'a> {
        #[serde(rename = "type", borrow, default)]
        pub(super) kind: Option<Cow<'a, str>>,
        #[serde(default)]
        pub(super) index: Option<u64>,
        #[serde(borrow, default)]
        pub(super) delta: Option<Delta<'a>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Delta<'a> {
        #[serde(rename = "type", borrow, default)]
        pub(super) kind: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) text: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) partial_json: Option<Cow<'a, str>>,
    }

    impl<'a> Delta<'a> {
        /// The same fields read from any JSON value: a field of another type is absent.
        pub(super) fn loose(value: &'a Value) -> Self {
            Self {
                kind: cow_at(value, &["type"]),
                text: cow_at(value, &["text"]),
                partial_json: cow_at(value, &["partial_json"]),
            }
        }
    }
}
