//! The OpenAI Responses API.
//!
//! - `POST {base_url}/responses` with `Authorization: Bearer <key>` and the optional
//!   `OpenAI-Organization` / `OpenAI-Project` headers, as for chat completions.
//! - The conversation goes in `input` as items: messages (text and `input_image` parts),
//!   the assistant's tool calls as `function_call` items and tool results as
//!   `function_call_output` items. System messages become `instructions`; function tools
//!   are flat (`{type, name, description, parameters, strict}`); the output cap is
//!   `max_output_tokens` (at least 16); a response format goes in `text.format`.
//! - Requests the API refuses are refused here, with nothing sent: stop sequences (the API
//!   has none), an output cap below 16, a tool result without its call id.
//! - The reply's `output` holds `message` items (their `output_text` parts are the text),
//!   `function_call` items (the tool calls) and `reasoning` items (skipped). A `status` of
//!   `incomplete` ends in [`FinishReason::Length`](seawall_core::FinishReason::Length) or
//!   [`FinishReason::ContentFilter`](seawall_core::FinishReason::ContentFilter) after
//!   `incomplete_details.reason`.
//! - Streams are typed events numbered by `sequence_number`; a gap or a repeat is a
//!   malformed stream (skipped and counted, or fatal under
//!   [`MalformedPolicy::Fail`](crate::MalformedPolicy::Fail)). See [`ResponsesStreamDecoder`].
//! - Errors have the chat completions body, `{"error":{message,type,param,code}}`, and map
//!   the same way.
//! - [`Adapter::count_tokens`](crate::Adapter::count_tokens) asks
//!   `POST {base_url}/responses/input_tokens` for the exact input token count.
//!
//! ```
//! use seawall_providers::{ApiKey, OpenAiResponses, ResponsesConfig};
//! # fn demo<S>(http: S) {
//! let openai = OpenAiResponses::new(
//!     http,
//!     ResponsesConfig::new(ApiKey::new("sk-...")).with_project("proj_123"),
//! );
//! # }
//! ```

mod decode;
mod encode;
mod error;
mod stream;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use seawall_core::{ChatRequest, ChatResponse, LlmError, ProviderKind};

use crate::adapter::Adapter;
use crate::dialect::{Dialect, header_text};
use crate::key::ApiKey;
use crate::openai::{KeyHeader, OPENAI_BASE_URL};

pub use stream::ResponsesStreamDecoder;

/// How to reach the OpenAI Responses API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResponsesConfig {
    /// The base URL the paths are appended to, up to and including `/v1`.
    pub base_url: String,
    /// The key, sent as `Authorization: Bearer`; `None` for a server that needs none.
    pub api_key: Option<ApiKey>,
    /// `OpenAI-Organization`.
    pub organization: Option<String>,
    /// `OpenAI-Project`.
    pub project: Option<String>,
}

impl ResponsesConfig {
    /// OpenAI at [`OPENAI_BASE_URL`] with `key`.
    pub fn new(key: impl Into<ApiKey>) -> Self {
        Self {
            base_url: OPENAI_BASE_URL.to_owned(),
            api_key: Some(key.into()),
            organization: None,
            project: None,
        }
    }

    /// Sets the base URL (a proxy, the simulator, another server with the same API).
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

    /// Sends no key (a local server that needs none).
    #[must_use]
    pub fn without_api_key(mut self) -> Self {
        self.api_key = None;
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
}

dialect! {
    /// The OpenAI Responses API wire format.
    ResponsesDialect, ResponsesConfig
}

/// An adapter for the OpenAI Responses API over the HTTP service `S`.
pub type OpenAiResponses<S> = Adapter<ResponsesDialect, S>;

/// The header OpenAI names its request id in.
const REQUEST_ID: &str = "x-request-id";

impl Dialect for ResponsesDialect {
    type Decoder = ResponsesStreamDecoder;

    fn provider(&self) -> ProviderKind {
        ProviderKind::OpenAiResponses
    }

    fn encode(&self, request: &ChatRequest) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let body = encode::body(request).map_err(encode::invalid)?;
        self.post("responses", body, request.stream)
    }

    fn decode_response(&self, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse, LlmError> {
        decode::response(headers, body)
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
        error::from_status(status, headers, body)
    }

    fn stream_decoder(&self) -> ResponsesStreamDecoder {
        ResponsesStreamDecoder::default()
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        header_text(headers, REQUEST_ID)
    }

    fn encode_count_tokens(
        &self,
        request: &ChatRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let body = encode::count_body(request).map_err(encode::invalid)?;
        self.post("responses/input_tokens", body, false)
    }

    fn decode_count_tokens(&self, body: &[u8]) -> Result<u64, LlmError> {
        decode::input_tokens(body)
    }
}

impl ResponsesDialect {
    /// A POST of `body` to `path` under the base URL, with the key and organization headers.
    fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        streaming: bool,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let headers = crate::openai::account_headers(
            ProviderKind::OpenAiResponses,
            self.0.api_key.as_ref(),
            KeyHeader::Bearer,
            self.0.organization.as_deref(),
            self.0.project.as_deref(),
        )?;
        let url = crate::json::join_url(&self.0.base_url, path);
        crate::json::post_bytes(&url, body, streaming, headers).map_err(encode::invalid)
    }
}
