//! Google Gemini `generateContent` and `streamGenerateContent?alt=sse`.
//!
//! - `POST {base_url}/{api_version}/models/{model}:generateContent` (or
//!   `:streamGenerateContent?alt=sse`) with `x-goog-api-key`; `api_version` is `v1beta` by
//!   default.
//! - System messages go to `systemInstruction`; tool calls are `functionCall` parts of a
//!   `model` turn and tool results `functionResponse` parts of a `user` turn (named after
//!   the call they answer); the output cap, sampling, stop sequences and JSON output go in
//!   `generationConfig`.
//! - A function call finishes with `STOP`; the adapter reports
//!   [`FinishReason::ToolCalls`] when the reply holds calls. Safety finish reasons are
//!   [`FinishReason::ContentFilter`]; a prompt blocked before any candidate
//!   (`promptFeedback.blockReason`) is an [`ErrorKind::ContentFiltered`] error.
//! - A function call streamed in pieces (`streamFunctionCallArguments`: a named
//!   `functionCall` with `willContinue`, then `partialArgs` values at JSON paths, then a
//!   part without `willContinue`) becomes [`StreamEvent::ToolCallDelta`]s whose arguments
//!   join to the call's JSON, written as the values arrive; a call sent whole in one part
//!   is one delta.
//! - Errors are `google.rpc.Status` bodies: `RESOURCE_EXHAUSTED` with a per-day quota id is
//!   [`ErrorKind::QuotaExhausted`], otherwise [`ErrorKind::RateLimited`] with
//!   `RetryInfo.retryDelay` as the retry hint; `API_KEY_INVALID` (a 400) is
//!   [`ErrorKind::Auth`]; `input token count ... exceeds the maximum` is
//!   [`ErrorKind::ContextLengthExceeded`].
//!
//! Known gap: Gemini 3 models want each `functionCall`'s `thoughtSignature` echoed back;
//! the unified [`ToolCall`](seawall_core::ToolCall) has no place for it, so multi-turn tool
//! use with those models needs the signature passed through `extra` by the caller.
//!
//! ```
//! use seawall_providers::{ApiKey, Gemini, GeminiConfig};
//! # fn demo<S>(http: S) {
//! let gemini = Gemini::new(http, GeminiConfig::new(ApiKey::new("AIza...")).with_api_version("v1"));
//! # }
//! ```

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use seawall_core::{
    AssistantMessage, ChatRequest, ChatResponse, ContentPart, EmbeddingRequest, Embeddings,
    ErrorKind, FinishReason, ImageSource, LlmError, ProviderKind, ResponseFormat, Role,
    StreamEvent, ToolChoice, Usage, hints,
};
use serde_json::{Map, Value, json};

use crate::adapter::Adapter;
use crate::dialect::{Dialect, Flow, Malformed, StreamDecoder};
use crate::encode::refuse_plain_data_urls;
use crate::error::{decode_error, from_response, mentions_context_length, non_json_message};
use crate::json::{get, join_url, merge_extra, post, str_at};
use crate::key::ApiKey;
use crate::sse::SseEvent;

mod args;

use args::ArgsWriter;

/// The Generative Language API base URL.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// How to reach Gemini.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// The base URL, without the API version.
    pub base_url: String,
    /// The API version path segment: `v1beta` (default) or `v1`.
    pub api_version: String,
    /// The key, sent as `x-goog-api-key`.
    pub api_key: ApiKey,
}

impl GeminiConfig {
    /// Gemini at [`GEMINI_BASE_URL`], `v1beta`, with `key`.
    pub fn new(key: impl Into<ApiKey>) -> Self {
        Self {
            base_url: GEMINI_BASE_URL.to_owned(),
            api_version: "v1beta".to_owned(),
            api_key: key.into(),
        }
    }

    /// Sets the base URL.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the API version segment.
    #[must_use]
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }
}

dialect! {
    /// The Gemini `generateContent` wire format.
    GeminiDialect, GeminiConfig
}

/// An adapter for Gemini over the HTTP service `S`.
pub type Gemini<S> = Adapter<GeminiDialect, S>;

