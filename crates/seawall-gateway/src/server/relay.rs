//! The response body: a complete buffer, or a [`StreamEvent`] stream relayed as SSE in the
//! caller's dialect.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use seawall_core::{ErrorKind, EventStream, LlmError, StreamEvent, TrailRecorder, Usage};

use super::Shared;
use crate::access::Access;
use crate::dialect::{Dialect, StreamWriter};

/// A response body: a complete buffer or a relayed stream.
pub struct GatewayBody(pub(super) BodyKind);

/// What a [`GatewayBody`] holds.
pub(super) enum BodyKind {
    Full(Option<Bytes>),
    Sse(Box<SseRelay>),
}

impl fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BodyKind::Full(_) => f.write_str("GatewayBody::Full"),
            BodyKind::Sse(_) => f.write_str("GatewayBody::Sse"),
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            BodyKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Sse(relay) => relay.poll_frame(cx).map(|f| f.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.0, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            BodyKind::Full(None) => SizeHint::with_exact(0),
            BodyKind::Sse(_) => SizeHint::default(),
        }
    }
}

/// Relays a [`StreamEvent`] stream as SSE in the caller's dialect. Dropping it (the client
/// went away) drops the upstream stream, which cancels the upstream call.
pub(super) struct SseRelay {
    pub(super) stream: Option<EventStream>,
    /// The dialect the call came in on (the access line names its route).
    pub(super) dialect: Dialect,
    pub(super) writer: StreamWriter,
    pub(super) usage: Option<Usage>,
    pub(super) finished: bool,
    pub(super) first_content: bool,
    pub(super) started: tokio::time::Instant,
    pub(super) shared: Arc<Shared>,
    /// The call's trail: its cost, once the stream has settled.
    pub(super) trail: TrailRecorder,
    /// Whether the opening frames were written.
    pub(super) started_frames: bool,
    /// The call's in-flight permit, held until the stream ends.
    pub(super) permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Resolves when the shutdown grace runs out.
    pub(super) cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The call's access line, written when the stream ends.
    pub(super) access: Option<Box<Access>>,
    /// The call's server span (trace export on), ended with the stream.
    pub(super) span: tracing::Span,
}

impl SseRelay {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        // The request span (trace export on) covers the relay: it ends with the stream.
        let _span = self.span.clone().entered();
        let mut out = Vec::new();
        if !self.started_frames {
            self.started_frames = true;
            self.writer.start(&mut out);
        }
        if self.stream.is_some() && self.cut.as_mut().poll(cx).is_ready() {
            // The shutdown grace ran out: end as every failed stream ends, not with a bare
            // close the client could take for a whole answer.
            let error = LlmError::new(
                ErrorKind::Server,
                "the gateway shut down before the answer was complete",
            );
            self.fail(&mut out, &error);
            return Poll::Ready(Some(out.into()));
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(stream).poll_next(cx) {
                Poll::Pending => {
                    return if out.is_empty() {
                        Poll::Pending
                    } else {
                        Poll::Ready(Some(out.into()))
                    };
                }
                Poll::Ready(Some(event)) => {
                    match event {
                        // After a mid-stream recovery the chunks name the model that
                        // answers them.
                        StreamEvent::Start {
                            model: Some(model), ..
                        } if !model.is_empty() => self.writer.set_model(model),
                        StreamEvent::Start { .. } => {}
                        StreamEvent::TextDelta(text) => {
                            self.first_content();
                            self.writer.text(&mut out, &text);
                        }
                        StreamEvent::ToolCallDelta {
                            index,
                            id,
                            name,
                            arguments,
                        } => {
                            self.first_content();
                            self.writer.tool_call(
                                &mut out,
                                index,
                                id.as_deref(),
                                name.as_deref(),
                                &arguments,
                            );
                        }
                        StreamEvent::Usage(usage) => self.usage = Some(usage),
                        StreamEvent::Finish(reason) => {
                            self.finished = true;
                            self.writer.finish(&mut out, &reason);
                        }
                        StreamEvent::Error(error) => {
                            self.fail(&mut out, &error);
                            return Poll::Ready(Some(out.into()));
                        }
                        // An event this relay does not know carries nothing for the client.
                        _ => {}
                    }
                    // Relay what we have at once: streams are read as they arrive.
                    if !out.is_empty() {
                        return Poll::Ready(Some(out.into()));
                    }
                }
                Poll::Ready(None) => {
                    if self.finished {
                        // The budget layer settled the call as the stream ended; the trail's
                        // lock is taken only when the cost is written.
                        let cost = if self.writer.reports_usage() {
                            self.trail.update(|trail| trail.cost)
                        } else {
                            None
                        };
                        self.writer.end(&mut out, self.usage.as_ref(), cost);
                        self.end();
                    } else {
                        let error = LlmError::new(
                            ErrorKind::StreamTruncated,
                            "the upstream stream ended before the end of the message",
                        );
                        self.fail(&mut out, &error);
                    }
                    return Poll::Ready(Some(out.into()));
                }
            }
        }
    }

    fn first_content(&mut self) {
        if !self.first_content {
            self.first_content = true;
            let ttft = self.started.elapsed();
            self.shared.metrics.ttft.observe(ttft.as_secs_f64());
            if let Some(access) = &mut self.access {
                access.ttft = Some(ttft);
            }
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, error: &LlmError) {
        let message = crate::redact::redact(error.message(), &self.shared.secrets);
        self.writer.error(out, &message, error.kind());
        self.shared.metrics.stream_errors.inc();
        if let Some(access) = &mut self.access {
            access.error = Some(error.kind().as_str().to_owned());
        }
        self.end();
    }

    /// Ends the relay. Dropping the stream settles the call's budget, and with it the usage
    /// report and the cost metrics (for a stream the client abandoned, with what the
    /// provider produced).
    fn end(&mut self) {
        self.stream = None;
        self.usage = None;
    }
}

impl Drop for SseRelay {
    fn drop(&mut self) {
        let latency = self.started.elapsed();
        self.shared.metrics.latency.observe(latency.as_secs_f64());
        if self.stream.is_some()
            && let Some(access) = &mut self.access
        {
            access.error = Some("client_disconnected".to_owned());
        }
        // The client went away mid-stream: charged for what was produced.
        self.end();
        if let Some(access) = &mut self.access {
            // Settled when the stream was dropped: the trail has the tokens and the cost.
            access.follow(&self.trail.snapshot());
            access.log(self.dialect.path(), 200, latency);
        }
    }
}

/// What every route answers.
pub(super) type Reply = Response<GatewayBody>;

/// A complete reply of `content_type`.
pub(super) fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Reply {
    let mut response = Response::new(GatewayBody(BodyKind::Full(Some(body.into()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A complete JSON reply.
pub(super) fn json_reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    full(status, "application/json", body)
}
