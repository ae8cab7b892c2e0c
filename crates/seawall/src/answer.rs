//! A finished answer kept to be given again (by the response cache and the idempotency
//! layer), and the response it makes, whole or streamed as the caller asks.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use seawall_core::{
    AssistantMessage, ChatResponse, EventStream, FinishReason, ProviderKind, SharedTrail,
    StreamAccumulator, StreamEvent, Usage,
};

/// An answer as it came: whole, or as the events of its stream (replayed as they were).
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Whole {
        id: String,
        provider: ProviderKind,
        model: String,
        message: AssistantMessage,
        finish_reason: Option<FinishReason>,
        usage: Option<Usage>,
    },
    Streamed {
        provider: ProviderKind,
        model: String,
        events: Vec<StreamEvent>,
    },
}

impl Answer {
    /// Roughly the bytes the answer holds.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Self::Whole { message, model, .. } => {
                message.text.len()
                    + message
                        .tool_calls
                        .iter()
                        .map(|call| call.id.len() + call.name.len() + call.arguments.len())
                        .sum::<usize>()
                    + model.len()
            }
            Self::Streamed { events, model, .. } => {
                model.len()
                    + events
                        .iter()
                        .map(|event| match event {
                            StreamEvent::TextDelta(text) => text.len() + 32,
                            StreamEvent::ToolCallDelta { arguments, .. } => arguments.len() + 64,
                            _ => 64,
                        })
                        .sum::<usize>()
            }
        }
    }
}

impl Answer {
    /// The answer as a response, streamed if `streamed`, carrying `trail`; `None` for an
    /// answer that cannot be replayed whole (one without its finish).
    pub(crate) fn response(&self, streamed: bool, trail: SharedTrail) -> Option<ChatResponse> {
        let mut response = match (self, streamed) {
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

/// A streamed answer noted event by event as it is relayed, to be kept once whole.
#[derive(Debug)]
pub(crate) struct Recording {
    provider: ProviderKind,
    model: String,
    events: Vec<StreamEvent>,
    finished: bool,
    failed: bool,
}

impl Recording {
    /// A recording of `response`'s stream.
    pub(crate) fn of(response: &ChatResponse) -> Self {
        Self {
            provider: response.provider,
            model: response.model.clone(),
            events: Vec::new(),
            finished: false,
            failed: false,
        }
    }

    /// Notes one event.
    pub(crate) fn note(&mut self, event: &StreamEvent) {
        self.finished |= matches!(event, StreamEvent::Finish(_));
        self.failed |= matches!(event, StreamEvent::Error(_));
        if !self.failed {
            self.events.push(event.clone());
        }
    }

    /// The answer, if the stream reached its end of message without an error: a cut or
    /// failed stream is never given again.
    pub(crate) fn answer(&mut self) -> Option<Answer> {
        (self.finished && !self.failed).then(|| Answer::Streamed {
            provider: self.provider,
            model: std::mem::take(&mut self.model),
            events: std::mem::take(&mut self.events),
        })
    }
}

/// Hands `response`'s answer to `keep` once it is whole: a complete one now, a streamed one
/// when its stream ends with its end of message. Refusals and cut answers are not kept.
pub(crate) fn keep_answer(
    response: &mut ChatResponse,
    keep: impl FnOnce(Answer) + Send + Unpin + 'static,
) {
    if let Some(inner) = response.stream.take() {
        let recording = Recording::of(response);
        response.stream = Some(EventStream::new(Recorder {
            inner,
            keep: Some(keep),
            recording,
        }));
        return;
    }
    let complete = matches!(
        response.finish_reason,
        Some(FinishReason::Stop | FinishReason::ToolCalls | FinishReason::Length)
    );
    if complete {
        keep(Answer::Whole {
            id: response.id.clone(),
            provider: response.provider,
            model: response.model.clone(),
            message: response.message.clone(),
            finish_reason: response.finish_reason.clone(),
            usage: response.usage,
        });
    }
}

/// Passes a streamed answer on and keeps it once it ended with its end of message.
struct Recorder<K> {
    inner: EventStream,
    keep: Option<K>,
    recording: Recording,
}

impl<K: FnOnce(Answer) + Unpin> Stream for Recorder<K> {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = &mut *self;
        let event = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &event {
            Some(event) => this.recording.note(event),
            None => {
                if let Some(keep) = this.keep.take()
                    && let Some(answer) = this.recording.answer()
                {
                    keep(answer);
                }
            }
        }
        Poll::Ready(event)
    }
}

/// A finished answer as a store keeps it: whole, or as the events of a stream that reached
/// its end of message (replayed event for event). Opaque; a store that keeps answers
/// outside the process (in Redis) keeps [`encode`](Self::encode)'s bytes.
#[derive(Debug, Clone)]
pub struct StoredAnswer(pub(crate) Answer);

/// Bytes that are not an [`StoredAnswer::encode`]d answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndecodableAnswer;

impl std::fmt::Display for UndecodableAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stored answer bytes could not be decoded")
    }
}

