use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use seawall_core::fault::Fault;
use seawall_core::{ErrorKind, EventStream, FinishReason, LlmError, ProviderKind, StreamEvent};
use tokio::time::{Sleep, sleep};

/// What a fault does to a typed stream. Event counts are events of the typed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// After this many events the connection breaks.
    CutAfter(usize),
    /// The stream ends cleanly without its end of message: after this many events, or
    /// just before the finish.
    EndWithoutTerminal(Option<usize>),
    /// After this many events, silence for a while.
    StallAfter(usize, Duration),
    /// After this many events, the provider's in-band error frame.
    ErrorFrameAfter(usize),
    /// The reply finishes as filtered.
    ContentFiltered,
    /// The first event arrives twice.
    DuplicateFirstEvent,
    /// After this many events, an event that is not JSON (on the typed path nothing shows:
    /// the adapters skip a malformed event by default).
    MalformedChunkAfter(usize),
    /// Nothing to shape.
    None,
}

impl StreamFault {
    pub(crate) fn new(fault: Fault) -> Self {
        match fault {
            Fault::CutAfter { events } => Self::CutAfter(events),
            Fault::EndWithoutTerminal { events } => Self::EndWithoutTerminal(events),
            Fault::StallAfter { events, ms } => Self::StallAfter(events, Duration::from_millis(ms)),
            Fault::ErrorFrameAfter { events } => Self::ErrorFrameAfter(events),
            Fault::ContentFiltered => Self::ContentFiltered,
            Fault::DuplicateFirstEvent => Self::DuplicateFirstEvent,
            Fault::MalformedChunkAfter { events } => Self::MalformedChunkAfter(events),
            _ => Self::None,
        }
    }
}

/// A typed stream with a fault played into it.
pub(crate) struct ChaosStream {
    inner: EventStream,
    fault: StreamFault,
    provider: ProviderKind,
    /// Events passed on so far.
    sent: usize,
    /// The stall in progress, boxed: only a stalled stream pays for it.
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    /// An event to pass on again (the duplicated first event).
    again: Option<StreamEvent>,
    done: bool,
}

impl ChaosStream {
    pub(crate) fn new(inner: EventStream, fault: StreamFault, provider: ProviderKind) -> Self {
        Self {
            inner,
            fault,
            provider,
            sent: 0,
            stall: None,
            stalled: false,
            again: None,
            done: false,
        }
    }

    fn end_with(&mut self, error: LlmError) -> Poll<Option<StreamEvent>> {
        self.done = true;
        Poll::Ready(Some(StreamEvent::Error(error.with_provider(self.provider))))
    }

    fn truncated(message: &str) -> LlmError {
        LlmError::new(ErrorKind::StreamTruncated, message)
    }

    /// The provider's mid-stream error frame, as its adapter reports it.
    fn error_frame(&self) -> LlmError {
        match self.provider {
            ProviderKind::Anthropic => {
                LlmError::new(ErrorKind::Overloaded, "Overloaded").with_code("overloaded_error")
            }
            _ => LlmError::new(
                ErrorKind::Server,
                "The server had an error while processing your request.",
            )
            .with_code("server_error"),
        }
    }
}

impl Stream for ChaosStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(event) = this.again.take() {
            this.sent += 1;
            return Poll::Ready(Some(event));
        }
        match this.fault {
            StreamFault::CutAfter(events) if this.sent >= events => {
                return this.end_with(Self::truncated(
                    "the connection closed in the middle of the stream",
                ));
            }
            StreamFault::ErrorFrameAfter(events) if this.sent >= events => {
                let error = this.error_frame();
                return this.end_with(error);
            }
            StreamFault::EndWithoutTerminal(Some(events)) if this.sent >= events => {
                return this.end_with(Self::truncated(
                    "the stream ended without its end of message",
                ));
            }
            StreamFault::StallAfter(events, wait) if this.sent >= events && !this.stalled => {
                let stall = this.stall.get_or_insert_with(|| Box::pin(sleep(wait)));
                ready!(stall.as_mut().poll(cx));
                this.stall = None;
                this.stalled = true;
            }
            _ => {}
        }
        let Some(event) = ready!(Pin::new(&mut this.inner).poll_next(cx)) else {
            this.done = true;
            return Poll::Ready(None);
        };
        let event = match (this.fault, event) {
            (StreamFault::EndWithoutTerminal(None), StreamEvent::Finish(_)) => {
                return this.end_with(Self::truncated(
                    "the stream ended without its end of message",
                ));
            }
            (StreamFault::ContentFiltered, StreamEvent::Finish(_)) => {
                StreamEvent::Finish(FinishReason::ContentFilter)
            }
            (StreamFault::DuplicateFirstEvent, event) if this.sent == 0 => {
                this.again = Some(event.clone());
                event
            }
            (_, event) => event,
        };
        if matches!(event, StreamEvent::Error(_)) {
            this.done = true;
        }
        this.sent += 1;
        Poll::Ready(Some(event))
    }
}
