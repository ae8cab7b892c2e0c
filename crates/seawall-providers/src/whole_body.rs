//! The state machine of a call answered by one whole JSON body (a token count, embeddings):
//! wait for the HTTP service, send, read the bounded body, then decode it or map the error.
//! [`CountTokensFuture`](crate::CountTokensFuture) and [`EmbedFuture`](crate::EmbedFuture)
//! are thin wrappers over it that differ only in what they decode.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Full, Limited};
use pin_project_lite::pin_project;
use seawall_core::{BoxError, ErrorKind, LlmError, ProviderKind};
use tower_service::Service;

use crate::dialect::Dialect;
use crate::future::MAX_BODY_BYTES;

pub(crate) type HttpRequest = http::Request<Full<Bytes>>;

/// What a whole-body call decodes a successful answer into, and the names its errors and
/// `Debug` output use.
pub(crate) trait WholeBodyDecode<D> {
    /// The decoded answer.
    type Output;
    /// The public future's type name, for `Debug`.
    const FUTURE: &'static str;
    /// The message of the error for a future polled again after it completed.
    const POLLED_AFTER_COMPLETION: &'static str;
    /// What the body is called in the error for one that broke off.
    const BODY: &'static str;

    /// The model the call is for, for `Debug`.
    fn model(&self) -> &str;

    /// Decodes a successful body.
    fn decode(&self, dialect: &D, body: &[u8]) -> Result<Self::Output, LlmError>;
}

pin_project! {
    /// One whole-body call; see the module documentation.
    pub(crate) struct WholeBodyFuture<S, D, B, K>
    where
        S: Service<HttpRequest>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, S::Future, B>,
        dialect: D,
        decode: K,
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

impl<S, D, B, K> WholeBodyFuture<S, D, B, K>
where
    S: Service<HttpRequest>,
    B: Body,
    B::Error: Into<BoxError>,
{
    /// A call that sends `prepared` over a clone of `http` once that is ready, or fails
    /// with the error validating or encoding the request gave (nothing is sent then).
    pub(crate) fn new(
        http: &S,
        prepared: Result<HttpRequest, BoxError>,
        dialect: D,
        decode: K,
    ) -> Self
    where
        S: Clone,
    {
        let state = match prepared {
            Ok(outgoing) => State::Readying {
                http: http.clone(),
                outgoing: Some(outgoing),
            },
            Err(error) => State::Failed { error: Some(error) },
        };
        Self {
            state,
            dialect,
            decode,
        }
    }
}

impl<S, D, B, K> std::fmt::Debug for WholeBodyFuture<S, D, B, K>
where
    S: Service<HttpRequest>,
    B: Body,
    B::Error: Into<BoxError>,
    K: WholeBodyDecode<D>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Failed { .. } => "failed",
            State::Readying { .. } => "readying",
            State::Sending { .. } => "sending",
            State::Collecting { .. } => "collecting",
        };
        f.debug_struct(K::FUTURE)
            .field("state", &state)
            .field("model", &self.decode.model())
            .finish_non_exhaustive()
    }
}

impl<S, D, B, K> Future for WholeBodyFuture<S, D, B, K>
where
    S: Service<HttpRequest, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    D: Dialect,
    B: Body,
    B::Error: Into<BoxError>,
    K: WholeBodyDecode<D>,
{
    type Output = Result<K::Output, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Failed { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| K::POLLED_AFTER_COMPLETION.into());
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
                        return Poll::Ready(Err(K::POLLED_AFTER_COMPLETION.into()));
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
                    let body = ready!(collect.poll(cx)).map(|c| c.to_bytes());
                    let status = *status;
                    let headers = std::mem::take(headers);
                    this.state.set(State::Failed { error: None });
                    return Poll::Ready(complete(
                        this.dialect,
                        this.decode,
                        status,
                        &headers,
                        body,
                    ));
                }
            }
        }
    }
}

/// The outcome of a whole body read with `status`: the provider's error for an
/// unsuccessful status, else the decoded answer.
fn complete<D: Dialect, K: WholeBodyDecode<D>>(
    dialect: &D,
    decode: &K,
    status: StatusCode,
    headers: &HeaderMap,
    body: Result<Bytes, BoxError>,
) -> Result<K::Output, BoxError> {
    if !status.is_success() {
        // An unreadable error body still has a status and headers worth mapping.
        let body = body.unwrap_or_default();
        return Err(dialect.decode_error(status.as_u16(), headers, &body).into());
    }
    let body = body.map_err(|error| {
        LlmError::new(
            ErrorKind::Connect,
            format!("the {} body broke off: {error}", K::BODY),
        )
        .with_provider(dialect.provider())
        .with_status(status.as_u16())
        .with_source(error)
    })?;
    decode
        .decode(dialect, &body)
        .map_err(|e| Box::new(e.with_status(status.as_u16())) as BoxError)
}

fn connect_error(provider: ProviderKind, error: BoxError) -> BoxError {
    LlmError::new(ErrorKind::Connect, format!("no response: {error}"))
        .with_provider(provider)
        .with_source(error)
        .into()
}
