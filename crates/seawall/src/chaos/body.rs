use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use seawall_core::{BoxError, ProviderKind};
use tokio::time::{Sleep, sleep};

use super::stream::StreamFault;
use super::wire;

pin_project! {
    /// A raw response body with the chaos layer's fault in it: the upstream's body as it is,
    /// an error body the layer made up, or the upstream's body with its events shaped.
    pub struct ChaosBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Passthrough {
            #[pin]
            body: B,
        },
        Injected {
            bytes: Option<Bytes>,
        },
        Shaped {
            #[pin]
            body: B,
            // Boxed: only a shaped body pays for it.
            shaper: Box<Shaper>,
        },
    }
}

impl<B> ChaosBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Passthrough { body },
        }
    }

    pub(crate) fn injected(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Injected { bytes: Some(bytes) },
        }
    }

    /// `body` with `fault` played into its server-sent events (`sse`) or, for a whole body,
    /// cut halfway.
    pub(crate) fn shaped(body: B, fault: StreamFault, provider: ProviderKind, sse: bool) -> Self {
        Self {
            kind: Kind::Shaped {
                body,
                shaper: Box::new(Shaper {
                    fault,
                    provider,
                    sse,
                    buffer: BytesMut::new(),
                    ready: VecDeque::new(),
                    error: None,
                    ended: false,
                    upstream_done: false,
                    events: 0,
                    stall: None,
                    stalled: false,
                    held: None,
                }),
            },
        }
    }
}

impl<B> std::fmt::Debug for ChaosBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosBody").finish_non_exhaustive()
    }
}

/// The state of a shaped body.
struct Shaper {
    fault: StreamFault,
    provider: ProviderKind,
    sse: bool,
    /// Bytes read and not yet split into events.
    buffer: BytesMut,
    /// Bytes to pass on.
    ready: VecDeque<Bytes>,
    /// The error to end with once `ready` is drained.
    error: Option<BoxError>,
    /// Nothing more after `ready` (and `error`).
    ended: bool,
    upstream_done: bool,
    /// Events passed on so far.
    events: usize,
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    /// The event waiting for the stall to end.
    held: Option<Bytes>,
}

fn connection_closed() -> BoxError {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "the connection closed in the middle of the body",
    )
    .into()
}

/// The end of the first complete event in `buffer` (after its blank line), if there is one.
fn event_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| at + 2);
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Shaper {
    /// Decides what becomes of one complete event.
    fn event(&mut self, event: Bytes) {
        let at = self.events;
        match self.fault {
            StreamFault::CutAfter(n) if at >= n => {
                self.error = Some(connection_closed());
                self.ended = true;
                return;
            }
            StreamFault::ErrorFrameAfter(n) if at >= n => {
                self.ready.push_back(wire::error_frame(self.provider));
                self.ended = true;
                return;
            }
            StreamFault::EndWithoutTerminal(Some(n)) if at >= n => {
                self.ended = true;
                return;
            }
            StreamFault::EndWithoutTerminal(None) if wire::is_terminal(&event) => {
                self.ended = true;
                return;
            }
            StreamFault::MalformedChunkAfter(n) if at == n => {
                self.ready
                    .push_back(Bytes::from_static(wire::MALFORMED_EVENT));
            }
            StreamFault::StallAfter(n, wait) if at >= n && !self.stalled => {
                self.stalled = true;
                self.stall = Some(Box::pin(sleep(wait)));
                self.held = Some(event);
                self.events += 1;
                return;
            }
            StreamFault::DuplicateFirstEvent if at == 0 => self.ready.push_back(event.clone()),
            _ => {}
        }
        self.events += 1;
        self.ready.push_back(event);
    }

    /// The upstream body ended: what is left in the buffer.
    fn upstream_ended(&mut self) {
        self.upstream_done = true;
        let rest = self.buffer.split().freeze();
        if self.sse {
            if !rest.is_empty() {
                self.event(rest);
            }
        } else if matches!(self.fault, StreamFault::CutAfter(_)) {
            // Half a body, then the connection closes.
            self.ready.push_back(rest.slice(..rest.len() / 2));
            self.error = Some(connection_closed());
        } else if !rest.is_empty() {
            self.ready.push_back(rest);
        }
        self.ended = true;
    }
}

impl<B> Body for ChaosBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Injected { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            KindProj::Shaped { mut body, shaper } => loop {
                if let Some(stall) = shaper.stall.as_mut() {
                    ready!(stall.as_mut().poll(cx));
                    shaper.stall = None;
                    if let Some(event) = shaper.held.take() {
                        shaper.ready.push_back(event);
                    }
                }
                if let Some(bytes) = shaper.ready.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                if shaper.ended {
                    return Poll::Ready(shaper.error.take().map(Err));
                }
                if shaper.sse
                    && let Some(end) = event_end(&shaper.buffer)
                {
                    let event = shaper.buffer.split_to(end).freeze();
                    shaper.event(event);
                    continue;
                }
                if shaper.upstream_done {
                    shaper.upstream_ended();
                    continue;
                }
                match ready!(body.as_mut().poll_frame(cx)) {
                    None => shaper.upstream_ended(),
                    Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => shaper.buffer.extend_from_slice(&data),
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Injected { bytes } => bytes.is_none(),
            Kind::Shaped { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Injected { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Shaped { .. } => SizeHint::default(),
        }
    }
}
