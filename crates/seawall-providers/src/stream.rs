//! The typed event stream of a streamed response: the body's bytes through the
//! [`SseDecoder`] and the provider's [`StreamDecoder`], with the completion rules of
//! DESIGN.md "Streaming".
//!
//! A stream ends in exactly one of two ways:
//! - [`StreamEvent::Finish`], possibly followed by one last [`StreamEvent::Usage`], when
//!   the provider's end of message arrived (OpenAI: a `finish_reason`, then `[DONE]` or a
//!   clean end of the body; Anthropic: `message_stop`; Gemini: a `finishReason`);
//! - [`StreamEvent::Error`] otherwise: a cut connection, a transport error or an end of the
//!   body before the end of message gives [`ErrorKind::StreamTruncated`]; an in-band error
//!   frame gives the kind its error body maps to; a malformed event under
//!   [`MalformedPolicy::Fail`] gives [`ErrorKind::Decode`].
//!
//! Malformed events (data that is not JSON) are skipped by default and counted in the
//! adapter's [`StreamMetrics`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Buf;
use futures_core::Stream;
use http_body::Body;
use pin_project_lite::pin_project;
use seawall_core::{BoxError, ErrorKind, LlmError, ProviderKind, StreamEvent};

use crate::dialect::{Flow, StreamDecoder};
use crate::sse::{SseDecoder, SseEvent};

/// What a stream does with an event whose data is not valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MalformedPolicy {
    /// Skip it and count it in [`StreamMetrics::malformed_skipped`] (the default: one bad
    /// frame should not cost a whole answer).
    #[default]
    Skip,
    /// End the stream with an [`ErrorKind::Decode`] error.
    Fail,
}

/// Counters shared by every stream of one adapter (and its clones).
///
/// Cheap to clone; clones share the counters. Read them for metrics; they only grow.
#[derive(Debug, Clone, Default)]
pub struct StreamMetrics(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    malformed_skipped: AtomicU64,
}

impl StreamMetrics {
    /// Fresh counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams whose headers arrived and whose events started to flow.
    pub fn started(&self) -> u64 {
        self.0.started.load(Ordering::Relaxed)
    }

    /// Streams that reached the provider's end of message.
    pub fn completed(&self) -> u64 {
        self.0.completed.load(Ordering::Relaxed)
    }

    /// Streams that ended with an error event.
    pub fn failed(&self) -> u64 {
        self.0.failed.load(Ordering::Relaxed)
    }

    /// Malformed events skipped under [`MalformedPolicy::Skip`].
    pub fn malformed_skipped(&self) -> u64 {
        self.0.malformed_skipped.load(Ordering::Relaxed)
    }
}

pin_project! {
    /// The events of one streamed response, decoded as the body arrives.
    ///
    /// Adapters box it into the response's [`EventStream`](seawall_core::EventStream); it
    /// is public so that a recorded body can be decoded without an adapter (see
    /// [`DecodedStream::new`]).
    pub struct DecodedStream<B, D> {
        #[pin]
        body: B,
        state: Decoding<D>,
    }
}

/// Everything but the body: the decoders, the events ready to hand out, the counters.
struct Decoding<D> {
    sse: SseDecoder,
    decoder: D,
    provider: ProviderKind,
    policy: MalformedPolicy,
    metrics: StreamMetrics,
    pending: VecDeque<StreamEvent>,
    sse_events: Vec<SseEvent>,
    decoded: Vec<StreamEvent>,
    skipped: u64,
    done: bool,
    request_id: Option<String>,
}

impl<B, D> std::fmt::Debug for DecodedStream<B, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedStream")
            .field("provider", &self.state.provider)
            .field("policy", &self.state.policy)
            .field("skipped", &self.state.skipped)
            .field("done", &self.state.done)
            .finish_non_exhaustive()
    }
}

impl<B, D> DecodedStream<B, D>
where
    B: Body,
    B::Error: Into<BoxError>,
    D: StreamDecoder,
{
    /// Decodes `body` with `decoder`, counting into `metrics`.
    pub fn new(
        body: B,
        decoder: D,
        provider: ProviderKind,
        policy: MalformedPolicy,
        metrics: StreamMetrics,
    ) -> Self {
        metrics.0.started.fetch_add(1, Ordering::Relaxed);
        Self {
            body,
            state: Decoding {
                sse: SseDecoder::new(),
                decoder,
                provider,
                policy,
                metrics,
                pending: VecDeque::new(),
                sse_events: Vec::new(),
                decoded: Vec::new(),
                skipped: 0,
                done: false,
                request_id: None,
            },
        }
    }

    /// Adds the response's request id to the stream's error events that lack one.
    #[must_use]
    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        self.state.request_id = id;
        self
    }

    /// Malformed events this stream skipped so far.
    pub fn skipped(&self) -> u64 {
        self.state.skipped
    }
}

