//! A finished answer kept to be given again (by the response cache and the idempotency
//! layer), and the response it makes, whole or streamed as the caller asks.

use seawall_core::{
    AssistantMessage, ChatResponse, EventStream, FinishReason, ProviderKind, StreamAccumulator,
    StreamEvent, Trail, Usage,
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
    pub(crate) fn response(&self, streamed: bool, trail: Trail) -> Option<ChatResponse> {
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
