//! OpenAI Chat Completions, and the servers that speak its dialect (Ollama, vLLM,
//! llama.cpp, OpenRouter, Groq, ...).
//!
//! - `POST {base_url}/chat/completions` with `Authorization: Bearer <key>` (no header when
//!   a local server needs no key).
//! - The output cap goes in `max_completion_tokens` for current OpenAI models (reasoning
//!   models reject `max_tokens`) and in `max_tokens` for the legacy `gpt-3.5`/`gpt-4`
//!   families and for every OpenAI-compatible server (Ollama ignores
//!   `max_completion_tokens`; vLLM and llama.cpp read `max_tokens`).
//! - Streaming always sets `stream_options.include_usage`, so the final usage comes back.
//! - Errors: `{"error":{message,type,param,code}}`, vLLM's integer `code` and legacy flat
//!   `{"object":"error",...}` body, llama.cpp's `exceed_context_size_error` and
//!   503 `Loading model`, Ollama's `api_error`, plain strings in `error`.
//!
//! # Azure OpenAI
//!
//! [`OpenAiConfig::azure`] reaches a deployment at
//! `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`, and
//! [`OpenAiConfig::azure_v1`] the newer `{endpoint}/openai/v1/chat/completions`; both send
//! the key as `api-key` and report [`ProviderKind::AzureOpenAi`]. Azure's quirks are read
//! as they come: a stream's first chunk holds only `prompt_filter_results` (empty `id`,
//! `model` and `choices`) and does not start the stream; `content_filter_results` on
//! choices are ignored; `finish_reason: "content_filter"` is
//! [`FinishReason::ContentFilter`]; the 400 body with `code: "content_filter"` (and an
//! `innererror` naming the categories) is [`ErrorKind::ContentFiltered`].
//!
//! ```
//! use seawall_providers::{ApiKey, OpenAi, OpenAiConfig, ServerKind};
//! # fn demo<S>(http: S, local: S, azure: S) {
//! let openai = OpenAi::new(http, OpenAiConfig::new(ApiKey::new("sk-...")));
//! let ollama = OpenAi::new(
//!     local,
//!     OpenAiConfig::compatible("http://127.0.0.1:11434/v1", ServerKind::Ollama),
//! );
//! let azure = OpenAi::new(
//!     azure,
//!     OpenAiConfig::azure(
//!         "https://my-resource.openai.azure.com",
//!         "gpt-4o-prod",
//!         "2024-10-21",
//!         ApiKey::new("..."),
//!     ),
//! );
//! # }
//! ```

use std::borrow::Cow;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use seawall_core::{
    AssistantMessage, ChatRequest, ChatResponse, EmbeddingRequest, Embeddings, ErrorKind,
    FinishReason, LlmError, Message, ProviderKind, ResponseFormat, StreamEvent, ToolCall,
    ToolChoice, Usage,
};
use serde_json::Value;

use crate::adapter::Adapter;
use crate::dialect::{Dialect, Flow, Malformed, StreamDecoder, header_text};
use crate::error::{
    decode_error, from_response, mentions_context_length, non_json_message, scalar_text,
};
use crate::json::{get, is_object, join_url, merge_extra, post_bytes, str_at};
use crate::key::ApiKey;
use crate::sse::SseEvent;

/// OpenAI's API base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Which server speaks the OpenAI dialect, for its quirks (WIRE.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ServerKind {
    /// OpenAI itself.
    #[default]
    OpenAi,
    /// Ollama's `/v1` endpoint: `max_tokens` only, no rate-limit headers.
    Ollama,
    /// vLLM: integer error `code`, legacy flat error bodies.
    Vllm,
    /// llama.cpp `llama-server`: `exceed_context_size_error`, 503 while loading.
    LlamaCpp,
    /// OpenRouter.
    OpenRouter,
    /// Groq.
    Groq,
    /// Azure OpenAI: the key in `api-key`, content-filter results and errors.
    AzureOpenAi,
    /// Any other OpenAI-compatible server.
    Other,
}

/// Which header carries the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI, most compatible servers, Azure with a
    /// Microsoft Entra ID token).
    #[default]
    Bearer,
    /// `api-key: <key>` (an Azure OpenAI resource key).
    ApiKey,
}

/// How to reach an OpenAI-dialect server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenAiConfig {
    /// The base URL the paths are appended to, up to and including `/v1` (for an Azure
    /// deployment, up to and including `/openai/deployments/{deployment}`).
    pub base_url: String,
    /// The key, sent as [`key_header`](Self::key_header) says; `None` for servers that need
    /// none.
    pub api_key: Option<ApiKey>,
    /// Which header carries the key.
    pub key_header: KeyHeader,
    /// An `api-version` query parameter added to every URL (Azure deployments).
    pub api_version: Option<String>,
    /// `OpenAI-Organization`.
    pub organization: Option<String>,
    /// `OpenAI-Project`.
    pub project: Option<String>,
    /// Which server this is.
    pub server: ServerKind,
    /// Whether the call's idempotency key
    /// ([`CallOptions::idempotency_key`](seawall_core::CallOptions)) is sent on as an
    /// `Idempotency-Key` header. Off by default: no provider documents one for chat
    /// completions; turn it on for OpenAI-compatible servers that accept it (another
    /// gateway).
    pub forward_idempotency_key: bool,
}

