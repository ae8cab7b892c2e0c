use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, LlmRequest, LlmResponse};
use tower_service::Service;

use super::future::{ResponseFuture, Ticket};
use super::state::{BreakerHandle, LazyNow, Shared};
use crate::streaming::StreamingResponse;

/// The service of [`BreakerLayer`](super::BreakerLayer).
///
/// Cloning it shares the breaker.
#[derive(Debug, Clone)]
pub struct Breaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Breaker<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// A handle on the shared breaker.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.shared.clone(),
        }
    }

    inner_service_accessors!();
}

impl<S, Req> Service<Req> for Breaker<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: LlmResponse + StreamingResponse,
    Req: LlmRequest,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    /// Only delegates: an open breaker rejects in the response future, never here.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let mut now = LazyNow::default();
        match self.shared.admit(&mut now) {
            // Not sent: the readied inner service stays ready for the next call.
            Err(open) => ResponseFuture::rejected(open),
            Ok(admission) => {
                let clone = self.inner.clone();
                let mut inner = mem::replace(&mut self.inner, clone);
                let started = self.shared.settings.times_calls().then(|| now.get());
                // The stack's classifier travels with the request; the breaker needs it when
                // the outcome is known.
                let stack_classifier = match self.shared.classifier {
                    Some(_) => None,
                    None => crate::classifier::of_context(request.context()).cloned(),
                };
                let ticket = Ticket::new(self.shared.clone(), admission, started, stack_classifier);
                ResponseFuture::new(inner.call(request), ticket)
            }
        }
    }
}
