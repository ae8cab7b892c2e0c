use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use seawall_core::{EventStream, StreamEvent};

use super::future::Pending;
use super::recorder::CallOutcome;

/// A streamed answer, counted when it ends or is dropped.
pub(super) struct MeteredStream {
    inner: Option<EventStream>,
    pending: Option<Pending>,
    time_to_first_token: Option<Duration>,
    outcome: CallOutcome,
}

impl MeteredStream {
    pub(super) fn wrap(inner: EventStream, pending: Pending) -> EventStream {
        EventStream::new(Self {
            inner: Some(inner),
            pending: Some(pending),
            time_to_first_token: None,
            // Until its end arrives, a stream that stops is one that was cut.
            outcome: CallOutcome::Failed("stream_truncated"),
        })
    }

    fn finish(&mut self, outcome: CallOutcome) {
        // The layers inside settle the call (budget, usage, recoveries) as their streams
        // end or drop: let them, then read the trail.
        self.inner = None;
        if let Some(pending) = self.pending.take() {
            pending.record(None, outcome, self.time_to_first_token);
        }
    }
}

impl Stream for MeteredStream {
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let event = std::task::ready!(Pin::new(inner).poll_next(cx));
        match &event {
            Some(event) if event.is_content() && this.time_to_first_token.is_none() => {
                if let Some(pending) = &this.pending {
                    this.time_to_first_token = Some(pending.started.elapsed());
                }
            }
            Some(StreamEvent::Finish(_)) => this.outcome = CallOutcome::Answered,
            Some(StreamEvent::Error(error)) => {
                // Nothing follows an error: counted now, not when the caller lets go.
                this.finish(CallOutcome::Failed(error.kind().as_str()));
            }
            Some(_) => {}
            None => this.finish(this.outcome),
        }
        Poll::Ready(event)
    }
}

impl Drop for MeteredStream {
    fn drop(&mut self) {
        if self.pending.is_some() {
            // A caller may stop reading once the end of the message arrived.
            let outcome = match self.outcome {
                CallOutcome::Answered => CallOutcome::Answered,
                _ => CallOutcome::Abandoned,
            };
            self.finish(outcome);
        }
    }
}