impl OpenAiConfig {
    /// OpenAI at [`OPENAI_BASE_URL`] with `key`.
    pub fn new(key: impl Into<ApiKey>) -> Self {
        Self {
            base_url: OPENAI_BASE_URL.to_owned(),
            api_key: Some(key.into()),
            key_header: KeyHeader::Bearer,
            api_version: None,
            organization: None,
            project: None,
            server: ServerKind::OpenAi,
            forward_idempotency_key: false,
        }
    }

    /// An OpenAI-compatible server at `base_url` (for example `http://127.0.0.1:11434/v1`),
    /// without a key.
    pub fn compatible(base_url: impl Into<String>, server: ServerKind) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            key_header: KeyHeader::Bearer,
            api_version: None,
            organization: None,
            project: None,
            server,
            forward_idempotency_key: false,
        }
    }

    /// An Azure OpenAI deployment: `{endpoint}/openai/deployments/{deployment}/...` with
    /// `?api-version={api_version}` (such as `2024-10-21`) and the key in `api-key`.
    /// `endpoint` is the resource's, such as `https://my-resource.openai.azure.com`.
    pub fn azure(
        endpoint: &str,
        deployment: &str,
        api_version: impl Into<String>,
        key: impl Into<ApiKey>,
    ) -> Self {
        Self {
            base_url: join_url(endpoint, &format!("openai/deployments/{deployment}")),
            api_version: Some(api_version.into()),
            ..Self::azure_v1(endpoint, key)
        }
    }

    /// Azure OpenAI's v1 API: `{endpoint}/openai/v1/...` with the key in `api-key`; the
    /// request's model names the deployment.
    pub fn azure_v1(endpoint: &str, key: impl Into<ApiKey>) -> Self {
        Self {
            base_url: join_url(endpoint, "openai/v1"),
            api_key: Some(key.into()),
            key_header: KeyHeader::ApiKey,
            api_version: None,
            organization: None,
            project: None,
            server: ServerKind::AzureOpenAi,
            forward_idempotency_key: false,
        }
    }

    /// Sets the base URL (a proxy, the simulator, Azure-style gateways).
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the key.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sets which header carries the key.
    #[must_use]
    pub fn with_key_header(mut self, header: KeyHeader) -> Self {
        self.key_header = header;
        self
    }

    /// Sets the `api-version` query parameter.
    #[must_use]
    pub fn with_api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = Some(api_version.into());
        self
    }

    /// Sets the organization header.
    #[must_use]
    pub fn with_organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// Sets the project header.
    #[must_use]
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Sends the call's idempotency key on as `Idempotency-Key` (see
    /// [`forward_idempotency_key`](Self::forward_idempotency_key)).
    #[must_use]
    pub fn with_idempotency_key_forwarding(mut self, forward: bool) -> Self {
        self.forward_idempotency_key = forward;
        self
    }
}

dialect! {
    /// The OpenAI Chat Completions wire format.
    OpenAiDialect, OpenAiConfig
}

/// An adapter for OpenAI Chat Completions (or, with [`OpenAiConfig::compatible`], an
/// OpenAI-compatible server) over the HTTP service `S`.
pub type OpenAi<S> = Adapter<OpenAiDialect, S>;

/// The same adapter type as [`OpenAi`], named for OpenAI-compatible servers.
pub type OpenAiCompatible<S> = Adapter<OpenAiDialect, S>;

impl Dialect for OpenAiDialect {
    type Decoder = OpenAiStreamDecoder;

    fn provider(&self) -> ProviderKind {
        match self.0.server {
            ServerKind::OpenAi => ProviderKind::OpenAi,
            ServerKind::AzureOpenAi => ProviderKind::AzureOpenAi,
            _ => ProviderKind::OpenAiCompatible,
        }
    }

    fn encode(&self, request: &ChatRequest) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let invalid = |problem| {
            LlmError::new(ErrorKind::InvalidRequest, problem).with_provider(self.provider())
        };
        let body = encode_body(request, self.0.server).map_err(invalid)?;
        let mut headers = self.headers()?;
        if self.0.forward_idempotency_key
            && let Some(key) = &request.context.options().idempotency_key
            && let Ok(value) = http::HeaderValue::from_str(key)
        {
            headers.push(("idempotency-key", value));
        }
        let url = self.url("chat/completions")?;
        post_bytes(&url, body, request.stream, headers).map_err(invalid)
    }

    fn encode_embeddings(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        crate::embed::openai_request(
            self.provider(),
            &self.url("embeddings")?,
            request,
            self.headers()?,
        )
    }

    fn decode_embeddings(
        &self,
        request: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<Embeddings, LlmError> {
        crate::embed::openai_response(self.provider(), &request.model, request.input.len(), body)
    }

    fn decode_response(&self, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse, LlmError> {
        // The typed reading is the fast path; an error body, or a body whose fields have
        // unexpected types (some compatible servers), is read again loosely.
        if is_object(body)
            && let Ok(typed) = serde_json::from_slice::<wire::Response<'_>>(body)
            && typed.error.is_none()
            && let Some(response) = self.decode_typed_response(typed)
        {
            return Ok(response);
        }
        self.decode_value_response(headers, body)
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) if value.is_object() => self.error_from_json(Some(status), headers, &value),
            _ => from_response(
                self.provider(),
                ErrorKind::from_status(status),
                status,
                headers,
                non_json_message(status, headers, body),
                "x-request-id",
            ),
        }
    }

    fn stream_decoder(&self) -> OpenAiStreamDecoder {
        OpenAiStreamDecoder {
            provider: self.provider(),
            ..OpenAiStreamDecoder::default()
        }
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        header_text(headers, "x-request-id")
    }
}

