//! Helpers shared by the layer tests.
#![allow(dead_code, unreachable_pub)]

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use seawall_core::{
    AssistantMessage, ChatRequest, ChatResponse, ErrorKind, EventStream, FinishReason, LlmError,
    Message, ProviderKind, StreamEvent,
};
use tokio::sync::mpsc;

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
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}
