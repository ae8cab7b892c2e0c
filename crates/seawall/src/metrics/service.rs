use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, ChatRequest, ChatResponse};
use tokio::time::Instant;
use tower_service::Service;

use super::future::{Pending, ResponseFuture};
use super::recorder::CallMetrics;

/// A service whose calls are counted; made by [`MetricsLayer`](super::MetricsLayer).
#[derive(Debug, Clone)]
pub struct Metered<S> {
    pub(super) inner: S,
    pub(super) metrics: Arc<CallMetrics>,
}

impl<S> Service<ChatRequest> for Metered<S>
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: Into<BoxError>,
{
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: ChatRequest) -> Self::Future {
        let pending = Pending {
            metrics: Arc::clone(&self.metrics),
            trail: request.context.trail().clone(),
            model: request.model.clone(),
            key: request.context.options().virtual_key.clone(),
            started: Instant::now(),
        };
        ResponseFuture::new(self.inner.call(request), pending)
    }
}
