use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, LlmRequest, LlmResponse};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::RetryLayer;
use super::policy::RetryConfig;

/// The service of [`RetryLayer`].
///
/// Cloning it shares the configuration and the retry budget.
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    config: Arc<RetryConfig>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with `layer`'s configuration (and budget).
    pub fn new(inner: S, layer: &RetryLayer) -> Self {
        tower_layer::Layer::layer(layer, inner)
    }

    pub(crate) fn from_config(inner: S, config: Arc<RetryConfig>) -> Self {
        Self { inner, config }
    }

    inner_service_accessors!();
}

impl<S, Req> Service<Req> for Retry<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: LlmResponse,
    Req: LlmRequest + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        self.config.budget.deposit();
        if let Some(own) = &self.config.classifier {
            // Only then: a raw request without a context is not given one for nothing.
            crate::classifier::install(Some(own), request.context_mut());
        }
        let retry_request = request.clone();
        let clone = self.inner.clone();
        // The readied instance takes this call and stays with the future for the retries.
        let mut inner = mem::replace(&mut self.inner, clone);
        let future = inner.call(request);
        ResponseFuture::new(future, inner, retry_request, self.config.clone())
    }
}
