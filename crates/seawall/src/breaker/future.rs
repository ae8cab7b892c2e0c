//! The response future of the breaker, and the watcher it puts on streamed responses.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{
    BoxError, Cause, CircuitOpen, Classifier, LlmResponse, StreamEvent, StreamWatcher,
};
use tokio::time::Instant;

use super::state::{Admission, LazyNow, Outcome, Shared};
use crate::streaming::StreamingResponse;

/// One admitted call, until its outcome is recorded. Dropped unrecorded (the caller gave
/// up, a timeout outside ended it), it frees its half-open probe slot.
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    admission: Admission,
    /// When the call started, if the settings need it.
    started: Option<Instant>,
    /// The stack's classifier, when the breaker has none of its own.
    stack_classifier: Option<Classifier>,
    recorded: bool,
}

impl Ticket {
    pub(crate) fn new(
        shared: Arc<Shared>,
        admission: Admission,
        started: Option<Instant>,
        stack_classifier: Option<Classifier>,
    ) -> Self {
        Self {
            shared,
            admission,
            started,
            stack_classifier,
            recorded: false,
        }
    }

    fn finish(mut self, outcome: Outcome, now: &mut LazyNow) {
        self.recorded = true;
        self.shared.record(self.admission, outcome, now);
    }

    fn error_outcome(&self, error: &(dyn Error + 'static)) -> Outcome {
        let verdict = crate::classifier::classify(
            self.shared.classifier.as_ref(),
            self.stack_classifier.as_ref(),
            error,
        );
        if verdict.out_of_capacity && !self.shared.settings.capacity_cooldown {
            // The rate limiter holds the target until the reset.
            Outcome::Neutral
        } else if verdict.out_of_capacity {
            let wait = verdict
                .server_wait()
                .unwrap_or(self.shared.settings.default_cooldown);
            Outcome::OutOfCapacity(wait)
        } else if verdict.health_failure {
            Outcome::HealthFailure
        } else if matches!(verdict.cause, Cause::Provider(_)) {
            // The target answered (a bad request, a refusal): it is alive.
            Outcome::Success
        } else {
            // A local rejection or an unknown error says nothing about the target.
            Outcome::Neutral
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.recorded && matches!(self.admission, Admission::Probe { .. }) {
            self.shared
                .record(self.admission, Outcome::Neutral, &mut LazyNow::default());
        }
    }
}

pin_project! {
    /// The response future of [`Breaker`](super::Breaker): the call, or its rejection.
    ///
    /// Polled again after it completed, it returns an error instead of panicking.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F> {
        Running {
            #[pin]
            inner: F,
            ticket: Ticket,
        },
        Rejected {
            error: CircuitOpen,
        },
        Done,
    }
}

/// What a future polled again after it completed returns (it never panics).
const POLLED_AFTER_COMPLETION: &str = "breaker future polled after completion";

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, ticket: Ticket) -> Self {
        Self {
            state: State::Running { inner, ticket },
        }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        Self {
            state: State::Rejected { error },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    R: LlmResponse + StreamingResponse,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            StateProj::Done => Poll::Ready(Err(POLLED_AFTER_COMPLETION.into())),
            StateProj::Rejected { .. } => match state.project_replace(State::Done) {
                StateReplace::Rejected { error } => Poll::Ready(Err(error.into())),
                // Matched `Rejected` just above: not reached.
                _ => Poll::Ready(Err(POLLED_AFTER_COMPLETION.into())),
            },
            StateProj::Running { inner, .. } => {
                let result = ready!(inner.poll(cx)).map_err(Into::into);
                let StateReplace::Running { ticket, .. } = state.project_replace(State::Done)
                else {
                    // Matched `Running` just above: not reached.
                    return Poll::Ready(Err(POLLED_AFTER_COMPLETION.into()));
                };
                let mut now = LazyNow::default();
                match result {
                    Err(error) => {
                        let outcome = ticket.error_outcome(error.as_ref());
                        ticket.finish(outcome, &mut now);
                        Poll::Ready(Err(error))
                    }
                    Ok(mut response) => {
                        if let Some(failure) = response.failure() {
                            let outcome = ticket.error_outcome(&failure);
                            ticket.finish(outcome, &mut now);
                            return Poll::Ready(Ok(response));
                        }
                        if ticket.shared.settings.capacity_cooldown
                            && let Some(wait) = response.quota().and_then(|q| q.exhausted_until())
                        {
                            ticket.shared.park(wait, now.get());
                        }
                        let settings = &ticket.shared.settings;
                        let slow = settings
                            .slow_call
                            .zip(ticket.started)
                            .is_some_and(|(threshold, started)| now.get() - started > threshold);
                        if slow {
                            ticket.finish(Outcome::HealthFailure, &mut now);
                        } else if let Some(mut stream) = response.take_stream() {
                            // The outcome waits for the first content of the stream.
                            stream.watch(BreakerWatcher {
                                ticket: Some(ticket),
                                saw_finish: false,
                            });
                            response.put_stream(stream);
                        } else {
                            ticket.finish(Outcome::Success, &mut now);
                        }
                        Poll::Ready(Ok(response))
                    }
                }
            }
        }
    }
}

/// Records a streamed call's outcome at its first content event (slow if later than the
/// first-token threshold), at an error event before it, or at its end.
struct BreakerWatcher {
    ticket: Option<Ticket>,
    saw_finish: bool,
}

impl BreakerWatcher {
    fn finish(&mut self, outcome: Outcome, now: &mut LazyNow) {
        if let Some(ticket) = self.ticket.take() {
            ticket.finish(outcome, now);
        }
    }
}

impl StreamWatcher for BreakerWatcher {
    fn on_event(&mut self, event: &StreamEvent) {
        let Some(ticket) = &self.ticket else {
            return;
        };
        let mut now = LazyNow::default();
        let outcome = match event {
            event if event.is_content() => {
                let slow = ticket
                    .shared
                    .settings
                    .slow_first_token
                    .zip(ticket.started)
                    .is_some_and(|(threshold, started)| now.get() - started > threshold);
                if slow {
                    Outcome::HealthFailure
                } else {
                    Outcome::Success
                }
            }
            StreamEvent::Error(error) => ticket.error_outcome(error),
            StreamEvent::Finish(_) => {
                self.saw_finish = true;
                return;
            }
            _ => return,
        };
        self.finish(outcome, &mut now);
    }

    fn on_end(&mut self) {
        if self.ticket.is_some() {
            // An end without the end of message is a truncated stream.
            let outcome = if self.saw_finish {
                Outcome::Success
            } else {
                Outcome::HealthFailure
            };
            self.finish(outcome, &mut LazyNow::default());
        }
    }
}