fn invalid(problem: impl Into<String>) -> LlmError {
    LlmError::new(ErrorKind::InvalidRequest, problem).with_provider(ProviderKind::Gemini)
}

impl Dialect for GeminiDialect {
    type Decoder = GeminiStreamDecoder;

    fn provider(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn encode(&self, request: &ChatRequest) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let body = encode_body(request)?;
        let model = request.model.trim_start_matches("models/");
        if model.contains(['/', '?', '#', ':']) {
            return Err(invalid(format!("`{model}` is not a Gemini model name")));
        }
        let method = if request.stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        let url = join_url(
            &self.0.base_url,
            &format!("{}/models/{model}:{method}", self.0.api_version),
        );
        let key = self.0.api_key.header_value("").ok_or_else(|| {
            LlmError::new(
                ErrorKind::Auth,
                "the API key holds characters a header cannot carry",
            )
            .with_provider(ProviderKind::Gemini)
        })?;
        post(&url, &body, request.stream, [("x-goog-api-key", key)]).map_err(invalid)
    }

    fn encode_embeddings(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let key = self.0.api_key.header_value("").ok_or_else(|| {
            LlmError::new(
                ErrorKind::Auth,
                "the API key holds characters a header cannot carry",
            )
            .with_provider(ProviderKind::Gemini)
        })?;
        crate::embed::gemini_request(&self.0.base_url, &self.0.api_version, request, key)
    }

