use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, ChatRequest, ChatResponse, Embedder, EmbeddingRequest};
use tower_service::Service;

use super::future::{Pending, ResponseFuture};
use super::layer::Shared;
use super::prompt::Prompt;
use crate::budget::ScopeView;

/// The service of [`SemanticCacheLayer`](super::SemanticCacheLayer).
///
/// Cloning it shares the index and the embedder.
pub struct SemanticCache<S, E> {
    inner: S,
    shared: Arc<Shared<E>>,
}

impl<S, E> SemanticCache<S, E> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<E>>) -> Self {
        Self { inner, shared }
    }

    inner_service_accessors!();
}

impl<S: Clone, E> Clone for SemanticCache<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, E> std::fmt::Debug for SemanticCache<S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, E> Service<ChatRequest> for SemanticCache<S, E>
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone,
    S::Error: Into<BoxError>,
    E: Embedder,
{
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S, E::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let shared = &self.shared;
        let directives = request.context.options().cache;
        let view = ScopeView {
            context: Some(&request.context),
            user: request.user.as_deref(),
            model: Some(&request.model),
            headers: None,
        };
        let prompt = shared
            .scope
            .value(&view)
            .and_then(|scope| Prompt::of(&request, &scope))
            .filter(|_| !(directives.no_cache && directives.no_store));
        let Some(prompt) = prompt else {
            shared.index.count_bypass();
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        // The readied service waits in the future for the embedding.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let mut embedding = EmbeddingRequest::new(Arc::clone(&shared.model), [prompt.text]);
        embedding.dimensions = shared.dimensions;
        let embed = shared.embedder.embed(embedding);
        ResponseFuture::embedding(
            embed,
            shared.embed_timeout,
            Pending {
                inner,
                request,
                lookup: !directives.no_cache,
                store: !directives.no_store,
                partition: prompt.partition,
                index: Arc::clone(&shared.index),
            },
        )
    }
}
