use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;
use seawall_core::{
    DeadlineExceeded, ErrorKind, EventStream, LlmError, StreamEvent, TimedOut, TimeoutKind,
};
use tokio::time::{Instant, Sleep, sleep_until};

/// The timeouts that watch a streamed response's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamTimeouts {
    /// The longest wait from the attempt's start to the first content event.
    pub first_token: Option<Duration>,
    /// The longest silence between two events (before the first content only when
    /// `first_token` is not set).
    pub idle: Option<Duration>,
}

impl StreamTimeouts {
    /// No stream timeout.
    pub const fn none() -> Self {
        Self {
            first_token: None,
            idle: None,
        }
    }

    /// Whether no stream timeout is set.
    pub const fn is_none(&self) -> bool {
        self.first_token.is_none() && self.idle.is_none()
    }

    /// Wraps `stream`, whose attempt started at `started`: when a timeout fires the stream
    /// yields one [`StreamEvent::Error`] of kind [`ErrorKind::Timeout`] (its source is the
    /// [`TimedOut`]) and ends.
    pub fn watch(self, stream: EventStream, started: Instant) -> EventStream {
        EventStream::new(Watched::new(stream, self, None, started))
    }
}

/// Wraps `stream` so that it ends with a timeout error event at `at`, the call's deadline.
pub(crate) fn watch_deadline(stream: EventStream, at: Instant, budget: Duration) -> EventStream {
    EventStream::new(Watched::new(
        stream,
        StreamTimeouts::none(),
        Some((at, budget)),
        Instant::now(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fire {
    FirstToken(Duration),
    Idle(Duration),
    Deadline(Duration),
}

pin_project! {
    struct Watched {
        inner: EventStream,
        #[pin]
        timer: Sleep,
        timeouts: StreamTimeouts,
        deadline: Option<(Instant, Duration)>,
        started: Instant,
        seen_content: bool,
        // The bound on the next event and which timeout it is. The timer is moved to
        // `bound` only when the stream waits: events that come in a burst move no timer.
        bound: Instant,
        fire: Option<Fire>,
        done: bool,
    }
}

impl Watched {
    fn new(
        inner: EventStream,
        timeouts: StreamTimeouts,
        deadline: Option<(Instant, Duration)>,
        started: Instant,
    ) -> Self {
        // Silence is counted from when the stream is handed over, not from the attempt's
        // start (which the first-token timeout measures).
        let (at, fire) = next_bound(&timeouts, deadline, started, false, Instant::now());
        Self {
            inner,
            timer: sleep_until(at),
            timeouts,
            deadline,
            started,
            seen_content: false,
            bound: at,
            fire,
            done: false,
        }
    }
}

/// The earliest bound on the next event, and which timeout it is.
fn next_bound(
    timeouts: &StreamTimeouts,
    deadline: Option<(Instant, Duration)>,
    started: Instant,
    seen_content: bool,
    last_event: Instant,
) -> (Instant, Option<Fire>) {
    let silence = match (seen_content, timeouts.first_token, timeouts.idle) {
        (false, Some(first), _) => Some((started + first, Fire::FirstToken(first))),
        (_, _, Some(idle)) => Some((last_event + idle, Fire::Idle(idle))),
        _ => None,
    };
    let overall = deadline.map(|(at, budget)| (at, Fire::Deadline(budget)));
    let (at, fire) = match (silence, overall) {
        (Some(a), Some(b)) => {
            if b.0 < a.0 {
                b
            } else {
                a
            }
        }
        (Some(bound), None) | (None, Some(bound)) => bound,
        // No bound: the timer is never polled, its instant is only a placeholder.
        (None, None) => return (last_event, None),
    };
    (at, Some(fire))
}

fn timeout_event(fire: Fire) -> StreamEvent {
    let error = match fire {
        Fire::FirstToken(after) => {
            let timed_out = TimedOut::new(TimeoutKind::FirstToken, after);
            LlmError::new(ErrorKind::Timeout, timed_out.to_string()).with_source(timed_out)
        }
        Fire::Idle(after) => {
            let timed_out = TimedOut::new(TimeoutKind::Idle, after);
            LlmError::new(ErrorKind::Timeout, timed_out.to_string()).with_source(timed_out)
        }
        Fire::Deadline(budget) => {
            let exceeded = DeadlineExceeded::new(budget);
            LlmError::new(ErrorKind::Timeout, exceeded.to_string()).with_source(exceeded)
        }
    };
    StreamEvent::Error(error)
}

impl Stream for Watched {
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // Returned as polled, so that the inner stream writes the event where the caller
        // reads it.
        let polled = Pin::new(&mut *this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(event)) => {
                if matches!(event, StreamEvent::Error(_)) {
                    *this.done = true;
                } else {
                    *this.seen_content |= event.is_content();
                    // Only the idle timeout counts from the last event: without it, the
                    // clock is not read.
                    let last_event = if this.timeouts.idle.is_some() {
                        Instant::now()
                    } else {
                        *this.started
                    };
                    let (at, fire) = next_bound(
                        this.timeouts,
                        *this.deadline,
                        *this.started,
                        *this.seen_content,
                        last_event,
                    );
                    *this.bound = at;
                    *this.fire = fire;
                }
                return polled;
            }
            Poll::Ready(None) => {
                *this.done = true;
                return polled;
            }
            Poll::Pending => {}
        }
        if let Some(fire) = *this.fire {
            if this.timer.deadline() != *this.bound {
                this.timer.as_mut().reset(*this.bound);
            }
            if this.timer.poll(cx).is_ready() {
                *this.done = true;
                return Poll::Ready(Some(timeout_event(fire)));
            }
        }
        Poll::Pending
    }
}