    fn decode_embeddings(
        &self,
        request: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<Embeddings, LlmError> {
        crate::embed::gemini_response(&request.model, request.input.len(), body)
    }

    fn decode_response(&self, _headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse, LlmError> {
        // The typed reading is the fast path; error bodies, blocked prompts and fields of
        // unexpected types are read again loosely, into the same typed response.
        if let Some(typed) = wire::read(body)
            && let Some(response) = candidate_response(typed)
        {
            return Ok(response);
        }
        let provider = ProviderKind::Gemini;
        let value: Value =
            serde_json::from_slice(body).map_err(|e| decode_error(provider, "response", e))?;
        if get(&value, &["error"]).is_some() {
            return Err(gemini_error(None, &value));
        }
        if let Some(blocked) = prompt_block(&value) {
            return Err(blocked);
        }
        candidate_response(wire::Response::loose(&value))
            .ok_or_else(|| decode_error(provider, "response", "no `candidates` in the body"))
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
        let parsed = serde_json::from_slice::<Value>(body)
            .ok()
            .filter(|v| get(v, &["error"]).is_some_and(Value::is_object));
        let Some(value) = parsed else {
            return from_response(
                ProviderKind::Gemini,
                ErrorKind::from_status(status),
                status,
                headers,
                non_json_message(status, headers, body),
                "x-request-id",
            );
        };
        let error = gemini_error(Some(status), &value);
        let mut full = from_response(
            ProviderKind::Gemini,
            error.kind(),
            status,
            headers,
            error.message(),
            "x-request-id",
        );
        if let Some(code) = error.code() {
            full = full.with_code(code);
        }
        let mut retry = *full.hints();
        if retry.retry_after.is_none() {
            retry.retry_after = error.hints().retry_after;
        }
        full.with_hints(retry)
    }

    fn stream_decoder(&self) -> GeminiStreamDecoder {
        GeminiStreamDecoder::default()
    }

    fn encode_count_tokens(
        &self,
        request: &ChatRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let generate = self.encode(&crate::count::unstreamed(request))?;
        crate::count::gemini_request(generate, &request.model)
    }

    fn decode_count_tokens(&self, body: &[u8]) -> Result<u64, LlmError> {
        crate::count::gemini_count(body)
    }
}

fn gemini_error(status: Option<u16>, value: &Value) -> LlmError {
    let error = get(value, &["error"]).unwrap_or(value);
    let message = str_at(error, &["message"]).unwrap_or_default();
    let canonical = str_at(error, &["status"]).unwrap_or_default();
    let status = status.or_else(|| {
        get(error, &["code"])
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
    });
    let details = get(error, &["details"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let reason = details
        .iter()
        .find_map(|detail| str_at(detail, &["reason"]))
        .unwrap_or_default();
    let daily_quota = details.iter().any(|detail| {
        get(detail, &["violations"])
            .and_then(Value::as_array)
            .is_some_and(|violations| {
                violations
                    .iter()
                    .any(|v| str_at(v, &["quotaId"]).is_some_and(|id| id.contains("PerDay")))
            })
    });
    let kind = if reason == "API_KEY_INVALID" {
        ErrorKind::Auth
    } else if mentions_context_length(message) {
        ErrorKind::ContextLengthExceeded
    } else {
        match canonical {
            "RESOURCE_EXHAUSTED" if daily_quota => ErrorKind::QuotaExhausted,
            "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
            "INVALID_ARGUMENT" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
            "FAILED_PRECONDITION" | "PERMISSION_DENIED" => ErrorKind::Permission,
            "UNAUTHENTICATED" => ErrorKind::Auth,
            "NOT_FOUND" => ErrorKind::NotFound,
            "UNAVAILABLE" => ErrorKind::Overloaded,
            "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
            "ABORTED" | "CANCELLED" => ErrorKind::Transient,
            "INTERNAL" | "UNKNOWN" => ErrorKind::Server,
            _ => status.map_or(ErrorKind::Server, ErrorKind::from_status),
        }
    };
    let mut llm = LlmError::new(kind, message).with_provider(ProviderKind::Gemini);
    if !canonical.is_empty() {
        llm = llm.with_code(canonical);
    }
    if let Some(status) = status
        && status >= 400
    {
        llm = llm.with_status(status);
    }
    if let Some(delay) = hints::gemini_retry_delay(value) {
        llm = llm.with_retry_after(delay);
    }
    llm
}

fn prompt_block(value: &Value) -> Option<LlmError> {
    let has_candidates = get(value, &["candidates"])
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    let reason = str_at(value, &["promptFeedback", "blockReason"])?;
    if has_candidates {
        return None;
    }
    Some(
        LlmError::new(
            ErrorKind::ContentFiltered,
            format!("the prompt was blocked: {reason}"),
        )
        .with_provider(ProviderKind::Gemini)
        .with_code(reason),
    )
}

/// The response the first candidate stands for; `None` when there is none.
fn candidate_response(body: wire::Response<'_>) -> Option<ChatResponse> {
    let candidate = body.candidates?.into_iter().next()?;
    let mut message = AssistantMessage::default();
    let finish = candidate.finish_reason.clone();
    for part in candidate.parts() {
        match part {
            wire::Read::Text(text) => message.text.push_str(&text),
            wire::Read::Call(call) if !call.is_empty() => {
                let index = message.tool_calls.len();
                message.tool_calls.push(call.tool_call(index));
            }
            wire::Read::Call(_) | wire::Read::Nothing => {}
        }
    }
    let finish = finish_reason(
        finish.as_deref().unwrap_or("STOP"),
        !message.tool_calls.is_empty(),
    );
    let mut response = ChatResponse::new(
        ProviderKind::Gemini,
        body.model_version.unwrap_or_default(),
        message,
        finish,
    )
    .with_id(body.response_id.unwrap_or_default());
    response.usage = body.usage_metadata.map(Usage::from);
    Some(response)
}

fn finish_reason(reason: &str, has_calls: bool) -> FinishReason {
    match reason {
        "STOP" if has_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "MODEL_ARMOR" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn encode_part(part: &ContentPart) -> Option<Value> {
    match part {
        ContentPart::Text { text, .. } => (!text.is_empty()).then(|| json!({"text": text})),
        // Bytes in the request (inline, or a base64 `data:` URL) are `inlineData`;
        // `fileData` is for files Gemini fetches.
        ContentPart::Image { source, .. } => Some(match (source.inline(), source) {
            (Some((media_type, data)), _) => {
                json!({"inlineData": {"mimeType": media_type, "data": data}})
            }
            (None, ImageSource::Url { url }) => json!({"fileData": {"fileUri": url}}),
            (None, ImageSource::Base64 { .. }) => return None,
        }),
    }
}

fn encode_body(request: &ChatRequest) -> Result<Value, LlmError> {
    refuse_plain_data_urls(request, ProviderKind::Gemini)?;
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let (role, parts): (&'static str, Vec<Value>) = match message.role {
            Role::System => {
                system.extend(message.content.iter().filter_map(encode_part));
                continue;
            }
            Role::User => (
                "user",
                message.content.iter().filter_map(encode_part).collect(),
            ),
            Role::Assistant => {
                let mut parts: Vec<Value> =
                    message.content.iter().filter_map(encode_part).collect();
                for call in &message.tool_calls {
                    let args: Value = if call.arguments.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&call.arguments).map_err(|e| {
                            invalid(format!(
                                "messages[{i}]: the arguments of tool call `{}` are not JSON: {e}",
                                call.id
                            ))
                        })?
                    };
                    parts.push(json!({"functionCall": {"name": call.name, "args": args}}));
                }
                ("model", parts)
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                // The response names the function; find it from the call being answered.
                let name = request.messages[..i]
                    .iter()
                    .rev()
                    .flat_map(|m| m.tool_calls.iter())
                    .find(|call| call.id == id)
                    .map_or(id, |call| call.name.as_str());
                let text = message.joined_text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({"result": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
        };
        match contents.last_mut() {
            Some((last_role, last_parts)) if *last_role == role => last_parts.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        contents
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect(),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    if let Some(max) = request.max_output_tokens {
        config.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), json!(p));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), json!(&*request.stop));
    }
    match &request.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        ResponseFormat::JsonSchema { schema, .. } => {
            config.insert("responseMimeType".into(), "application/json".into());
            config.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut out = Map::new();
                out.insert("name".into(), tool.name.clone().into());
                if let Some(description) = &tool.description {
                    out.insert("description".into(), description.clone().into());
                }
                out.insert("parametersJsonSchema".into(), tool.parameters.clone());
                Value::Object(out)
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    merge_extra(&mut body, &request.extra);
    Ok(Value::Object(body))
}

/// Decodes Gemini `alt=sse` chunks: each one a whole `GenerateContentResponse` with
/// cumulative `usageMetadata`; the one with a `finishReason` ends the message (there is no
/// terminator after it).
#[derive(Debug, Default)]
pub struct GeminiStreamDecoder {
    started: bool,
    tool_calls: u32,
    last_usage: Option<Usage>,
    finish: Option<String>,
    /// A call whose arguments are still streaming (`partialArgs`).
    streamed_call: Option<StreamedCall>,
}

/// A function call streamed over several chunks, not yet ended.
#[derive(Debug)]
struct StreamedCall {
    index: u32,
    arguments: ArgsWriter,
}

impl GeminiStreamDecoder {
    /// The stream's start, on its first chunk.
    fn start(&mut self, chunk: &wire::Response<'_>, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.response_id.as_deref().map(str::to_owned),
                model: chunk.model_version.as_deref().map(str::to_owned),
            });
        }
    }

    fn decode_chunk(&mut self, chunk: wire::Response<'_>, out: &mut Vec<StreamEvent>) {
        self.start(&chunk, out);
        if let Some(candidate) = chunk.candidates.and_then(|c| c.into_iter().next()) {
            let finish = candidate.finish_reason.clone();
            for part in candidate.parts() {
                match part {
                    wire::Read::Text(text) => {
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta(text.into_owned()));
                        }
                    }
                    wire::Read::Call(call) => self.call_part(call, out),
                    wire::Read::Nothing => {}
                }
            }
            if let Some(reason) = finish {
                // The end of message ends a streamed call whose closing part never came.
                self.end_streamed_call(out);
                self.finish = Some(reason.into_owned());
            }
        }
        if let Some(usage) = chunk.usage_metadata.map(Usage::from)
            && self.last_usage != Some(usage)
        {
            self.last_usage = Some(usage);
            out.push(StreamEvent::Usage(usage));
        }
    }
}