impl OpenAiDialect {
    /// The URL of `path` under the base URL, with the `api-version` when one is set.
    fn url(&self, path: &str) -> Result<String, LlmError> {
        let url = join_url(&self.0.base_url, path);
        let Some(version) = &self.0.api_version else {
            return Ok(url);
        };
        // API versions are dates with an optional suffix (`2025-04-01-preview`): nothing to
        // escape, and anything else is a configuration mistake.
        if version.is_empty()
            || !version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(LlmError::new(
                ErrorKind::InvalidRequest,
                format!("`{version}` is not an api-version"),
            )
            .with_provider(self.provider()));
        }
        let separator = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{separator}api-version={version}"))
    }

    /// The key and organization headers every request carries.
    fn headers(&self) -> Result<Vec<(&'static str, http::HeaderValue)>, LlmError> {
        let mut headers = Vec::new();
        if let Some(key) = &self.0.api_key {
            let (name, prefix) = match self.0.key_header {
                KeyHeader::Bearer => ("authorization", "Bearer "),
                KeyHeader::ApiKey => ("api-key", ""),
            };
            let value = key.header_value(prefix).ok_or_else(|| {
                LlmError::new(
                    ErrorKind::Auth,
                    "the API key holds characters a header cannot carry",
                )
                .with_provider(self.provider())
            })?;
            headers.push((name, value));
        }
        for (name, value) in [
            ("openai-organization", &self.0.organization),
            ("openai-project", &self.0.project),
        ] {
            if let Some(value) = value.as_deref().and_then(|v| v.parse().ok()) {
                headers.push((name, value));
            }
        }
        Ok(headers)
    }

    /// The response a typed body stands for; `None` when it has no choice (the loose reading
    /// then reports the problem).
    fn decode_typed_response(&self, body: wire::Response<'_>) -> Option<ChatResponse> {
        let choice = body.choices?.into_iter().next()?;
        let message = choice.message.unwrap_or_default();
        let tool_calls = message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|call| {
                let function = call.function.unwrap_or_default();
                ToolCall {
                    id: call.id.map(Cow::into_owned).unwrap_or_default(),
                    name: function.name.map(Cow::into_owned).unwrap_or_default(),
                    arguments: function.arguments.map(Cow::into_owned).unwrap_or_default(),
                }
            })
            .collect();
        let mut assistant =
            AssistantMessage::text(message.content.map(|c| c.0).unwrap_or_default());
        assistant.tool_calls = tool_calls;
        assistant.refusal = message.refusal.map(Cow::into_owned);
        let finish = choice
            .finish_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason);
        let mut response = ChatResponse::new(
            self.provider(),
            body.model.unwrap_or_default(),
            assistant,
            finish,
        )
        .with_id(body.id.unwrap_or_default());
        response.usage = body.usage.map(Usage::from);
        Some(response)
    }

    /// The loose reading of a complete body: any JSON shape, the error bodies included.
    fn decode_value_response(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<ChatResponse, LlmError> {
        let provider = self.provider();
        let value: Value =
            serde_json::from_slice(body).map_err(|e| decode_error(provider, "response", e))?;
        if get(&value, &["error"]).is_some() {
            return Err(self.error_from_json(Some(200), headers, &value));
        }
        self.decode_typed_response(wire::Response::loose(&value))
            .ok_or_else(|| decode_error(provider, "response", "no `choices` in the body"))
    }

    fn error_from_json(&self, status: Option<u16>, headers: &HeaderMap, value: &Value) -> LlmError {
        let error = openai_error(self.provider(), status, value);
        match status {
            Some(status) if status >= 400 => {
                let mut full = from_response(
                    self.provider(),
                    error.kind(),
                    status,
                    headers,
                    error.message(),
                    "x-request-id",
                );
                if let Some(code) = error.code() {
                    full = full.with_code(code);
                }
                full
            }
            _ => error,
        }
    }
}

