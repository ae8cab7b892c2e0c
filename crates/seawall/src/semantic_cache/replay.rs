//! Stores a streamed answer in the index once it arrived whole (the exact cache's
//! [`Recording`](crate::answer::Recording), kept under the prompt's vector).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use seawall_core::{EventStream, StreamEvent};

use super::future::Store;
use crate::answer::Recording;

/// Passes a streamed answer on and stores it once it ended with its end of message.
pub(crate) struct Recorder {
    pub(crate) inner: EventStream,
    pub(crate) store: Option<Store>,
    pub(crate) recording: Recording,
}

impl Stream for Recorder {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = &mut *self;
        let event = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &event {
            Some(event) => this.recording.note(event),
            None => {
                if let Some(store) = this.store.take()
                    && let Some(answer) = this.recording.answer()
                {
                    store.index.insert(store.partition, store.vector, answer);
                }
            }
        }
        Poll::Ready(event)
    }
}
