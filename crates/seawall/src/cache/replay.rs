//! The recorder that stores a streamed answer once it has arrived whole.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use seawall_core::{ChatResponse, EventStream, StreamEvent};

use super::key::Key;
use super::store::Store;
use crate::answer::Answer;

/// Passes a streamed answer on and stores it once it ended with its end of message.
pub(crate) struct Recorder {
    inner: EventStream,
    store: Arc<Store>,
    key: Option<Key>,
    provider: seawall_core::ProviderKind,
    model: String,
    events: Vec<StreamEvent>,
    finished: bool,
}

impl Recorder {
    pub(crate) fn new(response: &mut ChatResponse, store: Arc<Store>, key: Key) -> Option<Self> {
        Some(Self {
            inner: response.stream.take()?,
            store,
            key: Some(key),
            provider: response.provider,
            model: response.model.clone(),
            events: Vec::new(),
            finished: false,
        })
    }
}

impl Stream for Recorder {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = &mut *self;
        let event = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &event {
            Some(StreamEvent::Error(_)) => this.key = None,
            Some(event) => {
                if this.key.is_some() {
                    this.finished |= matches!(event, StreamEvent::Finish(_));
                    this.events.push(event.clone());
                }
            }
            None => {
                // Only a whole answer is stored: one that reached its end of message.
                if let Some(key) = this.key.take()
                    && this.finished
                {
                    let answer = Answer::Streamed {
                        provider: this.provider,
                        model: std::mem::take(&mut this.model),
                        events: std::mem::take(&mut this.events),
                    };
                    this.store.insert(key, answer);
                }
            }
        }
        Poll::Ready(event)
    }
}
