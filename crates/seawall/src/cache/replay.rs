//! The recorder that stores a streamed answer once it has arrived whole.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use seawall_core::{ChatResponse, EventStream, StreamEvent};

use super::key::CacheKey;
use super::store::Shared;
use crate::answer::{Recording, StoredAnswer};

/// Passes a streamed answer on and stores it once it ended with its end of message.
pub(crate) struct Recorder {
    inner: EventStream,
    store: Arc<Shared>,
    key: Option<CacheKey>,
    recording: Recording,
}

impl Recorder {
    pub(crate) fn new(
        response: &mut ChatResponse,
        store: Arc<Shared>,
        key: CacheKey,
    ) -> Option<Self> {
        let recording = Recording::of(response);
        Some(Self {
            inner: response.stream.take()?,
            store,
            key: Some(key),
            recording,
        })
    }
}

impl Stream for Recorder {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = &mut *self;
        let event = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &event {
            Some(event) => this.recording.note(event),
            None => {
                if let Some(key) = this.key.take()
                    && let Some(answer) = this.recording.answer()
                {
                    this.store.insert(&key, StoredAnswer(answer));
                }
            }
        }
        Poll::Ready(event)
    }
}
