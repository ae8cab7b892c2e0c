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
    }
}

impl<B, D> std::fmt::Debug for DecodedStream<B, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedStream")
            .field("provider", &self.provider)
            .field("policy", &self.policy)
            .field("skipped", &self.skipped)
            .field("done", &self.done)
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
        }
    }

    /// Malformed events this stream skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
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
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(event));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let frame = match this.body.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            };
            match frame {
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue; // trailers carry nothing for us
                    };
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        let len = chunk.len();
                        this.sse.feed(chunk, this.sse_events);
                        data.advance(len);
                    }
                    if let Err(too_large) = this.sse.check_size() {
                        let error = LlmError::new(ErrorKind::Decode, too_large.to_string())
                            .with_provider(*this.provider);
                        end_with_error(this.pending, this.metrics, this.done, error);
                        continue;
                    }
                    dispatch(
                        this.sse_events,
                        this.decoder,
                        this.decoded,
                        this.pending,
                        this.metrics,
                        this.skipped,
                        this.done,
                        *this.policy,
                        *this.provider,
                    );
                }
                Some(Err(error)) => {
                    let error: BoxError = error.into();
                    let complete = this.decoder.finish(false, this.decoded);
                    this.pending.extend(this.decoded.drain(..));
                    if complete {
                        this.metrics.0.completed.fetch_add(1, Ordering::Relaxed);
                        *this.done = true;
                    } else {
                        let truncated = LlmError::new(
                            ErrorKind::StreamTruncated,
                            format!("the stream broke off before the end of message: {error}"),
                        )
                        .with_provider(*this.provider)
                        .with_source(error);
                        end_with_error(this.pending, this.metrics, this.done, truncated);
                    }
                }
                None => {
                    this.sse.finish(this.sse_events);
                    dispatch(
                        this.sse_events,
                        this.decoder,
                        this.decoded,
                        this.pending,
                        this.metrics,
                        this.skipped,
                        this.done,
                        *this.policy,
                        *this.provider,
                    );
                    if *this.done {
                        continue;
                    }
                    let complete = this.decoder.finish(true, this.decoded);
                    this.pending.extend(this.decoded.drain(..));
                    if complete {
                        this.metrics.0.completed.fetch_add(1, Ordering::Relaxed);
                        *this.done = true;
                    } else {
                        let truncated = LlmError::new(
                            ErrorKind::StreamTruncated,
                            "the stream ended before the provider's end of message",
                        )
                        .with_provider(*this.provider);
                        end_with_error(this.pending, this.metrics, this.done, truncated);
                    }
                }
            }
        }
    }
}

fn end_with_error(
    pending: &mut VecDeque<StreamEvent>,
    metrics: &StreamMetrics,
    done: &mut bool,
    error: LlmError,
) {
    pending.push_back(StreamEvent::Error(error));
    metrics.0.failed.fetch_add(1, Ordering::Relaxed);
    *done = true;
}

#[allow(clippy::too_many_arguments)]
fn dispatch<D: StreamDecoder>(
    sse_events: &mut Vec<SseEvent>,
    decoder: &mut D,
    decoded: &mut Vec<StreamEvent>,
    pending: &mut VecDeque<StreamEvent>,
    metrics: &StreamMetrics,
    skipped: &mut u64,
    done: &mut bool,
    policy: MalformedPolicy,
    provider: ProviderKind,
) {
    for event in sse_events.drain(..) {
        if *done {
            break;
        }
        match decoder.decode(&event, decoded) {
            Ok(flow) => {
                let failed = decoded
                    .last()
                    .is_some_and(|last| matches!(last, StreamEvent::Error(_)));
                pending.extend(decoded.drain(..));
                if flow == Flow::End {
                    *done = true;
                    if failed {
                        metrics.0.failed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        metrics.0.completed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(malformed) => {
                pending.extend(decoded.drain(..));
                match policy {
                    MalformedPolicy::Skip => {
                        *skipped += 1;
                        metrics.0.malformed_skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    MalformedPolicy::Fail => {
                        let error = LlmError::new(ErrorKind::Decode, malformed.to_string())
                            .with_provider(provider)
                            .with_source(malformed);
                        end_with_error(pending, metrics, done, error);
                    }
                }
            }
        }
    }
    sse_events.clear();
}