impl<B, D> Stream for DecodedStream<B, D>
where
    B: Body,
    B::Error: Into<BoxError>,
    D: StreamDecoder,
{
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let mut this = self.project();
        let state = this.state;
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Poll::Ready(Some(event));
            }
            if state.done {
                return Poll::Ready(None);
            }
            match this.body.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            let len = chunk.len();
                            state.sse.feed(chunk, &mut state.sse_events);
                            data.advance(len);
                        }
                        state.after_bytes();
                    } // trailers carry nothing for us
                }
                Poll::Ready(Some(Err(error))) => state.after_break(error.into()),
                Poll::Ready(None) => state.after_end(),
            }
        }
    }
}

impl<D: StreamDecoder> Decoding<D> {
    /// New bytes were fed: decode the events they completed.
    fn after_bytes(&mut self) {
        if let Err(too_large) = self.sse.check_size() {
            let error = LlmError::new(ErrorKind::Decode, too_large.to_string())
                .with_provider(self.provider);
            self.fail(error);
            return;
        }
        self.dispatch();
    }

    /// The body broke off (a reset, a truncated chunked encoding, a transport error).
    fn after_break(&mut self, error: BoxError) {
        if self.decoder.finish(false, &mut self.decoded) {
            self.take_decoded();
            self.complete();
        } else {
            self.take_decoded();
            let truncated = LlmError::new(
                ErrorKind::StreamTruncated,
                format!("the stream broke off before the end of message: {error}"),
            )
            .with_provider(self.provider)
            .with_source(error);
            self.fail(truncated);
        }
    }

    /// The body ended cleanly.
    fn after_end(&mut self) {
        self.sse.finish(&mut self.sse_events);
        self.dispatch();
        if self.done {
            return;
        }
        if self.decoder.finish(true, &mut self.decoded) {
            self.take_decoded();
            self.complete();
        } else {
            self.take_decoded();
            let truncated = LlmError::new(
                ErrorKind::StreamTruncated,
                "the stream ended before the provider's end of message",
            )
            .with_provider(self.provider);
            self.fail(truncated);
        }
    }

    /// Moves the provider decoder's output to the events ready to hand out.
    fn take_decoded(&mut self) {
        for event in self.decoded.drain(..) {
            let event = match event {
                StreamEvent::Error(error) => StreamEvent::Error(tag(&self.request_id, error)),
                other => other,
            };
            self.pending.push_back(event);
        }
    }

    fn complete(&mut self) {
        self.metrics.0.completed.fetch_add(1, Ordering::Relaxed);
        self.done = true;
    }

    fn fail(&mut self, error: LlmError) {
        let error = tag(&self.request_id, error);
        self.pending.push_back(StreamEvent::Error(error));
        self.metrics.0.failed.fetch_add(1, Ordering::Relaxed);
        self.done = true;
    }

    /// Runs the provider's decoder over the SSE events decoded so far.
    fn dispatch(&mut self) {
        let mut events = std::mem::take(&mut self.sse_events);
        for event in events.drain(..) {
            if self.done {
                break;
            }
            match self.decoder.decode(&event, &mut self.decoded) {
                Ok(flow) => {
                    let failed = matches!(self.decoded.last(), Some(StreamEvent::Error(_)));
                    self.take_decoded();
                    if flow == Flow::End {
                        if failed {
                            self.metrics.0.failed.fetch_add(1, Ordering::Relaxed);
                            self.done = true;
                        } else {
                            self.complete();
                        }
                    }
                }
                Err(malformed) => {
                    self.take_decoded();
                    match self.policy {
                        MalformedPolicy::Skip => {
                            self.skipped += 1;
                            self.metrics
                                .0
                                .malformed_skipped
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        MalformedPolicy::Fail => {
                            let error = LlmError::new(ErrorKind::Decode, malformed.to_string())
                                .with_provider(self.provider)
                                .with_source(malformed);
                            self.fail(error);
                        }
                    }
                }
            }
        }
        // Keep the buffer's capacity for the next chunk.
        events.clear();
        self.sse_events = events;
    }
}

/// `error` with the response's request id, unless it carries its own.
fn tag(request_id: &Option<String>, error: LlmError) -> LlmError {
    match request_id {
        Some(id) if error.request_id().is_none() => error.with_request_id(id.clone()),
        _ => error,
    }
}
