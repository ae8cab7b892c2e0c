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
//!
//! [`FinishReason::ToolCalls`]: seawall_core::FinishReason::ToolCalls
//! [`FinishReason::ContentFilter`]: seawall_core::FinishReason::ContentFilter
//! [`StreamEvent::ToolCallDelta`]: seawall_core::StreamEvent::ToolCallDelta

mod args;
mod decode;
mod encode;
mod error;
mod stream;
mod wire;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use seawall_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, Embeddings, ErrorKind, LlmError, ProviderKind,
};
use serde_json::Value;

use crate::adapter::Adapter;
use crate::dialect::Dialect;
use crate::error::{decode_error, from_parsed_body, from_response, non_json_message};
use crate::json::{get, join_url, post};
use crate::key::ApiKey;

use decode::candidate_response;
use encode::encode_body;
use error::{gemini_error, prompt_block};
pub use stream::GeminiStreamDecoder;

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
        let key = self.0.api_key.header_value("", ProviderKind::Gemini)?;
        post(&url, &body, request.stream, [("x-goog-api-key", key)]).map_err(invalid)
    }

    fn encode_embeddings(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let key = self.0.api_key.header_value("", ProviderKind::Gemini)?;
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
        let full = from_parsed_body(
            ProviderKind::Gemini,
            &error,
            status,
            headers,
            "x-request-id",
        );
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
