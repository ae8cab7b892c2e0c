use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{BoxError, ChatResponse, ErrorWithTrail, Trail, TrailRecorder};
use tokio::time::Instant;

use super::recorder::{CallMetrics, CallOutcome, CallRecord};
use super::stream::MeteredStream;
use crate::streaming::StreamingResponse;

/// What a call's record needs once the call ends.
pub(super) struct Pending {
    pub(super) metrics: Arc<CallMetrics>,
    pub(super) trail: TrailRecorder,
    pub(super) model: Arc<str>,
    pub(super) key: Option<Arc<str>>,
    pub(super) started: Instant,
}

impl Pending {
    /// Records the call with `trail` (the recorder's when `None`).
    pub(super) fn record(
        self,
        trail: Option<&Trail>,
        outcome: CallOutcome,
        time_to_first_token: Option<std::time::Duration>,
    ) {
        let shared;
        let trail = match trail {
            Some(trail) => trail,
            None => {
                shared = self.trail.shared();
                &*shared
            }
        };
        self.metrics.record(
            &CallRecord::new(&self.model, trail, outcome, self.started.elapsed())
                .key(self.key.as_deref())
                .time_to_first_token(time_to_first_token),
        );
    }
}

pin_project! {
    /// Counts the call when it is answered, fails, or is dropped; hands a stream on to be
    /// counted at its end.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.record(None, CallOutcome::Abandoned, None);
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, pending: Pending) -> Self {
        Self {
            inner,
            pending: Some(pending),
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatResponse, E>>,
    E: Into<BoxError>,
{
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(result);
        };
        match result {
            Ok(mut response) => {
                match response.take_stream() {
                    Some(stream) => response.put_stream(MeteredStream::wrap(stream, pending)),
                    None => pending.record(Some(&response.trail), CallOutcome::Answered, None),
                }
                Poll::Ready(Ok(response))
            }
            Err(error) => {
                let cause = seawall_core::classify(&*error).cause.as_str();
                let trail = ErrorWithTrail::find(&*error).map(ErrorWithTrail::trail);
                pending.record(trail, CallOutcome::Failed(cause), None);
                Poll::Ready(Err(error))
            }
        }
    }
}
