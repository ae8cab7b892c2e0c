//! The stream handed to the caller once a target has passed the commit point.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use seawall_core::{ErrorKind, EventStream, LlmError, StreamEvent};

/// Replays the events read before the commit point, then passes the target's stream
/// through. Past the commit point nothing can be retried transparently, so a failure
/// arrives as an explicit `Error` event, and a stream that ends without the provider's end
/// of message gets one (`StreamTruncated`) rather than looking complete.
pub(crate) struct CommitStream {
    prefix: std::vec::IntoIter<StreamEvent>,
    inner: Option<EventStream>,
    complete: bool,
}

impl CommitStream {
    pub(crate) fn new(prefix: Vec<StreamEvent>, inner: EventStream) -> Self {
        Self {
            prefix: prefix.into_iter(),
            inner: Some(inner),
            complete: false,
        }
    }

    fn pass(&mut self, event: StreamEvent) -> Poll<Option<StreamEvent>> {
        match &event {
            StreamEvent::Finish(_) => self.complete = true,
            // Nothing follows an error.
            StreamEvent::Error(_) => self.inner = None,
            _ => {}
        }
        Poll::Ready(Some(event))
    }
}

impl Stream for CommitStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        if let Some(event) = self.prefix.next() {
            return self.pass(event);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(Pin::new(inner).poll_next(cx)) {
            Some(event) => self.pass(event),
            None => {
                self.inner = None;
                if self.complete {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(StreamEvent::Error(LlmError::new(
                        ErrorKind::StreamTruncated,
                        "the stream ended before the provider's end of message",
                    ))))
                }
            }
        }
    }
}

impl fmt::Debug for CommitStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitStream")
            .field("complete", &self.complete)
            .field("open", &self.inner.is_some())
            .finish()
    }
}