/// The error an OpenAI-shaped error body stands for, with the status when there was one
/// (`None` for an in-band stream error frame). The Responses API shares the shape.
pub(crate) fn openai_error(provider: ProviderKind, status: Option<u16>, value: &Value) -> LlmError {
    // `{"error": {...}}`, `{"error": "text"}`, or vLLM's legacy flat `{"object": "error", ...}`.
    let (object, message) = match value.get("error") {
        Some(Value::String(text)) => (&Value::Null, text.clone()),
        Some(object @ Value::Object(_)) => (
            object,
            str_at(object, &["message"]).unwrap_or_default().to_owned(),
        ),
        _ => (
            value,
            str_at(value, &["message"]).unwrap_or_default().to_owned(),
        ),
    };
    let kind_name = str_at(object, &["type"]).unwrap_or_default();
    let code = scalar_text(object.get("code"));
    // vLLM and llama.cpp put the HTTP status in `code`; use it for an in-band frame.
    let status = status.or_else(|| {
        object
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
    });
    let kind = openai_kind(status, kind_name, code.as_deref().unwrap_or(""), &message);
    let message = with_filtered_categories(message, object);
    let mut error = LlmError::new(kind, message).with_provider(provider);
    if let Some(code) = code.filter(|c| c.parse::<u16>().is_err()) {
        error = error.with_code(code);
    } else if !kind_name.is_empty() {
        error = error.with_code(kind_name);
    }
    if let Some(status) = status
        && status >= 400
    {
        error = error.with_status(status);
    }
    error
}

/// `message`, followed by the categories Azure's content filter flagged (its
/// `innererror.content_filter_result`), so the caller sees why without the body.
fn with_filtered_categories(message: String, error: &Value) -> String {
    let Some(results) =
        get(error, &["innererror", "content_filter_result"]).and_then(Value::as_object)
    else {
        return message;
    };
    let flagged: Vec<String> = results
        .iter()
        .filter(|(_, result)| get(result, &["filtered"]).and_then(Value::as_bool) == Some(true))
        .map(|(category, result)| match str_at(result, &["severity"]) {
            Some(severity) => format!("{category} ({severity})"),
            None => category.clone(),
        })
        .collect();
    if flagged.is_empty() {
        message
    } else {
        format!("{message} [filtered: {}]", flagged.join(", "))
    }
}

fn openai_kind(status: Option<u16>, kind: &str, code: &str, message: &str) -> ErrorKind {
    if code == "context_length_exceeded"
        || kind == "exceed_context_size_error"
        || mentions_context_length(message)
    {
        return ErrorKind::ContextLengthExceeded;
    }
    if code == "insufficient_quota" || kind == "insufficient_quota" {
        return ErrorKind::QuotaExhausted;
    }
    if code == "content_filter" || kind == "content_filter" {
        return ErrorKind::ContentFiltered;
    }
    if code == "invalid_api_key" {
        return ErrorKind::Auth;
    }
    let rate_limited =
        status == Some(429) || code == "rate_limit_exceeded" || kind == "rate_limit_exceeded";
    if rate_limited {
        // "Request too large for gpt-4o ... on tokens per min": it can never fit the limit.
        return if message.trim_start().starts_with("Request too large") {
            ErrorKind::RequestTooLarge
        } else {
            ErrorKind::RateLimited
        };
    }
    if let Some(status) = status {
        return ErrorKind::from_status(status);
    }
    match kind {
        "invalid_request_error" | "BadRequestError" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Auth,
        "permission_error" => ErrorKind::Permission,
        "not_found_error" | "NotFoundError" => ErrorKind::NotFound,
        "service_unavailable_error" | "unavailable_error" | "overloaded_error" => {
            ErrorKind::Overloaded
        }
        "tokens" | "requests" => ErrorKind::RateLimited,
        _ => ErrorKind::Server,
    }
}

/// The reply text: a string, or (some compatible servers) an array of text parts.
fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn usage(value: &Value) -> Usage {
    wire::WireUsage::loose(value).into()
}

/// Whether `model` belongs to a family that predates `max_completion_tokens`.
fn legacy_max_tokens(model: &str) -> bool {
    model.starts_with("gpt-3.5")
        || model.starts_with("gpt-35")
        || model == "gpt-4"
        || model.starts_with("gpt-4-")
}

fn encode_body(request: &ChatRequest, server: ServerKind) -> Result<Vec<u8>, String> {
    let (max_completion_tokens, max_tokens) = match request.max_output_tokens {
        Some(max)
            if matches!(server, ServerKind::OpenAi | ServerKind::AzureOpenAi)
                && !legacy_max_tokens(&request.model) =>
        {
            (Some(max), None)
        }
        max => (None, max),
    };
    let body = out::Body {
        max_completion_tokens,
        max_tokens,
        messages: out::Messages(&request.messages),
        model: &request.model,
        response_format: match &request.response_format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(out::ResponseFormat {
                json_schema: None,
                kind: "json_object",
            }),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => Some(out::ResponseFormat {
                json_schema: Some(out::JsonSchema {
                    name,
                    schema,
                    strict: *strict,
                }),
                kind: "json_schema",
            }),
        },
        stop: (!request.stop.is_empty()).then_some(&*request.stop),
        stream: request.stream.then_some(true),
        stream_options: request.stream.then_some(out::StreamOptions {
            include_usage: true,
        }),
        // Widened as a `serde_json::Value` widens an `f32`, so the bytes stay the same.
        temperature: request.temperature.map(f64::from),
        tool_choice: request.tool_choice.as_ref().map(|choice| match choice {
            ToolChoice::Auto => out::ToolChoice::Mode("auto"),
            ToolChoice::None => out::ToolChoice::Mode("none"),
            ToolChoice::Required => out::ToolChoice::Mode("required"),
            ToolChoice::Tool(name) => out::ToolChoice::Function {
                function: out::Name { name },
                kind: "function",
            },
        }),
        tools: (!request.tools.is_empty()).then_some(out::Tools(&request.tools)),
        top_p: request.top_p.map(f64::from),
        user: request.user.as_deref(),
    };
    if request.extra.is_empty() {
        serde_json::to_vec(&body)
    } else {
        // Pass-through fields go in among the adapter's own, never over them.
        serde_json::to_value(&body).and_then(|mut body| {
            if let Value::Object(map) = &mut body {
                merge_extra(map, &request.extra);
            }
            serde_json::to_vec(&body)
        })
    }
    .map_err(|e| e.to_string())
}

