//! Helpers shared by the integration tests: a body delivered in chosen chunks, a canned
//! HTTP service that records what it was sent, a stream collector, the outcome of one call
//! and the accumulation of its events.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, LlmError, Message, StreamAccumulator, StreamEvent,
};
use tower::ServiceExt;

/// A body that yields the given chunks, then optionally fails (a cut connection).
#[derive(Debug, Clone, Default)]
pub struct ChunkedBody {
    chunks: VecDeque<Bytes>,
    fail_at_end: bool,
}

impl ChunkedBody {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
            fail_at_end: false,
        }
    }

    /// `bytes` cut into pieces whose sizes cycle through `sizes`.
    pub fn split(bytes: &[u8], sizes: &[usize]) -> Self {
        let mut chunks = Vec::new();
        let mut rest = bytes;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            chunks.push(Bytes::copy_from_slice(&rest[..n]));
            rest = &rest[n..];
            i += 1;
        }
        Self::new(chunks)
    }

    pub fn whole(bytes: impl Into<Bytes>) -> Self {
        Self::new([bytes.into()])
    }

    /// Fails with a connection reset after the last chunk.
    pub fn then_fail(mut self) -> Self {
        self.fail_at_end = true;
        self
    }
}

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if self.fail_at_end {
            self.fail_at_end = false;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ))));
        }
        Poll::Ready(None)
    }
}

/// A recorded request: method, URI, headers and body bytes.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: http::Method,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Sent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the adapter sends JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A canned HTTP service: every call records the request and answers with a copy of
/// `response`.
#[derive(Clone)]
pub struct Canned {
    pub sent: Arc<Mutex<Vec<Sent>>>,
    status: u16,
    headers: Vec<(String, String)>,
    body: ChunkedBody,
}

impl Canned {
    pub fn new(status: u16, headers: &[(&str, &str)], body: ChunkedBody) -> Self {
        Self {
            sent: Arc::default(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        }
    }

    pub fn json(status: u16, body: &str) -> Self {
        Self::new(
            status,
            &[("content-type", "application/json")],
            ChunkedBody::whole(body.to_owned()),
        )
    }

    pub fn sse(body: ChunkedBody) -> Self {
        Self::new(200, &[("content-type", "text/event-stream")], body)
    }

    pub fn with_headers(status: u16, headers: Vec<(String, String)>, body: ChunkedBody) -> Self {
        Self {
            sent: Arc::default(),
            status,
            headers,
            body,
        }
    }

    pub fn last(&self) -> Sent {
        self.sent
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request was sent")
    }

    pub fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl tower::Service<http::Request<Full<Bytes>>> for Canned {
    type Response = http::Response<ChunkedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Full<Bytes>>) -> Self::Future {
        let sent = self.sent.clone();
        let mut response = http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            response = response.header(name, value);
        }
        let response = response.body(self.body.clone()).unwrap();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            sent.lock().unwrap().push(Sent {
                method: parts.method,
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            Ok(response)
        })
    }
}

/// Every event of a streamed response.
pub async fn events(response: ChatResponse) -> Vec<StreamEvent> {
    response
        .stream
        .expect("a streamed response")
        .collect()
        .await
}

/// The `LlmError` inside a boxed adapter error.
pub fn llm_error(error: BoxError) -> seawall_core::LlmError {
    match error.downcast::<seawall_core::LlmError>() {
        Ok(error) => *error,
        Err(other) => panic!("expected an LlmError, got {other:?}"),
    }
}

/// What an adapter made of one call: a complete response, a stream's events, or an error.
#[derive(Debug)]
pub enum Outcome {
    Complete(Box<ChatResponse>),
    Stream(Vec<StreamEvent>),
    Failed(LlmError),
}

/// Sends `request` through `adapter`, collecting a streamed answer's events.
pub async fn call_outcome<A>(adapter: A, request: ChatRequest) -> Outcome
where
    A: tower::Service<ChatRequest, Response = ChatResponse, Error = BoxError>,
{
    match adapter.oneshot(request).await {
        Ok(mut response) if response.is_streaming() => {
            Outcome::Stream(response.stream.take().unwrap().collect().await)
        }
        Ok(response) => Outcome::Complete(Box::new(response)),
        Err(error) => Outcome::Failed(llm_error(error)),
    }
}

/// A short system-and-user conversation for `model`, capped at 64 output tokens.
pub fn sea_request(model: &str, stream: bool) -> ChatRequest {
    let mut request = ChatRequest::new(
        model,
        [
            Message::system("Be brief."),
            Message::user("Tell me about the sea."),
        ],
    )
    .with_max_output_tokens(64);
    request.stream = stream;
    request
}

/// `events` pushed through a [`StreamAccumulator`], with the last error it reported.
pub fn accumulate(events: &[StreamEvent]) -> (StreamAccumulator, Option<LlmError>) {
    let mut accumulator = StreamAccumulator::new();
    let mut error = None;
    for event in events {
        if let Err(e) = accumulator.push(event) {
            error = Some(e);
        }
    }
    (accumulator, error)
}
