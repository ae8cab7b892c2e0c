use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, CacheStatus, ChatRequest, ChatResponse};
use tower::ServiceExt;
use tower_service::Service;

use super::future::ResponseFuture;
use super::key::CacheKey;
use super::store::Shared;
use crate::answer::{Answered, StoredAnswer};

/// The service of [`CacheLayer`](super::CacheLayer).
///
/// Cloning it shares the store.
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Cache<S> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    inner_service_accessors!();
}

impl<S: std::fmt::Debug> std::fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// A hit: the stored answer, in the form asked for; `None` when it cannot be given so.
fn hit(shared: &Shared, answer: &StoredAnswer, request: &mut ChatRequest) -> Option<ChatResponse> {
    let recorder = request.context.trail().clone();
    recorder.update(|trail| trail.cache = Some(CacheStatus::Hit));
    let response = answer.0.response(request.stream, recorder.shared())?;
    shared.count_hit();
    Some(response)
}

/// Sends a missed call on, to store its answer.
fn send<S>(
    inner: &mut S,
    shared: &Arc<Shared>,
    key: CacheKey,
    request: ChatRequest,
) -> ResponseFuture<S::Future>
where
    S: Service<ChatRequest, Response = ChatResponse>,
{
    shared.count_miss();
    let directives = request.context.options().cache;
    let streamed = request.stream;
    let store_key = (!directives.no_store).then(|| key.clone());
    let classifier = request.context.classifier.clone();
    let future = inner.call(request);
    ResponseFuture::miss(future, Some((key, streamed, classifier)), shared, store_key)
}

impl<S> Service<ChatRequest> for Cache<S>
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

    fn call(&mut self, mut request: ChatRequest) -> Self::Future {
        let directives = request.context.options().cache;
        let Some(key) = CacheKey::of(&request) else {
            return ResponseFuture::miss(self.inner.call(request), None, &self.shared, None);
        };
        if directives.no_cache {
            return send(&mut self.inner, &self.shared, key, request);
        }
        let fresh_for = self.shared.fresh_for(directives.max_age);
        match self.shared.store.get(&key, fresh_for) {
            Answered::Now(Ok(Some(answer))) => match hit(&self.shared, &answer, &mut request) {
                Some(response) => ResponseFuture::hit(response),
                None => send(&mut self.inner, &self.shared, key, request),
            },
            Answered::Now(Ok(None)) => send(&mut self.inner, &self.shared, key, request),
            Answered::Now(Err(unavailable)) => ResponseFuture::boxed(Box::pin(std::future::ready(
                Err(BoxError::from(unavailable)),
            ))),
            Answered::Later(lookup) => {
                // The store answers after a round trip: the call waits for it with a
                // ready clone of the service (the one polled ready goes with the call).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = Arc::clone(&self.shared);
                ResponseFuture::boxed(Box::pin(async move {
                    let mut request = request;
                    match lookup.await {
                        Ok(Some(answer)) => {
                            if let Some(response) = hit(&shared, &answer, &mut request) {
                                return Ok(response);
                            }
                        }
                        Ok(None) => {}
                        Err(unavailable) => return Err(unavailable.into()),
                    }
                    let inner = inner.ready().await.map_err(Into::into)?;
                    send(inner, &shared, key, request).await
                }))
            }
        }
    }
}
