use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::response::Parts;
use http_body::Body;
use pin_project_lite::pin_project;
use seawall_core::BoxError;

use super::body::RawBody;
use crate::Dialect;

pin_project! {
    /// The response future of [`ReadErrorBody`](super::ReadErrorBody): the call, then, for
    /// an error status, the read of its body.
    pub struct ResponseFuture<F, D, B> {
        #[pin]
        state: State<F, B>,
        dialect: D,
        max_body: usize,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Calling {
            #[pin]
            future: F,
        },
        Reading {
            parts: Option<Parts>,
            read: BytesMut,
            body: Option<Pin<Box<B>>>,
        },
        Done,
    }
}

impl<F, D, B> ResponseFuture<F, D, B> {
    pub(crate) fn new(future: F, dialect: D, max_body: usize) -> Self {
        Self {
            state: State::Calling { future },
            dialect,
            max_body,
        }
    }
}

impl<F, D, B> fmt::Debug for ResponseFuture<F, D, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The error of a future polled again after it completed.
#[derive(Debug)]
struct PolledAfterCompletion;

impl fmt::Display for PolledAfterCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the error-body reader's response future was polled after it completed")
    }
}

impl std::error::Error for PolledAfterCompletion {}

impl<F, D, B, E> Future for ResponseFuture<F, D, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    D: Dialect,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<http::Response<RawBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let status = response.status();
                    if !(status.is_client_error() || status.is_server_error()) {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(response.map(RawBody::unread)));
                    }
                    let (parts, body) = response.into_parts();
                    this.state.set(State::Reading {
                        parts: Some(parts),
                        read: BytesMut::new(),
                        body: Some(Box::pin(body)),
                    });
                }
                StateProj::Reading { parts, read, body } => {
                    let mut trailers: Option<HeaderMap> = None;
                    let finished = loop {
                        if read.len() >= *this.max_body {
                            break false;
                        }
                        let Some(inner) = body.as_mut() else {
                            break true;
                        };
                        match ready!(inner.as_mut().poll_frame(cx)) {
                            None => break true,
                            Some(Err(error)) => {
                                this.state.set(State::Done);
                                return Poll::Ready(Err(error.into()));
                            }
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => read.extend_from_slice(&data),
                                Err(frame) => {
                                    trailers = frame.into_trailers().ok();
                                    break true;
                                }
                            },
                        }
                    };
                    let Some(mut parts) = parts.take() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    let read = read.split().freeze();
                    let decoded = &read[..read.len().min(*this.max_body)];
                    let error =
                        this.dialect
                            .decode_error(parts.status.as_u16(), &parts.headers, decoded);
                    parts.extensions.insert(error);
                    // The rest of a body longer than the bound is relayed unread.
                    let rest = if finished { None } else { body.take() };
                    this.state.set(State::Done);
                    let body = RawBody::read(read, trailers, rest);
                    return Poll::Ready(Ok(http::Response::from_parts(parts, body)));
                }
                StateProj::Done => return Poll::Ready(Err(PolledAfterCompletion.into())),
            }
        }
    }
}
