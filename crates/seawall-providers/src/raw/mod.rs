//! The raw-HTTP path's error reading: [`ReadErrorBodyLayer`] reads the body of an error
//! response (up to a bound) and decodes it with a provider's [`Dialect`](crate::Dialect),
//! so the layers above classify a raw response exactly as they classify the typed
//! adapter's error.
//!
//! A status and its headers do not say everything: OpenAI's 429 `insufficient_quota` is a
//! spent account (fail over, never retry), a 400 `context_length_exceeded` asks for a
//! larger window (fail over), Anthropic's 529 is an overload. The layer decodes the body
//! into the provider's [`LlmError`](seawall_core::LlmError) and puts it in the response's
//! extensions, where [`LlmResponse::failure`](seawall_core::LlmResponse::failure) finds
//! it. The caller still gets every byte of the body; a body longer than the bound is
//! decoded from its first bytes and relayed whole. A successful response is untouched: its
//! body, streamed or not, is passed through as it arrives.
//!
//! Put it innermost, right above the HTTP client, so the attempt timeout bounds the read:
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use seawall::ServiceBuilderExt;
//! use seawall::retry::RetryLayer;
//! use seawall_core::{BoxError, Disposition, LlmResponse, classify};
//! use seawall_providers::raw::ReadErrorBodyLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // A stand-in for an HTTP client: the account has no credit left.
//! let body = r#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
//! let client = service_fn(move |_request: http::Request<Full<Bytes>>| async move {
//!     let response = http::Response::builder().status(429).body(Full::new(Bytes::from(body)))?;
//!     Ok::<_, BoxError>(response)
//! });
//! let service = ServiceBuilder::new()
//!     .retry_target(RetryLayer::new().max_attempts(3))
//!     .layer(ReadErrorBodyLayer::openai())
//!     .service(client);
//!
//! let request = http::Request::post("http://localhost/v1/chat/completions")
//!     .body(Full::new(Bytes::from_static(b"{}")))?;
//! let response = service.oneshot(request).await?;
//! // Not retried: a spent quota fails over, and the body is still there for the caller.
//! let failure = response.failure().expect("a 429 is a failure");
//! assert_eq!(classify(&failure).disposition, Disposition::Failover);
//! let bytes = response.into_body().collect().await?.to_bytes();
//! assert_eq!(bytes, body.as_bytes());
//! # Ok(())
//! # }
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use self::body::RawBody;
pub use self::future::ResponseFuture;
pub use self::layer::ReadErrorBodyLayer;
pub use self::service::ReadErrorBody;