impl GeminiStreamDecoder {
    /// A `functionCall` part: a whole call, or a piece of one streamed over several chunks.
    fn call_part(&mut self, call: wire::FunctionCall<'_>, out: &mut Vec<StreamEvent>) {
        // A named part starts a call: one still open lost its closing part.
        if call.name.is_some() {
            self.end_streamed_call(out);
        }
        if self.streamed_call.is_none() {
            if call.is_empty() {
                return;
            }
            let index = self.tool_calls;
            self.tool_calls += 1;
            if !call.is_partial() {
                let call = call.tool_call(index as usize);
                out.push(StreamEvent::ToolCallDelta {
                    index,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments: call.arguments,
                });
                return;
            }
            let name = call.name.as_deref().unwrap_or_default().to_owned();
            out.push(StreamEvent::ToolCallDelta {
                index,
                id: Some(wire::call_id(call.id.clone(), &name, index as usize)),
                name: Some(name),
                arguments: String::new(),
            });
            self.streamed_call = Some(StreamedCall {
                index,
                arguments: ArgsWriter::default(),
            });
        }
        let Some(streamed) = &mut self.streamed_call else {
            return;
        };
        for arg in call.partial_args.iter().flatten() {
            if let (Some(path), Some(piece)) = (arg.json_path.as_deref(), arg.piece()) {
                streamed.arguments.set(path, piece);
            }
        }
        if let Some(args) = &call.args {
            streamed.arguments.set_all(args);
        }
        if call.will_continue == Some(true) {
            let arguments = streamed.arguments.take();
            if !arguments.is_empty() {
                out.push(StreamEvent::ToolCallDelta {
                    index: streamed.index,
                    id: None,
                    name: None,
                    arguments,
                });
            }
        } else {
            self.end_streamed_call(out);
        }
    }