/// The text of a message, borrowed when it is a single part.
fn joined_text(message: &Message) -> Cow<'_, str> {
    let mut texts = message.texts();
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(text), None) => Cow::Borrowed(text),
        _ => Cow::Owned(message.joined_text()),
    }
}

/// The request body, as typed structs that borrow from the [`ChatRequest`]. Fields are
/// declared in name order: the order a `serde_json::Map` writes them in, so a body with
/// pass-through fields (written through a map) and one without agree.
mod out {
    use std::borrow::Cow;

    use seawall_core::{
        ContentPart, ImageDetail, ImageSource, Message, Role, ToolCall, ToolDefinition,
    };
    use serde::ser::SerializeMap;
    use serde::{Serialize, Serializer};
    use serde_json::Value;

    #[derive(Serialize)]
    pub(super) struct Body<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) max_completion_tokens: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) max_tokens: Option<u32>,
        pub(super) messages: Messages<'a>,
        pub(super) model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) response_format: Option<ResponseFormat<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) stop: Option<&'a [String]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) stream: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) stream_options: Option<StreamOptions>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) temperature: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) tool_choice: Option<ToolChoice<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) tools: Option<Tools<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) top_p: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) user: Option<&'a str>,
    }

    #[derive(Serialize)]
    pub(super) struct ResponseFormat<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) json_schema: Option<JsonSchema<'a>>,
        #[serde(rename = "type")]
        pub(super) kind: &'static str,
    }

    #[derive(Serialize)]
    pub(super) struct JsonSchema<'a> {
        pub(super) name: &'a str,
        pub(super) schema: &'a Value,
        pub(super) strict: bool,
    }

    #[derive(Serialize)]
    pub(super) struct StreamOptions {
        pub(super) include_usage: bool,
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    pub(super) enum ToolChoice<'a> {
        Mode(&'static str),
        Function {
            function: Name<'a>,
            #[serde(rename = "type")]
            kind: &'static str,
        },
    }

    #[derive(Serialize)]
    pub(super) struct Name<'a> {
        pub(super) name: &'a str,
    }

    pub(super) struct Tools<'a>(pub(super) &'a [ToolDefinition]);

    impl Serialize for Tools<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Tool<'a> {
                function: Function<'a>,
                #[serde(rename = "type")]
                kind: &'static str,
            }
            #[derive(Serialize)]
            struct Function<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                description: Option<&'a str>,
                name: &'a str,
                parameters: &'a Value,
            }
            serializer.collect_seq(self.0.iter().map(|tool| Tool {
                function: Function {
                    description: tool.description.as_deref(),
                    name: &tool.name,
                    parameters: &tool.parameters,
                },
                kind: "function",
            }))
        }
    }

    pub(super) struct Messages<'a>(pub(super) &'a [Message]);

    impl Serialize for Messages<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(OutMessage))
        }
    }

    struct OutMessage<'a>(&'a Message);

    impl Serialize for OutMessage<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let message = self.0;
            let mut map = serializer.serialize_map(None)?;
            match message.role {
                Role::System | Role::Tool => {
                    map.serialize_entry("content", &super::joined_text(message))?;
                }
                Role::Assistant => {
                    let text = super::joined_text(message);
                    if text.is_empty() && !message.tool_calls.is_empty() {
                        map.serialize_entry("content", &())?;
                    } else {
                        map.serialize_entry("content", &text)?;
                    }
                }
                Role::User => {
                    let only_text = message
                        .content
                        .iter()
                        .all(|part| matches!(part, ContentPart::Text { .. }));
                    if only_text {
                        map.serialize_entry("content", &super::joined_text(message))?;
                    } else {
                        map.serialize_entry("content", &Parts(&message.content))?;
                    }
                }
            }
            if let Some(name) = &message.name {
                map.serialize_entry("name", name)?;
            }
            map.serialize_entry("role", message.role.as_str())?;
            if let Some(id) = &message.tool_call_id {
                map.serialize_entry("tool_call_id", id)?;
            }
            if !message.tool_calls.is_empty() {
                map.serialize_entry("tool_calls", &ToolCalls(&message.tool_calls))?;
            }
            map.end()
        }
    }

    struct ToolCalls<'a>(&'a [ToolCall]);

    impl Serialize for ToolCalls<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Call<'a> {
                function: CallFunction<'a>,
                id: &'a str,
                #[serde(rename = "type")]
                kind: &'static str,
            }
            #[derive(Serialize)]
            struct CallFunction<'a> {
                arguments: &'a str,
                name: &'a str,
            }
            serializer.collect_seq(self.0.iter().map(|call| Call {
                function: CallFunction {
                    arguments: &call.arguments,
                    name: &call.name,
                },
                id: &call.id,
                kind: "function",
            }))
        }
    }

    struct Parts<'a>(&'a [ContentPart]);

    impl Serialize for Parts<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            #[serde(untagged)]
            enum Part<'a> {
                Text {
                    text: &'a str,
                    #[serde(rename = "type")]
                    kind: &'static str,
                },
                Image {
                    image_url: ImageUrl<'a>,
                    #[serde(rename = "type")]
                    kind: &'static str,
                },
            }
            #[derive(Serialize)]
            struct ImageUrl<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                detail: Option<&'static str>,
                url: Cow<'a, str>,
            }
            serializer.collect_seq(self.0.iter().map(|part| match part {
                ContentPart::Text { text, .. } => Part::Text { text, kind: "text" },
                ContentPart::Image { source, detail, .. } => Part::Image {
                    image_url: ImageUrl {
                        detail: detail.map(|detail| match detail {
                            ImageDetail::Auto => "auto",
                            ImageDetail::Low => "low",
                            ImageDetail::High => "high",
                        }),
                        url: match source {
                            ImageSource::Url { url } => Cow::Borrowed(url.as_str()),
                            ImageSource::Base64 { media_type, data } => {
                                Cow::Owned(format!("data:{media_type};base64,{data}"))
                            }
                        },
                    },
                    kind: "image_url",
                },
            }))
        }
    }
}

