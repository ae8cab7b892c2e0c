//! The adapters' exact token count: [`Adapter::count_tokens`] and its [`CountTokensFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body;
use pin_project_lite::pin_project;
use seawall_core::{BoxError, ChatRequest, LlmError};
use tower_service::Service;

use crate::adapter::{Adapter, forward_traceparent};
use crate::dialect::Dialect;
use crate::whole_body::{HttpRequest, WholeBodyDecode, WholeBodyFuture};

pin_project! {
    /// The future of one token count: waits for the HTTP service to be ready, sends the
    /// request, reads the whole body and decodes the count. Errors are [`LlmError`]s
    /// classified as the chat call's are (status, error body, hints).
    pub struct CountTokensFuture<S, D, B>
    where
        S: Service<HttpRequest>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        inner: WholeBodyFuture<S, D, B, CountTokens>,
    }
}

/// A token count decodes the provider's count of the request's model.
struct CountTokens {
    model: Arc<str>,
}

impl<D: Dialect> WholeBodyDecode<D> for CountTokens {
    type Output = u64;
    const FUTURE: &'static str = "CountTokensFuture";
    const POLLED_AFTER_COMPLETION: &'static str = "count future polled after completion";
    const BODY: &'static str = "token count";

    fn model(&self) -> &str {
        &self.model
    }

    fn decode(&self, dialect: &D, body: &[u8]) -> Result<u64, LlmError> {
        dialect.decode_count_tokens(body)
    }
}

impl<S, D, B> std::fmt::Debug for CountTokensFuture<S, D, B>
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

impl<S, D, B> Future for CountTokensFuture<S, D, B>
where
    S: Service<HttpRequest, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    D: Dialect,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<u64, BoxError>;

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
    /// The exact number of input tokens `request` holds, as the provider counts them:
    /// Anthropic `POST /v1/messages/count_tokens`, Gemini `models/{model}:countTokens`,
    /// OpenAI Responses `POST /v1/responses/input_tokens`. Nothing is generated, and the
    /// count is the input token count the same request's usage reports.
    ///
    /// The request is validated ([`ChatRequest::validate`]) and encoded before anything is
    /// sent; a provider without such an endpoint (OpenAI Chat Completions) fails with an
    /// [`ErrorKind::InvalidRequest`](seawall_core::ErrorKind::InvalidRequest) error "token
    /// counting unsupported". Errors are [`LlmError`]s boxed into [`BoxError`], mapped from
    /// the status and body as the chat call's are.
    ///
    /// The call waits for its own clone of the HTTP service to be ready, so it needs no
    /// `poll_ready` first.
    pub fn count_tokens(&mut self, request: &ChatRequest) -> CountTokensFuture<S, D, B> {
        let dialect = self.dialect().clone();
        let prepared = request
            .validate()
            .map_err(BoxError::from)
            .and_then(|()| dialect.encode_count_tokens(request).map_err(BoxError::from))
            .map(|mut outgoing| {
                forward_traceparent(
                    &mut outgoing,
                    request.context.options().traceparent.as_ref(),
                );
                outgoing
            });
        CountTokensFuture {
            inner: WholeBodyFuture::new(
                self.get_ref(),
                prepared,
                dialect,
                CountTokens {
                    model: request.model.clone(),
                },
            ),
        }
    }
}