    /// Ends the streamed call, if one is open: its arguments are closed as JSON.
    fn end_streamed_call(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(mut streamed) = self.streamed_call.take() {
            streamed.arguments.finish();
            out.push(StreamEvent::ToolCallDelta {
                index: streamed.index,
                id: None,
                name: None,
                arguments: streamed.arguments.take(),
            });
        }
    }
}

impl StreamDecoder for GeminiStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed> {
        // The typed reading is the fast path; error frames, blocked prompts and fields of
        // unexpected types are read again loosely.
        if let Some(chunk) = wire::read(event.data.as_bytes()) {
            self.decode_chunk(chunk, out);
            return Ok(Flow::Continue);
        }
        let chunk: Value = serde_json::from_str(&event.data)?;
        if get(&chunk, &["error"]).is_some() {
            out.push(StreamEvent::Error(gemini_error(None, &chunk)));
            return Ok(Flow::End);
        }
        let loose = wire::Response::loose(&chunk);
        if let Some(blocked) = prompt_block(&chunk) {
            self.start(&loose, out);
            out.push(StreamEvent::Error(blocked));
            return Ok(Flow::End);
        }
        self.decode_chunk(loose, out);
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _clean: bool, out: &mut Vec<StreamEvent>) -> bool {
        // The finishReason is Gemini's end of message: what follows it (nothing, normally)
        // cannot make the message incomplete.
        match self.finish.take() {
            Some(reason) => {
                out.push(StreamEvent::Finish(finish_reason(
                    &reason,
                    self.tool_calls > 0,
                )));
                true
            }
            None => false,
        }
    }
}

/// Typed `GenerateContentResponse`s: the fast path of [`GeminiStreamDecoder`] and of
/// `decode_response`. Strings borrow from the input unless they hold escapes. A field of an
/// unexpected type fails the typed reading, and the caller falls back to the loose one.
mod wire {
    use std::borrow::Cow;

    use seawall_core::{ToolCall, Usage};
    use serde::Deserialize;
    use serde::de::IgnoredAny;
    use serde_json::Value;

    use super::args::Piece;
    use crate::json::{cow_at, get, is_object, u64_at};

