use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, CacheStatus, ChatRequest, ChatResponse};
use tower_service::Service;

use super::future::ResponseFuture;
use super::key::Key;
use super::store::{Found, Store};

/// The service of [`CacheLayer`](super::CacheLayer).
///
/// Cloning it shares the store.
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    store: Arc<Store>,
}

impl<S> Cache<S> {
    pub(crate) fn from_parts(inner: S, store: Arc<Store>) -> Self {
        Self { inner, store }
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

impl<S> Service<ChatRequest> for Cache<S>
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

    fn call(&mut self, mut request: ChatRequest) -> Self::Future {
        let directives = request.context.options().cache;
        let Some(key) = Key::of(&request) else {
            return ResponseFuture::miss(self.inner.call(request), None, &self.store, None);
        };
        if !directives.no_cache
            && let Found::Fresh(entry) = self.store.find(&key, directives.max_age)
        {
            let recorder = request.context.trail().clone();
            recorder.update(|trail| trail.cache = Some(CacheStatus::Hit));
            if let Some(response) = entry.answer.response(request.stream, recorder.snapshot()) {
                self.store.count_hit();
                return ResponseFuture::hit(response);
            }
        }
        self.store.count_miss();
        let streamed = request.stream;
        let store_key = (!directives.no_store).then(|| key.clone());
        let classifier = request.context.classifier.clone();
        let future = self.inner.call(request);
        ResponseFuture::miss(
            future,
            Some((key, streamed, classifier)),
            &self.store,
            store_key,
        )
    }
}
