//! The response body: a pre-serialized buffer, or a timed sequence of stream frames.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Error that aborts a body mid-transfer (the connection is closed without the final chunk).
#[derive(Debug)]
pub(crate) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response aborted by a fault")
    }
}

impl std::error::Error for Aborted {}

/// How a stream ends after its last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// Normal end of the chunked body.
    Clean,
    /// Abrupt close: the body errors, so the terminating chunk is never written. The error
    /// comes after a short pause so that the head and the frames before it reach the client
    /// first (otherwise the client would see no response at all and retry).
    Abort,
    /// The pause before an abort is over.
    AbortNow,
}

/// Pause between the last frame of an aborted body and the abort.
const FLUSH_BEFORE_ABORT: Duration = Duration::from_millis(20);

/// A frame and the pause before it.
#[derive(Debug)]
pub(crate) struct TimedFrame {
    pub(crate) delay: Duration,
    pub(crate) bytes: Bytes,
}

/// Body of every simulator response.
#[derive(Debug)]
pub(crate) enum SimBody {
    /// A whole body in one buffer (`content-length` is exact).
    Full(Option<Bytes>),
    /// Frames written one by one with their delays (chunked transfer encoding).
    Stream {
        frames: VecDeque<TimedFrame>,
        sleep: Option<Pin<Box<Sleep>>>,
        ready: Option<Bytes>,
        end: StreamEnd,
    },
}

impl SimBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> SimBody {
        let bytes = bytes.into();
        SimBody::Full(if bytes.is_empty() { None } else { Some(bytes) })
    }

    pub(crate) fn stream(frames: Vec<TimedFrame>, end: StreamEnd) -> SimBody {
        SimBody::Stream {
            frames: frames.into(),
            sleep: None,
            ready: None,
            end,
        }
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match self.get_mut() {
            SimBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Stream {
                frames,
                sleep,
                ready,
                end,
            } => loop {
                if let Some(timer) = sleep {
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *sleep = None;
                }
                if let Some(bytes) = ready.take() {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                match frames.pop_front() {
                    Some(frame) if frame.delay.is_zero() => {
                        return Poll::Ready(Some(Ok(Frame::data(frame.bytes))));
                    }
                    Some(frame) => {
                        *sleep = Some(Box::pin(tokio::time::sleep(frame.delay)));
                        *ready = Some(frame.bytes);
                    }
                    None => match end {
                        StreamEnd::Clean => return Poll::Ready(None),
                        StreamEnd::Abort => {
                            *end = StreamEnd::AbortNow;
                            *sleep = Some(Box::pin(tokio::time::sleep(FLUSH_BEFORE_ABORT)));
                        }
                        StreamEnd::AbortNow => return Poll::Ready(Some(Err(Aborted))),
                    },
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(None) => SizeHint::with_exact(0),
            SimBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            SimBody::Stream { .. } => SizeHint::default(),
        }
    }
}
