//! Test doubles and helpers shared by the layer tests.

#![allow(dead_code, unreachable_pub)]

pub mod capture;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use seawall_core::{
    AssistantMessage, ChatRequest, ChatResponse, ErrorKind, EventStream, FinishReason, LlmError,
    Message, ProviderKind, StreamEvent, TokenEstimator,
};
use tokio::sync::mpsc;
use tokio::time::Sleep;

/// Weighs a request by the number written in its first message, so tests choose weights
/// exactly.
#[derive(Debug)]
pub struct NumberEstimator;

impl TokenEstimator for NumberEstimator {
    fn prompt_tokens(&self, request: &ChatRequest) -> u64 {
        request
            .texts()
            .next()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// A request weighing `prompt` prompt tokens (with [`NumberEstimator`]).
pub fn weighing(prompt: u64) -> ChatRequest {
    ChatRequest::new("model", [Message::user(prompt.to_string())])
}

/// A complete response from `model`.
pub fn reply(model: &str, text: &str) -> ChatResponse {
    ChatResponse::new(
        ProviderKind::OpenAi,
        model,
        AssistantMessage::text(text),
        FinishReason::Stop,
    )
}

/// A streamed response from `model` whose events come after `delay`.
pub fn streamed(model: &str, delay: Duration, events: Vec<StreamEvent>) -> ChatResponse {
    ChatResponse::streaming(
        ProviderKind::OpenAi,
        model,
        EventStream::new(Delayed {
            sleep: Box::pin(tokio::time::sleep(delay)),
            slept: delay.is_zero(),
            events: events.into(),
        }),
    )
}

struct Delayed {
    sleep: Pin<Box<Sleep>>,
    slept: bool,
    events: VecDeque<StreamEvent>,
}

impl Stream for Delayed {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        if !self.slept {
            std::task::ready!(self.sleep.as_mut().poll(cx));
            self.slept = true;
        }
        Poll::Ready(self.events.pop_front())
    }
}

/// Collects a stream's events.
pub async fn collect(stream: EventStream) -> Vec<StreamEvent> {
    stream.collect().await
}

pub fn request() -> ChatRequest {
    ChatRequest::new("gpt-4o", [Message::user("Capital of France?")])
}

pub fn answer(text: &str) -> ChatResponse {
    ChatResponse::new(
        ProviderKind::OpenAi,
        "gpt-4o",
        AssistantMessage::text(text),
        FinishReason::Stop,
    )
}

pub fn error(kind: ErrorKind, status: u16) -> LlmError {
    LlmError::new(kind, format!("status {status}")).with_status(status)
}

/// A streamed response whose events the test sends through the returned channel.
pub fn streaming() -> (ChatResponse, mpsc::UnboundedSender<StreamEvent>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let response = ChatResponse::streaming(
        ProviderKind::OpenAi,
        "gpt-4o",
        EventStream::new(Channel(receiver)),
    );
    (response, sender)
}

struct Channel(mpsc::UnboundedReceiver<StreamEvent>);

impl Stream for Channel {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.0.poll_recv(cx)
    }
}

/// The next event of a stream.
pub async fn next_event(stream: &mut EventStream) -> Option<StreamEvent> {
    stream.next().await
}
