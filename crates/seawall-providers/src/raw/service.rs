use std::task::{Context, Poll};

use bytes::Bytes;
use seawall_core::BoxError;
use tower_service::Service;

use super::body::RawBody;
use super::future::ResponseFuture;
use crate::Dialect;

/// The service of [`ReadErrorBodyLayer`](super::ReadErrorBodyLayer).
#[derive(Debug, Clone)]
pub struct ReadErrorBody<S, D> {
    inner: S,
    dialect: D,
    max_body: usize,
}

impl<S, D> ReadErrorBody<S, D> {
    pub(crate) fn from_parts(inner: S, dialect: D, max_body: usize) -> Self {
        Self {
            inner,
            dialect,
            max_body,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, D, ReqBody, ResBody> Service<http::Request<ReqBody>> for ReadErrorBody<S, D>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    D: Dialect,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<RawBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, D, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        ResponseFuture::new(
            self.inner.call(request),
            self.dialect.clone(),
            self.max_body,
        )
    }
}
