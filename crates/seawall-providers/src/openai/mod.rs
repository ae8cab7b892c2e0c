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
//!
//! [`FinishReason::ContentFilter`]: seawall_core::FinishReason::ContentFilter

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
use crate::dialect::{Dialect, header_text};
use crate::error::{from_response, non_json_message};
use crate::json::{is_object, join_url, post_bytes};
use crate::key::ApiKey;

pub(crate) use encode::account_headers;
use encode::encode_body;
pub(crate) use error::openai_error;
pub use stream::OpenAiStreamDecoder;

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
        OpenAiStreamDecoder::new(self.provider())
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        header_text(headers, "x-request-id")
    }
}
