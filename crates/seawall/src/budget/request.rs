//! What the budget layer reads of a request, and may change in it, on both paths.

use std::sync::Arc;

use seawall_core::{ChatRequest, LlmRequest};

/// A request the budget layer can price, scope and cap.
pub trait BudgetRequest: LlmRequest {
    /// The model asked for, if the request names one the layer can read.
    fn model(&self) -> Option<&Arc<str>>;

    /// The request's `user` field.
    fn user(&self) -> Option<&Arc<str>>;

    /// Whether the response is streamed (its usage arrives after the response).
    fn streaming(&self) -> bool;

    /// The request's headers (raw HTTP only).
    fn headers(&self) -> Option<&http::HeaderMap>;

    /// The request's output cap (`max_tokens`).
    fn max_output(&self) -> Option<u32>;

    /// Sets the output cap; false if the request cannot be changed.
    fn set_max_output(&mut self, tokens: u32) -> bool;

    /// Sends the request to `model` instead; false if the request cannot be changed.
    fn set_model(&mut self, model: &Arc<str>) -> bool;
}

impl BudgetRequest for ChatRequest {
    fn model(&self) -> Option<&Arc<str>> {
        Some(&self.model)
    }

    fn user(&self) -> Option<&Arc<str>> {
        self.user.as_ref()
    }

    fn streaming(&self) -> bool {
        self.stream
    }

    fn headers(&self) -> Option<&http::HeaderMap> {
        None
    }

    fn max_output(&self) -> Option<u32> {
        self.max_output_tokens
    }

    fn set_max_output(&mut self, tokens: u32) -> bool {
        self.max_output_tokens = Some(tokens);
        true
    }

    fn set_model(&mut self, model: &Arc<str>) -> bool {
        self.model = Arc::clone(model);
        true
    }
}

/// The model of a raw HTTP request, as an extension the caller sets (the layer does not
/// read bodies). Without it, the model's price is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedModel(pub Arc<str>);

/// Raw HTTP requests: the model from a [`RequestedModel`] extension, the output cap from a
/// [`TokenEstimate`](seawall_core::TokenEstimate) extension; the body is never rewritten,
/// so clamping and downgrading are refused.
impl<B: http_body::Body> BudgetRequest for http::Request<B> {
    fn model(&self) -> Option<&Arc<str>> {
        self.extensions()
            .get::<RequestedModel>()
            .map(|model| &model.0)
    }

    fn user(&self) -> Option<&Arc<str>> {
        None
    }

    /// A raw response's body is not read: settled when its head arrives.
    fn streaming(&self) -> bool {
        false
    }

    fn headers(&self) -> Option<&http::HeaderMap> {
        Some(http::Request::headers(self))
    }

    fn max_output(&self) -> Option<u32> {
        self.extensions()
            .get::<seawall_core::TokenEstimate>()
            .map(|estimate| u32::try_from(estimate.reserved_output).unwrap_or(u32::MAX))
    }

    fn set_max_output(&mut self, _tokens: u32) -> bool {
        false
    }

    fn set_model(&mut self, _model: &Arc<str>) -> bool {
        false
    }
}
