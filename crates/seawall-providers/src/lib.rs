//! Typed adapters for LLM provider HTTP APIs.
//!
//! Each adapter is a `tower::Service<ChatRequest, Response = ChatResponse, Error =
//! BoxError>` over an HTTP service (`Service<http::Request<Full<Bytes>>, Response =
//! http::Response<B>>`): the default [`http::HttpClient`], a mock in tests, or the simulator
//! at a loopback base URL. It translates the unified model of `seawall-core` to the
//! provider's wire format and back, decodes server-sent events incrementally, and maps
//! status codes, error bodies and rate-limit headers to [`LlmError`](seawall_core::LlmError)
//! (kind, hints, quota snapshot, provider, request id, code) and
//! [`QuotaSnapshot`](seawall_core::QuotaSnapshot).
//!
//! | adapter | construct with |
//! |---|---|
//! | [`OpenAi`] | `OpenAi::new(http, OpenAiConfig::new(key))` |
//! | [`OpenAiCompatible`] | `OpenAi::new(http, OpenAiConfig::compatible(base_url, ServerKind::Ollama))` |
//! | Azure OpenAI ([`OpenAi`]) | `OpenAi::new(http, OpenAiConfig::azure(endpoint, deployment, api_version, key))` |
//! | [`Anthropic`] | `Anthropic::new(http, AnthropicConfig::new(key))` |
//! | [`Gemini`] | `Gemini::new(http, GeminiConfig::new(key))` |
//! | [`OpenAiResponses`] | `OpenAiResponses::new(http, ResponsesConfig::new(key))` |
//!
//! Every config has `with_base_url`. Requests are validated before anything is sent.
//! [`Adapter::count_tokens`] asks the providers that have one (Anthropic, Gemini, the OpenAI
//! Responses API) for the exact input token count of a request.
//!
//! # Streaming
//!
//! A request with `stream: true` returns as soon as the response headers arrive: a
//! [`ChatResponse`](seawall_core::ChatResponse) whose `stream` yields
//! [`StreamEvent`](seawall_core::StreamEvent)s, and whose `quota` is already read from the
//! headers (its `id` and `model` stay empty: they arrive in the stream's `Start` event). The stream ends with `Finish` (then
//! possibly one `Usage`) only when the provider's end of message arrived; otherwise with an
//! `Error` event: see [`stream`] for the rules. Malformed events are skipped and counted in
//! [`Adapter::stream_metrics`] ([`StreamMetrics::malformed_skipped`]), or fail the stream
//! under [`MalformedPolicy::Fail`].
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use seawall_core::{ChatRequest, Message};
//! use seawall_providers::{ApiKey, OpenAi, OpenAiConfig};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), seawall_core::BoxError> {
//! // Any HTTP service will do; here, a canned one.
//! let http = service_fn(|_request: http::Request<Full<Bytes>>| async {
//!     let body = r#"{"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","choices":[{"index":0,
//!         "message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],
//!         "usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"#;
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
//! });
//! let openai = OpenAi::new(http, OpenAiConfig::new(ApiKey::new("sk-test")));
//! let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
//! let response = openai.oneshot(request).await?;
//! assert_eq!(response.text(), "Paris.");
//! assert_eq!(response.model, "gpt-4o-2024-08-06");
//! assert_eq!(response.usage.map(|u| u.total()), Some(14));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

mod adapter;
pub mod anthropic;
mod count;
mod count_future;
pub mod dialect;
mod embed;
mod embed_future;
mod encode;
mod error;
pub mod future;
pub mod gemini;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod http;
mod json;
mod key;
pub mod openai;
pub mod raw;
pub mod responses;
pub mod sse;
pub mod stream;
mod whole_body;

pub use adapter::Adapter;
pub use anthropic::{Anthropic, AnthropicAuth, AnthropicConfig, AnthropicDialect};
pub use count_future::CountTokensFuture;
pub use dialect::{Dialect, StreamDecoder};
pub use embed_future::EmbedFuture;
pub use gemini::{Gemini, GeminiConfig, GeminiDialect};
pub use key::ApiKey;
pub use openai::{KeyHeader, OpenAi, OpenAiCompatible, OpenAiConfig, OpenAiDialect, ServerKind};
pub use responses::{OpenAiResponses, ResponsesConfig, ResponsesDialect};
pub use stream::{DecodedStream, MalformedPolicy, StreamMetrics};
