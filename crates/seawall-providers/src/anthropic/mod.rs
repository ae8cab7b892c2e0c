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
//!
//! [`FinishReason::ContentFilter`]: seawall_core::FinishReason::ContentFilter
//! [`AssistantMessage::refusal`]: seawall_core::AssistantMessage::refusal

mod decode;
mod encode;
mod error;
mod stream;
mod wire;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::Full;
use seawall_core::{ChatRequest, ChatResponse, ErrorKind, LlmError, ProviderKind};
use serde_json::Value;

use crate::adapter::Adapter;
use crate::dialect::{Dialect, header_text};
use crate::error::{decode_error, from_parsed_body, from_response, non_json_message};
use crate::json::{get, is_object, join_url, post, str_at};
use crate::key::ApiKey;

use decode::message_response;
use encode::encode_body;
use error::anthropic_error;
pub use stream::AnthropicStreamDecoder;

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
        let mut headers = Vec::with_capacity(3);
        match config.auth {
            AnthropicAuth::XApiKey => {
                headers.push((
                    "x-api-key",
                    config.api_key.header_value("", ProviderKind::Anthropic)?,
                ));
            }
            AnthropicAuth::Bearer => headers.push((
                "authorization",
                config
                    .api_key
                    .header_value("Bearer ", ProviderKind::Anthropic)?,
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
        let mut full = from_parsed_body(
            ProviderKind::Anthropic,
            &error,
            status,
            headers,
            "request-id",
        );
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
