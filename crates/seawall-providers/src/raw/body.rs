use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// A response body that [`ReadErrorBody`](super::ReadErrorBody) may have read.
    ///
    /// A successful response's body is never read: it is relayed as it arrives. An error
    /// response's body is the bytes read, then whatever was left unread past the bound.
    #[derive(Debug)]
    pub struct RawBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<B> {
        // The original body, untouched.
        Unread {
            #[pin]
            body: B,
        },
        // An error body that was read: the bytes read, its trailers, and the unread rest
        // (boxed: error responses are rare, and the box keeps the success path free).
        Read {
            read: Option<Bytes>,
            trailers: Option<HeaderMap>,
            rest: Option<Pin<Box<B>>>,
        },
    }
}

impl<B> RawBody<B> {
    pub(crate) fn unread(body: B) -> Self {
        Self {
            inner: Inner::Unread { body },
        }
    }

    pub(crate) fn read(
        read: Bytes,
        trailers: Option<HeaderMap>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        Self {
            inner: Inner::Read {
                read: (!read.is_empty()).then_some(read),
                trailers,
                rest,
            },
        }
    }
}

impl<B: Body<Data = Bytes>> Body for RawBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Unread { body } => body.poll_frame(cx),
            InnerProj::Read {
                read,
                trailers,
                rest,
            } => {
                if let Some(read) = read.take() {
                    return Poll::Ready(Some(Ok(Frame::data(read))));
                }
                if let Some(rest) = rest {
                    return rest.as_mut().poll_frame(cx);
                }
                Poll::Ready(
                    trailers
                        .take()
                        .map(|trailers| Ok(Frame::trailers(trailers))),
                )
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Unread { body } => body.is_end_stream(),
            Inner::Read {
                read,
                trailers,
                rest,
            } => {
                read.is_none()
                    && trailers.is_none()
                    && rest.as_ref().is_none_or(|rest| rest.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Unread { body } => body.size_hint(),
            Inner::Read { read, rest, .. } => {
                let read = read.as_ref().map_or(0, |read| read.len() as u64);
                let rest = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |rest| rest.size_hint());
                let mut hint = SizeHint::new();
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint.set_lower(rest.lower().saturating_add(read));
                hint
            }
        }
    }
}
