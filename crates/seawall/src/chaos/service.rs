use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::fault::Fault;
use seawall_core::{BoxError, ChatRequest, ChatResponse, ProviderKind};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Installed;

/// The service of [`ChaosLayer`](super::ChaosLayer).
#[derive(Debug, Clone)]
pub struct Chaos<S> {
    inner: S,
    plan: Option<Arc<Installed>>,
    provider: ProviderKind,
}

impl<S> Chaos<S> {
    pub(crate) fn from_parts(
        inner: S,
        plan: Option<Arc<Installed>>,
        provider: ProviderKind,
    ) -> Self {
        Self {
            inner,
            plan,
            provider,
        }
    }

    inner_service_accessors!();

    pub(crate) fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// Counts one call and returns its fault, if the layer has a plan and a rule fires.
    pub(crate) fn next_fault(&self) -> Option<Fault> {
        self.plan.as_ref().and_then(|plan| plan.next())
    }
}

impl<S> Service<ChatRequest> for Chaos<S>
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: Into<BoxError>,
{
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let Some(fault) = self.next_fault() else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        // A fault that replaces the response is answered here: nothing is sent upstream,
        // and the readied inner service stays ready for the next call.
        if let Some(error) = fault.error(self.provider) {
            return ResponseFuture::failed(error);
        }
        match fault {
            Fault::Hang { ms } => ResponseFuture::hang(ms.map(Duration::from_millis)),
            Fault::SlowFirstByte { ms } => {
                ResponseFuture::delayed(self.inner.call(request), Duration::from_millis(ms))
            }
            shaping => ResponseFuture::shaped(self.inner.call(request), shaping, self.provider),
        }
    }
}
