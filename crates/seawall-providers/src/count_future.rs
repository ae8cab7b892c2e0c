//! The adapters' exact token count: [`Adapter::count_tokens`] and its [`CountTokensFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Full, Limited};
use pin_project_lite::pin_project;
use seawall_core::{BoxError, ChatRequest, ErrorKind, LlmError};
use tower_service::Service;

use crate::adapter::Adapter;
use crate::dialect::Dialect;
use crate::future::MAX_BODY_BYTES;

type HttpRequest = http::Request<Full<Bytes>>;

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
        state: State<S, S::Future, B>,
        dialect: D,
        model: std::sync::Arc<str>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        Failed { error: Option<BoxError> },
        Readying { http: S, outgoing: Option<HttpRequest> },
        Sending { #[pin] future: F },
        Collecting {
            #[pin]
            collect: Collect<Limited<B>>,
            status: StatusCode,
            headers: HeaderMap,
        },
    }
}

impl<S, D, B> std::fmt::Debug for CountTokensFuture<S, D, B>
where
    S: Service<HttpRequest>,
    B: Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Failed { .. } => "failed",
            State::Readying { .. } => "readying",
            State::Sending { .. } => "sending",
            State::Collecting { .. } => "collecting",
        };
        f.debug_struct("CountTokensFuture")
            .field("state", &state)
            .field("model", &self.model)
            .finish_non_exhaustive()
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
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Failed { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| "count future polled after completion".into());
                    return Poll::Ready(Err(error));
                }
                StateProj::Readying { http, outgoing } => {
                    let provider = this.dialect.provider();
                    if let Err(error) = ready!(http.poll_ready(cx)) {
                        let error = connect_error(provider, error.into());
                        this.state.set(State::Failed { error: None });
                        return Poll::Ready(Err(error));
                    }
                    let Some(outgoing) = outgoing.take() else {
                        this.state.set(State::Failed { error: None });
                        return Poll::Ready(Err("count future polled after completion".into()));
                    };
                    let future = http.call(outgoing);
                    this.state.set(State::Sending { future });
                }
                StateProj::Sending { future } => {
                    let provider = this.dialect.provider();
                    let response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(error) => {
                            this.state.set(State::Failed { error: None });
                            return Poll::Ready(Err(connect_error(provider, error.into())));
                        }
                    };
                    let (parts, body) = response.into_parts();
                    this.state.set(State::Collecting {
                        collect: Limited::new(body, MAX_BODY_BYTES).collect(),
                        status: parts.status,
                        headers: parts.headers,
                    });
                }
                StateProj::Collecting {
                    collect,
                    status,
                    headers,
                } => {
                    let provider = this.dialect.provider();
                    let body = ready!(collect.poll(cx)).map(|c| c.to_bytes());
                    let status = *status;
                    let headers = std::mem::take(headers);
                    this.state.set(State::Failed { error: None });
                    if !status.is_success() {
                        let body = body.unwrap_or_default();
                        let error = this.dialect.decode_error(status.as_u16(), &headers, &body);
                        return Poll::Ready(Err(error.into()));
                    }
                    let body = match body {
                        Ok(body) => body,
                        Err(error) => {
                            let error = LlmError::new(
                                ErrorKind::Connect,
                                format!("the token count body broke off: {error}"),
                            )
                            .with_provider(provider)
                            .with_status(status.as_u16())
                            .with_source(error);
                            return Poll::Ready(Err(error.into()));
                        }
                    };
                    return Poll::Ready(
                        this.dialect
                            .decode_count_tokens(&body)
                            .map_err(|e| Box::new(e.with_status(status.as_u16())) as BoxError),
                    );
                }
            }
        }
    }
}

fn connect_error(provider: seawall_core::ProviderKind, error: BoxError) -> BoxError {
    LlmError::new(ErrorKind::Connect, format!("no response: {error}"))
        .with_provider(provider)
        .with_source(error)
        .into()
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
    /// [`ErrorKind::InvalidRequest`] error "token counting unsupported". Errors are
    /// [`LlmError`]s boxed into [`BoxError`], mapped from the status and body as the chat
    /// call's are.
    ///
    /// The call waits for its own clone of the HTTP service to be ready, so it needs no
    /// `poll_ready` first.
    pub fn count_tokens(&mut self, request: &ChatRequest) -> CountTokensFuture<S, D, B> {
        let dialect = self.dialect().clone();
        let prepared = request
            .validate()
            .map_err(BoxError::from)
            .and_then(|()| dialect.encode_count_tokens(request).map_err(BoxError::from));
        let state = match prepared {
            Ok(mut outgoing) => {
                if let Some(traceparent) = &request.context.options().traceparent
                    && let Ok(value) = http::HeaderValue::from_str(traceparent.as_str())
                {
                    outgoing.headers_mut().insert("traceparent", value);
                }
                State::Readying {
                    http: self.get_ref().clone(),
                    outgoing: Some(outgoing),
                }
            }
            Err(error) => State::Failed { error: Some(error) },
        };
        CountTokensFuture {
            state,
            dialect,
            model: request.model.clone(),
        }
    }
}
