//! The response futures of the timeout layers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::{
    BoxError, DeadlineExceeded, ErrorWithTrail, TimedOut, TimeoutKind, TrailRecorder,
};
use tokio::time::{Instant, Sleep, sleep_until};

use super::stream::{StreamTimeouts, watch_deadline};
use crate::streaming::StreamingResponse;

pin_project! {
    /// The response future of [`EnforceDeadline`](super::EnforceDeadline).
    pub struct DeadlineFuture<F> {
        #[pin]
        state: DeadlineState<F>,
    }
}

pin_project! {
    #[project = DeadlineProj]
    enum DeadlineState<F> {
        Running {
            #[pin]
            inner: F,
            // Armed when the inner future first waits: a call answered at once never
            // builds one, and the futures above stay smaller by a `Sleep`.
            timer: Option<Pin<Box<Sleep>>>,
            at: Instant,
            budget: Duration,
            cover_streams: bool,
            trail: TrailRecorder,
        },
        Expired { budget: Duration, trail: TrailRecorder },
    }
}

impl<F> DeadlineFuture<F> {
    pub(crate) fn new(
        inner: F,
        at: Instant,
        budget: Duration,
        cover_streams: bool,
        trail: TrailRecorder,
    ) -> Self {
        Self {
            state: DeadlineState::Running {
                inner,
                timer: None,
                at,
                budget,
                cover_streams,
                trail,
            },
        }
    }

    pub(crate) fn expired(budget: Duration, trail: TrailRecorder) -> Self {
        Self {
            state: DeadlineState::Expired { budget, trail },
        }
    }
}

impl<F> fmt::Debug for DeadlineFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineFuture").finish_non_exhaustive()
    }
}

impl<F, R, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    R: StreamingResponse,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            DeadlineProj::Expired { budget, trail } => Poll::Ready(Err(exceeded(*budget, trail))),
            DeadlineProj::Running {
                inner,
                timer,
                at,
                budget,
                cover_streams,
                trail,
            } => {
                // The inner result is polled first: one that is ready exactly at the
                // deadline is kept.
                if let Poll::Ready(result) = inner.poll(cx) {
                    let mut response = result.map_err(Into::into)?;
                    if *cover_streams && let Some(stream) = response.take_stream() {
                        response.put_stream(watch_deadline(stream, *at, *budget));
                    }
                    return Poll::Ready(Ok(response));
                }
                ready!(arm(timer, *at).poll(cx));
                Poll::Ready(Err(exceeded(*budget, trail)))
            }
        }
    }
}

/// The timer of a future that waits, built the first time it does.
fn arm(timer: &mut Option<Pin<Box<Sleep>>>, at: Instant) -> Pin<&mut Sleep> {
    timer
        .get_or_insert_with(|| Box::pin(sleep_until(at)))
        .as_mut()
}

/// The deadline error, carrying what the call's layers recorded before it passed.
fn exceeded(budget: Duration, trail: &TrailRecorder) -> BoxError {
    Box::new(ErrorWithTrail::new(
        Box::new(DeadlineExceeded::new(budget)),
        trail.shared(),
    ))
}

pin_project! {
    /// The response future of [`AttemptTimeout`](super::AttemptTimeout).
    pub struct AttemptTimeoutFuture<F> {
        #[pin]
        state: AttemptState<F>,
        started: Instant,
        streams: StreamTimeouts,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum AttemptState<F> {
        Bounded {
            #[pin]
            inner: F,
            // Armed when the inner future first waits, as the deadline's.
            timer: Option<Pin<Box<Sleep>>>,
            after: Duration,
        },
        Unbounded {
            #[pin]
            inner: F,
        },
    }
}

impl<F> AttemptTimeoutFuture<F> {
    pub(crate) fn new(
        inner: F,
        started: Instant,
        attempt: Option<Duration>,
        streams: StreamTimeouts,
    ) -> Self {
        let state = match attempt {
            Some(after) => AttemptState::Bounded {
                inner,
                timer: None,
                after,
            },
            None => AttemptState::Unbounded { inner },
        };
        Self {
            state,
            started,
            streams,
        }
    }
}

impl<F> fmt::Debug for AttemptTimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptTimeoutFuture")
            .field("started", &self.started)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl<F, R, E> Future for AttemptTimeoutFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    R: StreamingResponse,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.state.project() {
            AttemptProj::Bounded {
                inner,
                timer,
                after,
            } => match inner.poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    ready!(arm(timer, *this.started + *after).poll(cx));
                    let timed_out = TimedOut::new(TimeoutKind::Attempt, *after);
                    return Poll::Ready(Err(timed_out.into()));
                }
            },
            AttemptProj::Unbounded { inner } => ready!(inner.poll(cx)),
        };
        let mut response = result.map_err(Into::into)?;
        if !this.streams.is_none()
            && let Some(stream) = response.take_stream()
        {
            response.put_stream(this.streams.watch(stream, *this.started));
        }
        Poll::Ready(Ok(response))
    }
}
