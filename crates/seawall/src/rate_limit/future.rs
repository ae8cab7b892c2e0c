//! The rate limiter's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{BoxError, LlmError, LlmRequest};
use tokio::time::Sleep;
use tower_service::Service;

use super::limiter::{Acquire, Reservation};
use super::stream::{Reconcile, reported_quota};

pin_project! {
    /// Waits for admission, sends the call, then reconciles the reservation with the
    /// usage the response reports.
    pub struct ResponseFuture<F, S, Req> {
        #[pin]
        state: State<F, S, Req>,
        acquire: Acquire,
        sleep: Option<Pin<Box<Sleep>>>,
        reservation: Option<Reservation>,
    }
}

const POLLED_AFTER_COMPLETION: &str = "rate limit future polled after completion";

pin_project! {
    /// The service and the request wait in `Admitting` and share their room with the
    /// call's future, so the response future is no larger than the larger of the two.
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, S, Req> {
        Admitting { inner: S, request: Req },
        Calling { #[pin] future: F },
        Done,
    }
}

impl<F, S, Req> ResponseFuture<F, S, Req> {
    pub(crate) fn new(acquire: Acquire, inner: S, request: Req) -> Self {
        Self {
            state: State::Admitting { inner, request },
            acquire,
            sleep: None,
            reservation: None,
        }
    }
}

impl<F, S, Req> Future for ResponseFuture<F, S, Req>
where
    S: Service<Req, Future = F>,
    F: Future<Output = Result<S::Response, S::Error>>,
    S::Error: Into<BoxError>,
    S::Response: Reconcile,
    Req: LlmRequest,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Admitting { .. } => {
                    let reservation = match ready!(this.acquire.poll_acquire(cx, this.sleep)) {
                        Ok(reservation) => reservation,
                        Err(shed) => {
                            tracing::event!(
                                target: "seawall::rate_limit",
                                tracing::Level::INFO,
                                "seawall.target" = shed.target.as_str(),
                                "seawall.reason" = %shed,
                                "limiter shed"
                            );
                            return Poll::Ready(Err(shed.into()));
                        }
                    };
                    if !reservation.waited().is_zero() {
                        tracing::event!(
                            target: "seawall::rate_limit",
                            tracing::Level::DEBUG,
                            "seawall.target" = this.acquire.target().as_str(),
                            "seawall.wait_ms" = reservation.waited().as_millis() as u64,
                            "limiter wait"
                        );
                    }
                    let StateReplace::Admitting { mut inner, request } =
                        this.state.as_mut().project_replace(State::Done)
                    else {
                        // Matched `Admitting` just above: not reached.
                        return Poll::Ready(Err(POLLED_AFTER_COMPLETION.into()));
                    };
                    if !reservation.waited().is_zero()
                        && let Some(trail) = request.context().and_then(|c| c.trail.as_ref())
                    {
                        trail.update(|trail| trail.limiter_wait += reservation.waited());
                    }
                    *this.reservation = Some(reservation);
                    let future = inner.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    let reservation = this.reservation.take();
                    return Poll::Ready(match (result, reservation) {
                        (Ok(response), Some(reservation)) => Ok(response.reconcile(reservation)),
                        (Ok(response), None) => Ok(response),
                        (Err(error), reservation) => {
                            let error: BoxError = error.into();
                            if let Some(reservation) = reservation {
                                let quota = seawall_core::find_error::<LlmError>(&*error)
                                    .and_then(reported_quota);
                                reservation.settle(None, quota.as_ref());
                            }
                            Err(error)
                        }
                    });
                }
                // Only between taking the service and the request and setting the call.
                StateProj::Done => {
                    return Poll::Ready(Err(POLLED_AFTER_COMPLETION.into()));
                }
            }
        }
    }
}

impl<F, S, Req> fmt::Debug for ResponseFuture<F, S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("acquire", &self.acquire)
            .field("sent", &!matches!(self.state, State::Admitting { .. }))
            .finish_non_exhaustive()
    }
}