/// Decodes OpenAI chat completion chunks.
///
/// The finish reason is held back until `[DONE]` or a clean end of the body (a usage chunk
/// may follow it), so a connection cut after the finish reason still ends in an error.
#[derive(Debug)]
pub struct OpenAiStreamDecoder {
    provider: ProviderKind,
    started: bool,
    finish: Option<FinishReason>,
    trailing_usage: Option<Usage>,
}

impl Default for OpenAiStreamDecoder {
    fn default() -> Self {
        Self {
            provider: ProviderKind::OpenAi,
            started: false,
            finish: None,
            trailing_usage: None,
        }
    }
}

impl OpenAiStreamDecoder {
    fn start(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: id.map(str::to_owned),
                model: model.map(str::to_owned),
            });
        }
    }

    fn usage_seen(&mut self, usage: Usage, out: &mut Vec<StreamEvent>) {
        if self.finish.is_some() {
            self.trailing_usage = Some(usage);
        } else {
            out.push(StreamEvent::Usage(usage));
        }
    }

    fn decode_typed(&mut self, chunk: wire::Chunk<'_>, out: &mut Vec<StreamEvent>) {
        let empty = |text: &Option<Cow<'_, str>>| text.as_deref().is_none_or(str::is_empty);
        if !self.started
            && empty(&chunk.id)
            && empty(&chunk.model)
            && chunk.choices.as_ref().is_none_or(Vec::is_empty)
            && chunk.usage.is_none()
        {
            // Azure's first chunk: only `prompt_filter_results`, the stream starts after it.
            return;
        }
        self.start(chunk.id.as_deref(), chunk.model.as_deref(), out);
        // Only the first choice is the reply (with `n > 1`, other choices arrive too).
        let choice = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|choice| choice.index.unwrap_or(0) == 0);
        if let Some(choice) = choice {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                    out.push(StreamEvent::TextDelta(text.into_owned()));
                }
                for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
                    let (name, arguments) = call
                        .function
                        .map(|f| (f.name, f.arguments))
                        .unwrap_or_default();
                    out.push(StreamEvent::ToolCallDelta {
                        index: u32::try_from(call.index.unwrap_or(position as u64))
                            .unwrap_or(u32::MAX),
                        id: call.id.map(Cow::into_owned),
                        name: name.map(Cow::into_owned),
                        arguments: arguments.map(Cow::into_owned).unwrap_or_default(),
                    });
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(&reason));
            }
        }
        // Groq reports streamed usage under `x_groq.usage`.
        if let Some(usage) = chunk.usage.or(chunk.x_groq.and_then(|x| x.usage)) {
            self.usage_seen(usage.into(), out);
        }
    }

    fn decode_value(
        &mut self,
        chunk: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<Flow, Malformed> {
        if get(&chunk, &["error"]).is_some() {
            out.push(StreamEvent::Error(openai_error(
                self.provider,
                None,
                &chunk,
            )));
            return Ok(Flow::End);
        }
        let empty = |key: &str| str_at(&chunk, &[key]).is_none_or(str::is_empty);
        let no_choice = get(&chunk, &["choices"])
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !self.started
            && empty("id")
            && empty("model")
            && no_choice
            && get(&chunk, &["usage"]).is_none()
        {
            // Azure's first chunk: only `prompt_filter_results`, the stream starts after it.
            return Ok(Flow::Continue);
        }
        self.start(str_at(&chunk, &["id"]), str_at(&chunk, &["model"]), out);
        // Only the first choice is the reply (with `n > 1`, other choices arrive too).
        let choice = get(&chunk, &["choices"])
            .and_then(Value::as_array)
            .and_then(|choices| {
                choices
                    .iter()
                    .find(|c| get(c, &["index"]).and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        if let Some(choice) = choice {
            if let Some(text) = str_at(choice, &["delta", "content"])
                && !text.is_empty()
            {
                out.push(StreamEvent::TextDelta(text.to_owned()));
            }
            if let Some(calls) = get(choice, &["delta", "tool_calls"]).and_then(Value::as_array) {
                for (position, call) in calls.iter().enumerate() {
                    let index = get(call, &["index"])
                        .and_then(Value::as_u64)
                        .unwrap_or(position as u64);
                    out.push(StreamEvent::ToolCallDelta {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        id: str_at(call, &["id"]).map(str::to_owned),
                        name: str_at(call, &["function", "name"]).map(str::to_owned),
                        arguments: str_at(call, &["function", "arguments"])
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
            }
            if let Some(reason) = str_at(choice, &["finish_reason"]) {
                self.finish = Some(finish_reason(reason));
            }
        }
        // Groq reports streamed usage under `x_groq.usage`.
        if let Some(value) = get(&chunk, &["usage"]).or_else(|| get(&chunk, &["x_groq", "usage"])) {
            self.usage_seen(usage(value), out);
        }
        Ok(Flow::Continue)
    }

    fn flush_end(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(reason) = self.finish.take() {
            out.push(StreamEvent::Finish(reason));
        }
        if let Some(usage) = self.trailing_usage.take() {
            out.push(StreamEvent::Usage(usage));
        }
    }
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed> {
        let data = event.data.trim();
        if data == "[DONE]" {
            if self.finish.is_some() {
                self.flush_end(out);
            } else {
                out.push(StreamEvent::Error(
                    LlmError::new(
                        ErrorKind::StreamTruncated,
                        "[DONE] arrived before a finish_reason",
                    )
                    .with_provider(self.provider),
                ));
            }
            return Ok(Flow::End);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        // The typed reading is the fast path; a chunk whose fields have unexpected types
        // (some compatible servers) is read again loosely rather than lost.
        if is_object(data.as_bytes())
            && let Ok(chunk) = serde_json::from_str::<wire::Chunk<'_>>(data)
            && chunk.error.is_none()
        {
            self.decode_typed(chunk, out);
            return Ok(Flow::Continue);
        }
        self.decode_value(serde_json::from_str(data)?, out)
    }

    fn finish(&mut self, clean: bool, out: &mut Vec<StreamEvent>) -> bool {
        if clean && self.finish.is_some() {
            self.flush_end(out);
            true
        } else {
            false
        }
    }
}

/// Typed stream chunks and response bodies: the fast paths of [`OpenAiStreamDecoder`] and
/// [`OpenAiDialect::decode_response`]. Strings borrow from the input unless they hold escapes.
/// A field of an unexpected type fails the typed reading, and the caller falls back to the
/// loose one.
mod wire {
    use std::borrow::Cow;
    use std::fmt;

    use seawall_core::Usage;
    use serde::Deserialize;
    use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
    use serde_json::Value;

    use crate::json::{cow_at, get, str_at, u64_at};

    #[derive(Deserialize)]
    pub(super) struct Response<'a> {
        #[serde(borrow, default)]
        pub(super) id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) model: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) choices: Option<Vec<ResponseChoice<'a>>>,
        #[serde(default)]
        pub(super) usage: Option<WireUsage>,
        #[serde(default)]
        pub(super) error: Option<IgnoredAny>,
    }

    impl<'a> Response<'a> {
        /// The same fields read from any JSON value: a field of another type is absent,
        /// and only the first choice is read.
        pub(super) fn loose(value: &'a Value) -> Self {
            Self {
                id: cow_at(value, &["id"]),
                model: cow_at(value, &["model"]),
                choices: get(value, &["choices"])
                    .and_then(|choices| choices.get(0))
                    .map(|choice| {
                        vec![ResponseChoice {
                            message: Some(ResponseMessage::loose(
                                get(choice, &["message"]).unwrap_or(&Value::Null),
                            )),
                            finish_reason: cow_at(choice, &["finish_reason"]),
                        }]
                    }),
                usage: get(value, &["usage"]).map(WireUsage::loose),
                error: None,
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct ResponseChoice<'a> {
        #[serde(borrow, default)]
        pub(super) message: Option<ResponseMessage<'a>>,
        #[serde(borrow, default)]
        pub(super) finish_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize, Default)]
    pub(super) struct ResponseMessage<'a> {
        #[serde(default)]
        pub(super) content: Option<Content>,
        #[serde(borrow, default)]
        pub(super) tool_calls: Option<Vec<ToolCallDelta<'a>>>,
        #[serde(borrow, default)]
        pub(super) refusal: Option<Cow<'a, str>>,
    }

    impl<'a> ResponseMessage<'a> {
        fn loose(message: &'a Value) -> Self {
            Self {
                content: Some(Content::loose(get(message, &["content"]))),
                tool_calls: get(message, &["tool_calls"])
                    .and_then(Value::as_array)
                    .map(|calls| {
                        calls
                            .iter()
                            .map(|call| ToolCallDelta {
                                index: None,
                                id: cow_at(call, &["id"]),
                                function: Some(Function {
                                    name: cow_at(call, &["function", "name"]),
                                    arguments: cow_at(call, &["function", "arguments"]),
                                }),
                            })
                            .collect()
                    }),
                refusal: cow_at(message, &["refusal"]),
            }
        }
    }

    /// The reply text: a string, or (some compatible servers) an array of parts whose
    /// `text`s are joined.
    pub(super) struct Content(pub(super) String);

    impl Content {
        /// Any JSON value: a string, the `text`s of an array's parts, or nothing.
        fn loose(content: Option<&Value>) -> Self {
            Self(match content {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|part| str_at(part, &["text"]))
                    .collect(),
                _ => String::new(),
            })
        }
    }

    #[derive(Deserialize)]
    struct Part<'a> {
        #[serde(borrow, default)]
        text: Option<Cow<'a, str>>,
    }

    impl<'de> Deserialize<'de> for Content {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct ContentVisitor;

            impl<'de> Visitor<'de> for ContentVisitor {
                type Value = Content;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string or an array of text parts")
                }

                fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Content, E> {
                    Ok(Content(text.to_owned()))
                }

                fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Content, E> {
                    Ok(Content(text))
                }

                fn visit_seq<A: SeqAccess<'de>>(self, mut parts: A) -> Result<Content, A::Error> {
                    let mut text = String::new();
                    while let Some(part) = parts.next_element::<Part<'de>>()? {
                        if let Some(part) = part.text {
                            text.push_str(&part);
                        }
                    }
                    Ok(Content(text))
                }
            }

            deserializer.deserialize_any(ContentVisitor)
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Chunk<'a> {
        #[serde(borrow, default)]
        pub(super) id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) model: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) choices: Option<Vec<Choice<'a>>>,
        #[serde(default)]
        pub(super) usage: Option<WireUsage>,
        #[serde(default)]
        pub(super) x_groq: Option<XGroq>,
        #[serde(default)]
        pub(super) error: Option<IgnoredAny>,
    }

    #[derive(Deserialize)]
    pub(super) struct Choice<'a> {
        #[serde(default)]
        pub(super) index: Option<u64>,
        #[serde(borrow, default)]
        pub(super) delta: Option<Delta<'a>>,
        #[serde(borrow, default)]
        pub(super) finish_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Delta<'a> {
        #[serde(borrow, default)]
        pub(super) content: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) tool_calls: Option<Vec<ToolCallDelta<'a>>>,
    }

    #[derive(Deserialize)]
    pub(super) struct ToolCallDelta<'a> {
        #[serde(default)]
        pub(super) index: Option<u64>,
        #[serde(borrow, default)]
        pub(super) id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) function: Option<Function<'a>>,
    }

    #[derive(Deserialize, Default)]
    pub(super) struct Function<'a> {
        #[serde(borrow, default)]
        pub(super) name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub(super) arguments: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub(super) struct XGroq {
        #[serde(default)]
        pub(super) usage: Option<WireUsage>,
    }

    impl WireUsage {
        /// The same fields read from any JSON value: a field of another type is absent.
        pub(super) fn loose(value: &Value) -> Self {
            let details = |path: &str| {
                Some(Details {
                    cached_tokens: u64_at(value, &[path, "cached_tokens"]),
                    cache_write_tokens: u64_at(value, &[path, "cache_write_tokens"]),
                    reasoning_tokens: u64_at(value, &[path, "reasoning_tokens"]),
                })
            };
            Self {
                prompt_tokens: u64_at(value, &["prompt_tokens"]),
                completion_tokens: u64_at(value, &["completion_tokens"]),
                prompt_tokens_details: details("prompt_tokens_details"),
                completion_tokens_details: details("completion_tokens_details"),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct WireUsage {
        #[serde(default)]
        prompt_tokens: Option<u64>,
        #[serde(default)]
        completion_tokens: Option<u64>,
        #[serde(default)]
        prompt_tokens_details: Option<Details>,
        #[serde(default)]
        completion_tokens_details: Option<Details>,
    }

    #[derive(Deserialize)]
    struct Details {
        #[serde(default)]
        cached_tokens: Option<u64>,
        #[serde(default)]
        cache_write_tokens: Option<u64>,
        #[serde(default)]
        reasoning_tokens: Option<u64>,
    }

    impl From<WireUsage> for Usage {
        fn from(usage: WireUsage) -> Self {
            let prompt = usage.prompt_tokens_details.as_ref();
            let completion = usage.completion_tokens_details.as_ref();
            Usage::new(
                usage.prompt_tokens.unwrap_or(0),
                usage.completion_tokens.unwrap_or(0),
            )
            .with_cached_input(prompt.and_then(|d| d.cached_tokens).unwrap_or(0))
            .with_cache_writes(prompt.and_then(|d| d.cache_write_tokens).unwrap_or(0))
            .with_reasoning(completion.and_then(|d| d.reasoning_tokens).unwrap_or(0))
        }
    }
}
