//! Reconciliation of a reservation with the usage a response reports, including usage
//! that arrives at the end of a stream.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use seawall_core::{
    ChatResponse, ErrorKind, EventStream, LlmError, LlmResponse, QuotaSnapshot, QuotaWindow,
    StreamEvent, Usage,
};

use super::limiter::Reservation;

/// A response the rate limiter can reconcile with its reservation.
pub trait Reconcile: LlmResponse + Sized {
    /// Settles `reservation` with this response's usage and quota headers, now or, for a
    /// stream, when the stream ends.
    fn reconcile(self, reservation: Reservation) -> Self;
}

/// A complete response settles at once. A streamed one takes the quota headers when it
/// begins and settles when its stream ends (or is dropped), with the last `Usage` event
/// it carried.
impl Reconcile for ChatResponse {
    fn reconcile(mut self, mut reservation: Reservation) -> Self {
        match self.stream.take() {
            Some(stream) => {
                // The headers describe the provider when the stream began: take them now.
                if let Some(quota) = self.quota.as_deref() {
                    reservation.observe(quota);
                }
                self.stream = Some(EventStream::new(ReconcileStream {
                    inner: stream,
                    reservation: Some(reservation),
                    usage: self.usage,
                }));
            }
            None => reservation.settle(self.usage, self.quota.as_deref()),
        }
        self
    }
}

/// A raw HTTP response settles at once: with the `Usage` extension a layer below set, or,
/// without one, charged as estimated. Its rate-limit headers correct the limiter.
impl<B> Reconcile for http::Response<B> {
    fn reconcile(self, reservation: Reservation) -> Self {
        match self.failure() {
            Some(error) => {
                let quota = reported_quota(&error).or_else(|| self.quota());
                reservation.settle(None, quota.as_ref());
            }
            None => reservation.settle(self.usage(), self.quota().as_ref()),
        }
        self
    }
}

/// What a provider's error says about its quota: its rate-limit headers, or, for a rate
/// limit reported only as a wait (Gemini's `RetryInfo`, a bare `retry-after`), no request
/// left until that wait is over.
pub(super) fn reported_quota(error: &LlmError) -> Option<QuotaSnapshot> {
    if let Some(quota) = error.quota().filter(|quota| !quota.is_empty()) {
        return Some(*quota);
    }
    let wait = error.hints().retry_after?;
    (error.kind() == ErrorKind::RateLimited).then(|| {
        QuotaSnapshot::default().with_requests(QuotaWindow::new(None, Some(0), Some(wait)))
    })
}

/// Passes a stream through and settles the reservation when it ends.
struct ReconcileStream {
    inner: EventStream,
    reservation: Option<Reservation>,
    usage: Option<Usage>,
}

impl ReconcileStream {
    fn settle(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(self.usage, None);
        }
    }
}

impl Stream for ReconcileStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let event = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        match &event {
            Some(StreamEvent::Usage(usage)) => self.usage = Some(*usage),
            Some(StreamEvent::Error(_)) | None => self.settle(),
            Some(_) => {}
        }
        Poll::Ready(event)
    }
}

impl Drop for ReconcileStream {
    fn drop(&mut self) {
        self.settle();
    }
}

impl fmt::Debug for ReconcileStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcileStream")
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}
