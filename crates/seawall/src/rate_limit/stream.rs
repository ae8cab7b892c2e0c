//! Reconciliation of a reservation with the usage a response reports, including usage
//! that arrives at the end of a stream.

use std::fmt;

use seawall_core::{
    ChatResponse, ErrorKind, LlmError, LlmResponse, QuotaSnapshot, QuotaWindow, StreamEvent,
    StreamWatcher, Usage,
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
        match &mut self.stream {
            Some(stream) => {
                // The headers describe the provider when the stream began: take them now.
                if let Some(quota) = self.quota.as_deref() {
                    reservation.observe(quota);
                }
                stream.watch(ReconcileWatcher {
                    reservation: Some(reservation),
                    usage: self.usage,
                });
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

/// Watches a stream and settles the reservation when it ends, fails or is dropped.
struct ReconcileWatcher {
    reservation: Option<Reservation>,
    usage: Option<Usage>,
}

impl ReconcileWatcher {
    fn settle(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(self.usage, None);
        }
    }
}

impl StreamWatcher for ReconcileWatcher {
    fn on_event(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
            StreamEvent::Error(_) => self.settle(),
            _ => {}
        }
    }

    fn on_end(&mut self) {
        self.settle();
    }
}

impl Drop for ReconcileWatcher {
    fn drop(&mut self) {
        self.settle();
    }
}

impl fmt::Debug for ReconcileWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcileWatcher")
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}
