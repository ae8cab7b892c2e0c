use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, ChatRequest, ChatResponse};
use tower::ServiceExt;
use tower_service::Service;

use super::error::{FirstCallFailed, IdempotencyConflict, IdempotencyUnavailable};
use super::future::{Leader, ResponseFuture};
use super::store::{Claim, IdempotencyStore, still_running};
use crate::answer::Answered;
use crate::cache::key::CacheKey;

/// The service of [`IdempotencyLayer`](super::IdempotencyLayer).
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    store: Arc<dyn IdempotencyStore>,
}

impl<S> Idempotency<S> {
    pub(crate) fn from_parts(inner: S, store: Arc<dyn IdempotencyStore>) -> Self {
        Self { inner, store }
    }

    inner_service_accessors!();
}

impl<S: std::fmt::Debug> std::fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The call a claim that did not let it run makes: a replay, a join or a refusal.
fn answer_without_sending<F>(key: &str, claim: Claim, streamed: bool) -> ResponseFuture<F> {
    match claim {
        Claim::Join(flight) => ResponseFuture::join(flight.0, streamed),
        Claim::Replay(answer) => ResponseFuture::replay(&answer, streamed),
        Claim::Conflict => ResponseFuture::refused(Box::new(IdempotencyConflict {
            key: key.to_owned(),
        })),
        Claim::Unavailable => ResponseFuture::refused(Box::new(IdempotencyUnavailable)),
        Claim::StillRunning | Claim::First(_) => {
            ResponseFuture::refused(Box::new(FirstCallFailed {
                key: key.to_owned(),
                reason: still_running().to_owned(),
            }))
        }
    }
}

impl<S> Service<ChatRequest> for Idempotency<S>
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
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
        let Some(key) = request.context.options().idempotency_key.clone() else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        // The request's normalised form: the same key with another request is a conflict.
        let fingerprint = CacheKey::of(&request)
            .map(|key| key.bytes)
            .unwrap_or_default();
        let streamed = request.stream;
        let wait_until = request
            .context
            .deadline
            .map(|deadline| tokio::time::Instant::from_std(deadline.at()));
        match self.store.claim(&key, &fingerprint, wait_until) {
            Answered::Now(Claim::First(flight)) => {
                let leader = Leader::new(Arc::clone(&self.store), key, fingerprint, flight.0);
                ResponseFuture::first(self.inner.call(request), leader)
            }
            Answered::Now(claim) => answer_without_sending(&key, claim, streamed),
            Answered::Later(claiming) => {
                // The store answers after a round trip: the call waits for it with a ready
                // clone of the service (the one polled ready goes with the call).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let store = Arc::clone(&self.store);
                ResponseFuture::boxed(Box::pin(async move {
                    match claiming.await {
                        Claim::First(flight) => {
                            // Dropped on the way (the service failed), it frees the key.
                            let leader = Leader::new(store, key, fingerprint, flight.0);
                            let inner = inner.ready().await.map_err(Into::into)?;
                            ResponseFuture::first(inner.call(request), leader).await
                        }
                        claim => answer_without_sending::<S::Future>(&key, claim, streamed).await,
                    }
                }))
            }
        }
    }
}