    /// The typed reading of `json`, when it is an object of the expected types that is
    /// neither an error nor a blocked prompt.
    pub(super) fn read(json: &[u8]) -> Option<Response<'_>> {
        if !is_object(json) {
            return None;
        }
        let response: Response<'_> = serde_json::from_slice(json).ok()?;
        let blocked = response
            .prompt_feedback
            .as_ref()
            .is_some_and(|feedback| feedback.block_reason.is_some());
        (response.error.is_none() && !blocked).then_some(response)
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Response<'a> {
        #[serde(borrow, default)]
        pub(super) candidates: Option<Vec<Candidate<'a>>>,
        #[serde(default)]
        pub(super) usage_metadata: Option<UsageMetadata>,
        #[serde(borrow, default)]
        pub(super) model_version: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) response_id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        prompt_feedback: Option<PromptFeedback<'a>>,
        #[serde(default)]
        error: Option<IgnoredAny>,
    }

    impl<'a> Response<'a> {
        /// The same fields read from any JSON value: a field of another type is absent.
        pub(super) fn loose(value: &'a Value) -> Self {
            Self {
                candidates: get(value, &["candidates"])
                    .and_then(Value::as_array)
                    .map(|candidates| candidates.iter().map(Candidate::loose).collect()),
                usage_metadata: get(value, &["usageMetadata"]).map(UsageMetadata::loose),
                model_version: cow_at(value, &["modelVersion"]),
                response_id: cow_at(value, &["responseId"]),
                prompt_feedback: None,
                error: None,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PromptFeedback<'a> {
        #[serde(borrow, default)]
        block_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Candidate<'a> {
        #[serde(borrow, default)]
        content: Option<Content<'a>>,
        #[serde(borrow, default)]
        pub(super) finish_reason: Option<Cow<'a, str>>,
    }

    impl<'a> Candidate<'a> {
        fn loose(value: &'a Value) -> Self {
            let parts = get(value, &["content", "parts"])
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .map(|part| Part {
                            text: cow_at(part, &["text"]),
                            thought: get(part, &["thought"]).and_then(Value::as_bool),
                            function_call: get(part, &["functionCall"]).map(|call| FunctionCall {
                                name: cow_at(call, &["name"]),
                                id: cow_at(call, &["id"]),
                                args: get(call, &["args"]).cloned(),
                                partial_args: get(call, &["partialArgs"])
                                    .and_then(Value::as_array)
                                    .map(|args| args.iter().map(PartialArg::loose).collect()),
                                will_continue: get(call, &["willContinue"])
                                    .and_then(Value::as_bool),
                            }),
                        })
                        .collect()
                });
            Self {
                content: Some(Content { parts }),
                finish_reason: cow_at(value, &["finishReason"]),
            }
        }
    }

    #[derive(Deserialize)]
    struct Content<'a> {
        #[serde(borrow, default)]
        parts: Option<Vec<Part<'a>>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Part<'a> {
        #[serde(borrow, default)]
        text: Option<Cow<'a, str>>,
        #[serde(default)]
        thought: Option<bool>,
        #[serde(borrow, default)]
        function_call: Option<FunctionCall<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct FunctionCall<'a> {
        #[serde(borrow, default)]
        pub(super) name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) id: Option<Cow<'a, str>>,
        #[serde(default)]
        pub(super) args: Option<Value>,
        /// Values of arguments streamed in pieces.
        #[serde(borrow, default)]
        pub(super) partial_args: Option<Vec<PartialArg<'a>>>,
        /// More of this call follows in later chunks.
        #[serde(default)]
        pub(super) will_continue: Option<bool>,
    }

    /// One `partialArgs` entry: a value at a JSON path.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct PartialArg<'a> {
        #[serde(borrow, default)]
        pub(super) json_path: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        string_value: Option<Cow<'a, str>>,
        #[serde(default)]
        number_value: Option<serde_json::Number>,
        #[serde(default)]
        bool_value: Option<bool>,
        /// Present (whatever it holds, `null` included) for a null value.
        #[serde(default, deserialize_with = "present")]
        null_value: Option<Value>,
        #[serde(default)]
        will_continue: Option<bool>,
    }

    fn present<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Value>, D::Error> {
        Value::deserialize(deserializer).map(Some)
    }

    impl<'a> PartialArg<'a> {
        fn loose(value: &'a Value) -> Self {
            Self {
                json_path: cow_at(value, &["jsonPath"]),
                string_value: cow_at(value, &["stringValue"]),
                number_value: get(value, &["numberValue"])
                    .and_then(Value::as_number)
                    .cloned(),
                bool_value: get(value, &["boolValue"]).and_then(Value::as_bool),
                null_value: get(value, &["nullValue"]).cloned(),
                will_continue: get(value, &["willContinue"]).and_then(Value::as_bool),
            }
        }

        /// The value this entry sets; `None` for one that holds none.
        pub(super) fn piece(&self) -> Option<Piece<'_>> {
            if let Some(text) = &self.string_value {
                Some(Piece::Text {
                    fragment: text,
                    continues: self.will_continue == Some(true),
                })
            } else if let Some(number) = &self.number_value {
                Some(Piece::Scalar(Value::Number(number.clone())))
            } else if let Some(flag) = self.bool_value {
                Some(Piece::Scalar(Value::Bool(flag)))
            } else {
                self.null_value.as_ref().map(|_| Piece::Scalar(Value::Null))
            }
        }
    }

    /// What a part holds for the reply.
    pub(super) enum Read<'a> {
        /// Visible text (empty for a thought summary, which is not part of the answer).
        Text(Cow<'a, str>),
        Call(FunctionCall<'a>),
        Nothing,
    }

    impl<'a> Candidate<'a> {
        pub(super) fn parts(self) -> impl Iterator<Item = Read<'a>> {
            let parts = self.content.and_then(|c| c.parts).unwrap_or_default();
            parts.into_iter().map(|part| {
                if part.thought == Some(true) {
                    Read::Text(Cow::Borrowed(""))
                } else if let Some(text) = part.text {
                    Read::Text(text)
                } else if let Some(call) = part.function_call {
                    Read::Call(call)
                } else {
                    Read::Nothing
                }
            })
        }
    }

    impl FunctionCall<'_> {
        pub(super) fn tool_call(self, index: usize) -> ToolCall {
            let name = self.name.map(Cow::into_owned).unwrap_or_default();
            ToolCall {
                id: call_id(self.id, &name, index),
                arguments: self.args.map_or_else(|| "{}".to_owned(), |a| a.to_string()),
                name,
            }
        }

        /// Whether this part is a piece of a call streamed over several chunks.
        pub(super) fn is_partial(&self) -> bool {
            self.will_continue == Some(true) || self.partial_args.is_some()
        }

        /// Whether this part says nothing: the `functionCall: {}` that ends a streamed call.
        pub(super) fn is_empty(&self) -> bool {
            self.name.is_none() && self.args.is_none() && !self.is_partial()
        }
    }

    /// The call's id: older models send none, and the name and position identify the call.
    pub(super) fn call_id(id: Option<Cow<'_, str>>, name: &str, index: usize) -> String {
        id.map_or_else(|| format!("{name}-{index}"), Cow::into_owned)
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct UsageMetadata {
        #[serde(default)]
        prompt_token_count: Option<u64>,
        #[serde(default)]
        tool_use_prompt_token_count: Option<u64>,
        #[serde(default)]
        candidates_token_count: Option<u64>,
        #[serde(default)]
        cached_content_token_count: Option<u64>,
        #[serde(default)]
        thoughts_token_count: Option<u64>,
    }

    impl UsageMetadata {
        fn loose(value: &Value) -> Self {
            Self {
                prompt_token_count: u64_at(value, &["promptTokenCount"]),
                tool_use_prompt_token_count: u64_at(value, &["toolUsePromptTokenCount"]),
                candidates_token_count: u64_at(value, &["candidatesTokenCount"]),
                cached_content_token_count: u64_at(value, &["cachedContentTokenCount"]),
                thoughts_token_count: u64_at(value, &["thoughtsTokenCount"]),
            }
        }
    }

    /// `promptTokenCount` includes cached tokens; thoughts are output the unified model
    /// counts in `output_tokens` (and again in `reasoning_tokens`).
    impl From<UsageMetadata> for Usage {
        fn from(usage: UsageMetadata) -> Self {
            let thoughts = usage.thoughts_token_count.unwrap_or(0);
            Usage::new(
                usage.prompt_token_count.unwrap_or(0)
                    + usage.tool_use_prompt_token_count.unwrap_or(0),
                usage.candidates_token_count.unwrap_or(0) + thoughts,
            )
            .with_cached_input(usage.cached_content_token_count.unwrap_or(0))
            .with_reasoning(thoughts)
        }
    }
}
