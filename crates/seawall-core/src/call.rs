//! The two small traits that let every layer work on both paths: the typed
//! [`ChatRequest`] → [`ChatResponse`] service and a raw `http::Request` →
//! `http::Response` service that speaks an LLM API.

use std::time::SystemTime;

use crate::context::RequestContext;
use crate::error::{ErrorKind, LlmError};
use crate::hints;
use crate::quota::QuotaSnapshot;
use crate::request::ChatRequest;
use crate::response::{ChatResponse, Usage};
use crate::tokens::{HeuristicEstimator, TokenEstimate, TokenEstimator};

/// A request a layer can weigh and carry context in.
pub trait LlmRequest {
    /// The per-call context, if one was set.
    fn context(&self) -> Option<&RequestContext>;

    /// The per-call context, created empty if there is none.
    fn context_mut(&mut self) -> &mut RequestContext;

    /// What the request weighs against a tokens-per-minute limit.
    fn estimate(&self, estimator: &dyn TokenEstimator, default_output: u32) -> TokenEstimate;

    /// As [`estimate`](Self::estimate), counting the prompt once per call: a typed request
    /// with a trail recorder keeps the count there for the next layer that weighs it with
    /// an estimator that [weighs alike](TokenEstimator::weighs_alike).
    fn estimate_once(&self, estimator: &dyn TokenEstimator, default_output: u32) -> TokenEstimate {
        self.estimate(estimator, default_output)
    }
}

impl LlmRequest for ChatRequest {
    fn context(&self) -> Option<&RequestContext> {
        Some(&self.context)
    }

    fn context_mut(&mut self) -> &mut RequestContext {
        &mut self.context
    }

    fn estimate(&self, estimator: &dyn TokenEstimator, default_output: u32) -> TokenEstimate {
        estimator.estimate(self, default_output)
    }

    fn estimate_once(&self, estimator: &dyn TokenEstimator, default_output: u32) -> TokenEstimate {
        match &self.context.trail {
            Some(recorder) if estimator.weighs_alike().is_some() => TokenEstimate {
                prompt: recorder.prompt_tokens(self, estimator),
                reserved_output: u64::from(self.max_output_tokens.unwrap_or(default_output)),
            },
            _ => estimator.estimate(self, default_output),
        }
    }
}

/// Raw HTTP requests keep their context in the request extensions. Their weight is a
/// [`TokenEstimate`] extension if the caller set one, otherwise an upper bound from the
/// body's length (a JSON body is at least as long as the text in it) plus `default_output`.
impl<B: http_body::Body> LlmRequest for http::Request<B> {
    fn context(&self) -> Option<&RequestContext> {
        self.extensions().get()
    }

    fn context_mut(&mut self) -> &mut RequestContext {
        self.extensions_mut().get_or_insert_default()
    }

    fn estimate(&self, _estimator: &dyn TokenEstimator, default_output: u32) -> TokenEstimate {
        if let Some(estimate) = self.extensions().get::<TokenEstimate>() {
            return *estimate;
        }
        let body = self.body().size_hint();
        let bytes = body.exact().unwrap_or_else(|| body.lower());
        TokenEstimate {
            prompt: bytes.div_ceil(3) + HeuristicEstimator::default().per_message,
            reserved_output: u64::from(default_output),
        }
    }
}

/// A response a layer can judge: whether it is a failure, what it used, and what the
/// provider said about its quota.
pub trait LlmResponse {
    /// The failure this response stands for, if it is one. A typed response never is; a raw
    /// HTTP response is when its status is 4xx or 5xx (an [`LlmError`] extension, set by a
    /// layer that read the error body, gives the precise kind).
    fn failure(&self) -> Option<LlmError>;

    /// The usage the response reported, if known now (a stream reports it at its end).
    fn usage(&self) -> Option<Usage>;

    /// The provider's rate-limit state from the response headers.
    fn quota(&self) -> Option<QuotaSnapshot>;
}

impl LlmResponse for ChatResponse {
    fn failure(&self) -> Option<LlmError> {
        None
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn quota(&self) -> Option<QuotaSnapshot> {
        self.quota.as_deref().copied()
    }
}

impl<B> LlmResponse for http::Response<B> {
    fn failure(&self) -> Option<LlmError> {
        if let Some(error) = self.extensions().get::<LlmError>() {
            return Some(error.clone());
        }
        let status = self.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return None;
        }
        let reason = status.canonical_reason().unwrap_or("error status");
        let now = SystemTime::now();
        let mut error = LlmError::new(ErrorKind::from_status(status.as_u16()), reason)
            .with_status(status.as_u16())
            .with_hints(hints::retry_hints(self.headers(), now));
        let quota = hints::quota_snapshot(self.headers(), now);
        if !quota.is_empty() {
            error = error.with_quota(quota);
        }
        Some(error)
    }

    fn usage(&self) -> Option<Usage> {
        self.extensions().get().copied()
    }

    fn quota(&self) -> Option<QuotaSnapshot> {
        let quota = hints::quota_snapshot(self.headers(), SystemTime::now());
        (!quota.is_empty()).then_some(quota)
    }
}
