//! The model every seawall layer shares.
//!
//! This crate has no runtime dependency (no tokio, no hyper), so adapters, layers, the
//! simulator and the gateway can all depend on it:
//!
//! - [`ChatRequest`] / [`ChatResponse`] / [`StreamEvent`]: one request and response model for
//!   every provider, with streamed responses as a typed [`EventStream`].
//! - [`LlmError`] with an [`ErrorKind`], retry hints and a [`QuotaSnapshot`]; the layer-local
//!   rejections in [`rejection`] ([`CircuitOpen`], [`RateLimitRejected`], [`TimedOut`],
//!   [`DeadlineExceeded`], [`AllTargetsFailed`]).
//! - [`Classify`]: the classifier trait behind every retry, failover and breaker decision,
//!   with the built-in table ([`BuiltinClassifier`], or the [`classify`] function) as its
//!   default. It walks an error's `source()` chain and returns a [`Classification`]; a
//!   stack is given one [`Classifier`] and hands it to every layer.
//! - [`tokens`]: token estimation behind the [`TokenEstimator`] trait: a fast heuristic upper
//!   bound for any model, and exact counts for OpenAI model families (feature `tiktoken`).
//! - [`hints`]: retry and quota hints from response headers and error bodies.
//! - [`LlmRequest`] / [`LlmResponse`]: what a layer needs to know of a request and a
//!   response, implemented for the typed model and for raw `http` messages, so every layer
//!   works on both paths.
//! - [`Prices`] and [`Cost`]: a dated price table per model and the cost of a call's usage,
//!   cached and cache-written tokens at their own price.
//! - [`RequestContext`] carried in every request: the overall [`Deadline`], the attempt
//!   number, the [`RouteHint`] and the per-call [`Trail`].
//!
//! ```
//! use seawall_core::{ChatRequest, Message, classify, Disposition, ErrorKind, LlmError};
//! use std::time::Duration;
//!
//! let request = ChatRequest::new(
//!     "gpt-4o",
//!     [Message::system("Answer in one word."), Message::user("Capital of France?")],
//! )
//! .with_max_output_tokens(16);
//! assert!(request.validate().is_ok());
//!
//! let error = LlmError::new(ErrorKind::RateLimited, "Rate limit reached for requests")
//!     .with_status(429)
//!     .with_retry_after(Duration::from_secs(2));
//! let verdict = classify(&error);
//! assert_eq!(verdict.disposition, Disposition::Retry);
//! assert_eq!(verdict.retry_after, Some(Duration::from_secs(2)));
//! assert!(!verdict.health_failure, "a 429 parks the target, it does not trip the breaker");
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod calendar;
mod call;
mod classify;
mod context;
mod embed;
mod error;
pub mod fault;
pub mod hints;
mod price;
mod provider;
mod quota;
pub mod rejection;
mod request;
mod response;
mod shared_trail;
mod stream;
pub mod tokens;
mod trail;

pub use call::{LlmRequest, LlmResponse};
pub use classify::{
    BuiltinClassifier, Cause, Classification, Classifier, Classify, ClassifyPolicy,
    ContentFilterPolicy, Disposition, classify, classify_with,
};
pub use context::{
    CacheDirectives, CallOptions, Clock, Deadline, Now, RequestContext, RouteHint, TraceParent,
};
pub use embed::{Embedder, EmbeddingEncoding, EmbeddingRequest, Embeddings, EmbeddingsUnsupported};
pub use error::{ErrorChain, ErrorKind, LlmError, RetryHints, error_chain, find_error};
pub use price::{Cost, ModelPrice, PerMillion, Prices};
pub use provider::{ProviderKind, TargetId};
pub use quota::{QuotaSnapshot, QuotaWindow};
pub use rejection::{
    AllTargetsFailed, CircuitOpen, DeadlineExceeded, OpenReason, RateLimitRejected, RejectReason,
    TimedOut, TimeoutKind,
};
pub use request::{
    CacheControl, ChatRequest, ContentPart, ImageDetail, ImageSource, InvalidRequest, Message,
    ResponseFormat, Role, ToolCall, ToolChoice, ToolDefinition,
};
pub use response::{AssistantMessage, ChatResponse, FinishReason, Usage};
pub use shared_trail::SharedTrail;
pub use stream::{EventStream, StreamAccumulator, StreamEvent, StreamWatcher};
pub use tokens::{HeuristicEstimator, TokenEstimate, TokenEstimator};
pub use trail::{
    AttemptOutcome, AttemptRecord, BreakerState, CacheStatus, Charge, Downgrade, ErrorWithTrail,
    RecoveryOutcome, RecoveryPath, RecoveryRecord, Trail, TrailRecorder,
};

/// The error type at every layer boundary, the same shape as tower's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
