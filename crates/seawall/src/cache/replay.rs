//! Answers from the store, in the form the caller asked for; and the recorder that stores a
//! streamed answer once it has arrived whole.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use seawall_core::{ChatResponse, EventStream, StreamAccumulator, StreamEvent, Trail};

use super::key::Key;
use super::store::{Answer, Entry, Store};

impl Entry {
    /// The stored answer as a response, streamed if `streamed`, carrying `trail`.
    pub(crate) fn response(&self, streamed: bool, trail: Trail) -> Option<ChatResponse> {
        let mut response = match (&self.answer, streamed) {
            (
                Answer::Whole {
                    id,
                    provider,
                    model,
                    message,
                    finish_reason,
                    usage,
                },
                false,
            ) => {
                let finish = finish_reason.clone()?;
                let mut response =
                    ChatResponse::new(*provider, model.as_str(), message.clone(), finish);
                response.id.clone_from(id);
                response.usage = *usage;
                response
            }
            (
                Answer::Whole {
                    id,
                    provider,
                    model,
                    message,
                    finish_reason,
                    usage,
                },
                true,
            ) => {
                let mut events = vec![StreamEvent::Start {
                    id: Some(id.clone()),
                    model: Some(model.clone()),
                }];
                if !message.text.is_empty() {
                    events.push(StreamEvent::TextDelta(message.text.clone()));
                }
                for (index, call) in message.tool_calls.iter().enumerate() {
                    events.push(StreamEvent::ToolCallDelta {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        id: Some(call.id.clone()),
                        name: Some(call.name.clone()),
                        arguments: call.arguments.clone(),
                    });
                }
                if let Some(usage) = usage {
                    events.push(StreamEvent::Usage(*usage));
                }
                events.push(StreamEvent::Finish(finish_reason.clone()?));
                ChatResponse::streaming(*provider, model.as_str(), EventStream::from_events(events))
            }
            (
                Answer::Streamed {
                    provider,
                    model,
                    events,
                },
                true,
            ) => ChatResponse::streaming(
                *provider,
                model.as_str(),
                EventStream::from_events(events.iter().cloned()),
            ),
            (
                Answer::Streamed {
                    provider,
                    model,
                    events,
                },
                false,
            ) => {
                let mut accumulator = StreamAccumulator::new();
                for event in events {
                    accumulator.push(event).ok()?;
                }
                let id = accumulator.id().map(str::to_owned);
                let (message, finish, usage) = accumulator.finish().ok()?;
                let mut response = ChatResponse::new(*provider, model.as_str(), message, finish);
                if let Some(id) = id {
                    response.id = id;
                }
                response.usage = usage;
                response
            }
        };
        response.trail = trail;
        Some(response)
    }
}

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