impl std::error::Error for UndecodableAnswer {}

impl StoredAnswer {
    /// Roughly the bytes the answer holds in memory.
    pub fn weight(&self) -> usize {
        self.0.weight()
    }

    /// The answer as compact bytes (JSON with one-letter tags): every field a replay
    /// gives back, every event of a stream in order, nothing of the request or the caller.
    pub fn encode(&self) -> Vec<u8> {
        let wire = match &self.0 {
            Answer::Whole {
                id,
                provider,
                model,
                message,
                finish_reason,
                usage,
            } => Wire::W {
                i: id,
                p: *provider,
                m: model,
                g: message,
                f: finish_reason.as_ref(),
                u: *usage,
            },
            Answer::Streamed {
                provider,
                model,
                events,
            } => Wire::S {
                p: *provider,
                m: model,
                e: events.iter().filter_map(WireEvent::of).collect(),
            },
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// An answer from [`encode`](Self::encode)'s bytes.
    ///
    /// # Errors
    ///
    /// Bytes that are not an encoded answer.
    pub fn decode(bytes: &[u8]) -> Result<Self, UndecodableAnswer> {
        let wire: OwnedWire = serde_json::from_slice(bytes).map_err(|_| UndecodableAnswer)?;
        Ok(Self(match wire {
            OwnedWire::W { i, p, m, g, f, u } => Answer::Whole {
                id: i,
                provider: p,
                model: m,
                message: g,
                finish_reason: f,
                usage: u,
            },
            OwnedWire::S { p, m, e } => Answer::Streamed {
                provider: p,
                model: m,
                events: e.into_iter().map(OwnedEvent::into_event).collect(),
            },
        }))
    }
}

/// The encoded form of an answer, borrowed.
#[derive(serde::Serialize)]
enum Wire<'a> {
    W {
        i: &'a str,
        p: ProviderKind,
        m: &'a str,
        g: &'a AssistantMessage,
        f: Option<&'a FinishReason>,
        u: Option<Usage>,
    },
    S {
        p: ProviderKind,
        m: &'a str,
        e: Vec<WireEvent<'a>>,
    },
}

#[derive(serde::Serialize)]
enum WireEvent<'a> {
    S(Option<&'a str>, Option<&'a str>),
    T(&'a str),
    C(u32, Option<&'a str>, Option<&'a str>, &'a str),
    U(Usage),
    F(&'a FinishReason),
}

impl<'a> WireEvent<'a> {
    /// A kept stream holds no error event (a failed stream is never kept).
    fn of(event: &'a StreamEvent) -> Option<Self> {
        Some(match event {
            StreamEvent::Start { id, model } => Self::S(id.as_deref(), model.as_deref()),
            StreamEvent::TextDelta(text) => Self::T(text),
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => Self::C(*index, id.as_deref(), name.as_deref(), arguments),
            StreamEvent::Usage(usage) => Self::U(*usage),
            StreamEvent::Finish(reason) => Self::F(reason),
            _ => return None,
        })
    }
}

#[derive(serde::Deserialize)]
enum OwnedWire {
    W {
        i: String,
        p: ProviderKind,
        m: String,
        g: AssistantMessage,
        f: Option<FinishReason>,
        u: Option<Usage>,
    },
    S {
        p: ProviderKind,
        m: String,
        e: Vec<OwnedEvent>,
    },
}

#[derive(serde::Deserialize)]
enum OwnedEvent {
    S(Option<String>, Option<String>),
    T(String),
    C(u32, Option<String>, Option<String>, String),
    U(Usage),
    F(FinishReason),
}

impl OwnedEvent {
    fn into_event(self) -> StreamEvent {
        match self {
            Self::S(id, model) => StreamEvent::Start { id, model },
            Self::T(text) => StreamEvent::TextDelta(text),
            Self::C(index, id, name, arguments) => StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            },
            Self::U(usage) => StreamEvent::Usage(usage),
            Self::F(reason) => StreamEvent::Finish(reason),
        }
    }
}

/// A store's reply: at once (a store in process), or later (a shared store asks a server).
/// Only the second allocates.
pub enum Answered<T> {
    /// The reply, now.
    Now(T),
    /// The reply, when the store has it.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>),
}

impl<T> std::fmt::Debug for Answered<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Now(_) => f.write_str("Answered::Now"),
            Self::Later(_) => f.write_str("Answered::Later"),
        }
    }
}

impl<T> Answered<T> {
    /// The reply, waiting for it if it comes later.
    pub async fn get(self) -> T {
        match self {
            Self::Now(value) => value,
            Self::Later(future) => future.await,
        }
    }
}
