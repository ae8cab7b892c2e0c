//! The adapters' embeddings call: [`Adapter::embed`] and its [`EmbedFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Body;
use pin_project_lite::pin_project;
use seawall_core::{BoxError, Embedder, EmbeddingRequest, Embeddings, LlmError};
use tower_service::Service;

use crate::adapter::{Adapter, forward_traceparent};
use crate::dialect::Dialect;
use crate::whole_body::{HttpRequest, WholeBodyDecode, WholeBodyFuture};

pin_project! {
    /// The future of one embeddings call: waits for the HTTP service to be ready, sends the
    /// request, reads the whole body and decodes the vectors. Errors are
    /// [`LlmError`]s classified as the chat call's are (status, error body, hints).
    pub struct EmbedFuture<S, D, B>
    where
        S: Service<HttpRequest>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        inner: WholeBodyFuture<S, D, B, EmbedTexts>,
    }
}

/// An embeddings call decodes the vectors of the request's texts (the request says how
/// many to expect).
struct EmbedTexts(EmbeddingRequest);

impl<D: Dialect> WholeBodyDecode<D> for EmbedTexts {
    type Output = Embeddings;
    const FUTURE: &'static str = "EmbedFuture";
    const POLLED_AFTER_COMPLETION: &'static str = "embed future polled after completion";
    const BODY: &'static str = "embeddings";

    fn model(&self) -> &str {
        &self.0.model
    }

    fn decode(&self, dialect: &D, body: &[u8]) -> Result<Embeddings, LlmError> {
        dialect.decode_embeddings(&self.0, body)
    }
}

impl<S, D, B> std::fmt::Debug for EmbedFuture<S, D, B>
where
    S: Service<HttpRequest>,
    B: Body,
    B::Error: Into<BoxError>,
    D: Dialect,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<S, D, B> Future for EmbedFuture<S, D, B>
where
    S: Service<HttpRequest, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    D: Dialect,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Embeddings, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<D, S, B> Adapter<D, S>
where
    D: Dialect,
    S: Service<HttpRequest, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    /// The embeddings of `request`'s texts: OpenAI `POST /embeddings`, Gemini
    /// `:embedContent` (one text) or `:batchEmbedContents` (several). The request is
    /// validated ([`EmbeddingRequest::validate`]) and encoded before anything is sent; a
    /// provider without embeddings (Anthropic) fails with an
    /// [`EmbeddingsUnsupported`](seawall_core::EmbeddingsUnsupported) source. Errors are
    /// [`LlmError`]s boxed into [`BoxError`], mapped from the status and body as the chat
    /// call's are.
    ///
    /// The call waits for its own clone of the HTTP service to be ready, so it needs no
    /// `poll_ready` first.
    pub fn embed(&self, request: EmbeddingRequest) -> EmbedFuture<S, D, B> {
        let dialect = self.dialect().clone();
        let prepared = request
            .validate()
            .map_err(BoxError::from)
            .and_then(|()| dialect.encode_embeddings(&request).map_err(BoxError::from))
            .map(|mut outgoing| {
                forward_traceparent(
                    &mut outgoing,
                    request.context.options().traceparent.as_ref(),
                );
                outgoing
            });
        EmbedFuture {
            inner: WholeBodyFuture::new(self.get_ref(), prepared, dialect, EmbedTexts(request)),
        }
    }
}

impl<D, S, B> Embedder for Adapter<D, S>
where
    D: Dialect,
    S: Service<HttpRequest, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Future = EmbedFuture<S, D, B>;

    fn embed(&self, request: EmbeddingRequest) -> Self::Future {
        Adapter::embed(self, request)
    }
}
