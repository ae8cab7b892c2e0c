//! The adapters' response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use http::{HeaderMap, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use seawall_core::{
    BoxError, ChatResponse, ErrorKind, EventStream, LlmError, ProviderKind, StreamEvent, hints,
};

use crate::dialect::Dialect;
use crate::stream::{DecodedStream, MalformedPolicy, StreamMetrics};

/// The largest complete (non-streamed) response body read; a larger one fails the call
/// instead of exhausting memory.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

pin_project! {
    /// The future of one adapter call: sends the HTTP request, then either hands back a
    /// streamed response as soon as the headers arrive or reads the whole body and decodes
    /// it. No allocation per call beyond the body and, for a stream, its decoder.
    pub struct ResponseFuture<F, D, B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<F, B>,
        call: Option<CallInfo<D>>,
    }
}

struct CallInfo<D> {
    dialect: D,
    streaming: bool,
    policy: MalformedPolicy,
    metrics: StreamMetrics,
}

pin_project! {
    #[project = StateProj]
    enum State<F, B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        Failed { error: Option<BoxError> },
        Sending { #[pin] future: F },
        Collecting {
            #[pin]
            collect: Collect<Limited<B>>,
            status: StatusCode,
            headers: HeaderMap,
        },
    }
}

impl<F, D, B> std::fmt::Debug for ResponseFuture<F, D, B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Failed { .. } => "failed",
            State::Sending { .. } => "sending",
            State::Collecting { .. } => "collecting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<F, D, B> ResponseFuture<F, D, B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            call: None,
        }
    }

    pub(crate) fn sending(
        future: F,
        dialect: D,
        streaming: bool,
        policy: MalformedPolicy,
        metrics: StreamMetrics,
    ) -> Self {
        Self {
            state: State::Sending { future },
            call: Some(CallInfo {
                dialect,
                streaming,
                policy,
                metrics,
            }),
        }
    }
}

impl<F, D, B, E> Future for ResponseFuture<F, D, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    D: Dialect,
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Failed { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| "response future polled after completion".into());
                    return Poll::Ready(Err(error));
                }
                StateProj::Sending { future } => {
                    let call = this.call.as_ref().expect("a sending future has its call");
                    let provider = call.dialect.provider();
                    let response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(error) => {
                            let error = transport_error(provider, error.into());
                            this.state.set(State::Failed { error: None });
                            return Poll::Ready(Err(error.into()));
                        }
                    };
                    let (parts, body) = response.into_parts();
                    if parts.status.is_success()
                        && call.streaming
                        && is_event_stream(&parts.headers)
                    {
                        let call = this.call.take().expect("checked above");
                        let response = streamed_response(call, &parts.headers, body);
                        this.state.set(State::Failed { error: None });
                        return Poll::Ready(Ok(response));
                    }
                    this.state.set(State::Collecting {
                        collect: Limited::new(body, MAX_BODY_BYTES).collect(),
                        status: parts.status,
                        headers: parts.headers,
                    });
                }
                StateProj::Collecting {
                    collect,
                    status,
                    headers,
                } => {
                    let call = this.call.take().expect("a collecting future has its call");
                    let provider = call.dialect.provider();
                    let body = match collect.poll(cx) {
                        Poll::Pending => {
                            *this.call = Some(call);
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(collected)) => Ok(collected.to_bytes()),
                        Poll::Ready(Err(error)) => Err(error),
                    };
                    let status = *status;
                    let headers = std::mem::take(headers);
                    this.state.set(State::Failed { error: None });
                    return Poll::Ready(complete(call, provider, status, &headers, body));
                }
            }
        }
    }
}

fn complete<D: Dialect>(
    call: CallInfo<D>,
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    body: Result<bytes::Bytes, BoxError>,
) -> Result<ChatResponse, BoxError> {
    if !status.is_success() {
        // An unreadable error body still has a status and headers worth mapping.
        let body = body.unwrap_or_default();
        return Err(call
            .dialect
            .decode_error(status.as_u16(), headers, &body)
            .into());
    }
    let body = match body {
        Ok(body) => body,
        Err(error) if error.is::<LengthLimitError>() => {
            let error = LlmError::new(
                ErrorKind::Decode,
                format!("the response body exceeds {MAX_BODY_BYTES} bytes"),
            )
            .with_provider(provider)
            .with_status(status.as_u16());
            return Err(error.into());
        }
        Err(error) => {
            let error = LlmError::new(
                ErrorKind::Connect,
                format!("the response body broke off: {error}"),
            )
            .with_provider(provider)
            .with_status(status.as_u16())
            .with_source(error);
            return Err(error.into());
        }
    };
    let mut response = call
        .dialect
        .decode_response(headers, &body)
        .map_err(|error| Box::new(error.with_status(status.as_u16())) as BoxError)?;
    let quota = hints::quota_snapshot(headers, SystemTime::now());
    if !quota.is_empty() {
        response.quota = Some(Box::new(quota));
    }
    if call.streaming {
        // A server that ignored `stream: true` answered in one piece: replay it as events so
        // the caller sees the shape it asked for.
        let events = replay_events(&response);
        response.stream = Some(EventStream::from_events(events));
    }
    Ok(response)
}

fn streamed_response<D: Dialect, B>(call: CallInfo<D>, headers: &HeaderMap, body: B) -> ChatResponse
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    let provider = call.dialect.provider();
    let stream = DecodedStream::new(
        body,
        call.dialect.stream_decoder(),
        provider,
        call.policy,
        call.metrics,
    )
    .with_request_id(call.dialect.request_id(headers));
    let mut response = ChatResponse::streaming(provider, String::new(), EventStream::new(stream));
    let quota = hints::quota_snapshot(headers, SystemTime::now());
    if !quota.is_empty() {
        response.quota = Some(Box::new(quota));
    }
    response
}

fn replay_events(response: &ChatResponse) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::Start {
        id: Some(response.id.clone()).filter(|id| !id.is_empty()),
        model: Some(response.model.clone()).filter(|model| !model.is_empty()),
    }];
    if !response.message.text.is_empty() {
        events.push(StreamEvent::TextDelta(response.message.text.clone()));
    }
    for (index, call) in response.message.tool_calls.iter().enumerate() {
        events.push(StreamEvent::ToolCallDelta {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            arguments: call.arguments.clone(),
        });
    }
    if let Some(usage) = response.usage {
        events.push(StreamEvent::Usage(usage));
    }
    if let Some(reason) = &response.finish_reason {
        events.push(StreamEvent::Finish(reason.clone()));
    }
    events
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    // Without a content type, trust that the server honoured `stream: true`.
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|content_type| !content_type.contains("json"))
}

/// A failure before any response arrived: connect, TLS, reset or a client timeout.
fn transport_error(provider: ProviderKind, error: BoxError) -> LlmError {
    let timed_out = seawall_core::error_chain(&*error).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    let kind = if timed_out {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connect
    };
    LlmError::new(kind, format!("no response: {error}"))
        .with_provider(provider)
        .with_source(error)
}
