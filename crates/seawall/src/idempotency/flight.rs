//! One call in flight that others joined: what it has produced so far, and who waits for
//! more.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use seawall_core::{BoxError, LlmError, ProviderKind, StreamEvent};

use super::error::{FirstCallFailed, IdempotencyConflict, IdempotencyUnavailable};
use crate::answer::StoredAnswer;

/// What the first call answered, once its response arrived.
#[derive(Debug, Clone)]
pub(crate) enum Head {
    Whole(Arc<StoredAnswer>),
    Stream {
        provider: ProviderKind,
        model: String,
    },
}

/// How the first call failed, as every joined call reports it.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    Provider(LlmError),
    Other(FirstCallFailed),
    Conflict(IdempotencyConflict),
    Unavailable(IdempotencyUnavailable),
}

impl Failure {
    pub(crate) fn of(key: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        match seawall_core::find_error::<LlmError>(error) {
            Some(error) => Self::Provider(error.clone()),
            None => Self::Other(FirstCallFailed {
                key: key.to_owned(),
                reason: error.to_string(),
            }),
        }
    }

    pub(crate) fn error(&self) -> BoxError {
        match self {
            Self::Provider(error) => Box::new(error.clone()),
            Self::Other(error) => Box::new(error.clone()),
            Self::Conflict(error) => Box::new(error.clone()),
            Self::Unavailable(error) => Box::new(error.clone()),
        }
    }

    fn event(&self) -> StreamEvent {
        match self {
            Self::Provider(error) => StreamEvent::Error(error.clone()),
            Self::Other(_) | Self::Conflict(_) | Self::Unavailable(_) => {
                StreamEvent::Error(LlmError::new(
                    seawall_core::ErrorKind::StreamTruncated,
                    self.error().to_string(),
                ))
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    head: Option<Head>,
    events: Vec<StreamEvent>,
    ended: bool,
    failure: Option<Failure>,
    wakers: Vec<Waker>,
}

/// The shared state of one call in flight. The lock is held only to read or append, never
/// across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    state: Mutex<State>,
}

/// What a joined call sees when it looks.
pub(crate) enum Seen {
    Waiting,
    Head(Head),
    Failed(Failure),
}

impl Flight {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn wake(wakers: Vec<Waker>) {
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn set_head(&self, head: Head) {
        let wakers = self.with(|state| {
            state.head = Some(head);
            std::mem::take(&mut state.wakers)
        });
        Self::wake(wakers);
    }

    pub(crate) fn push(&self, event: StreamEvent) {
        let wakers = self.with(|state| {
            state.events.push(event);
            std::mem::take(&mut state.wakers)
        });
        Self::wake(wakers);
    }

    pub(crate) fn end(&self) {
        let wakers = self.with(|state| {
            state.ended = true;
            std::mem::take(&mut state.wakers)
        });
        Self::wake(wakers);
    }

    pub(crate) fn fail(&self, failure: Failure) {
        let wakers = self.with(|state| {
            if !state.ended {
                state.failure = Some(failure);
                state.ended = true;
            }
            std::mem::take(&mut state.wakers)
        });
        Self::wake(wakers);
    }

    /// The first call's response head or failure, or a wake-up when it comes.
    pub(crate) fn look(&self, cx: &mut Context<'_>) -> Seen {
        self.with(|state| {
            if let Some(head) = &state.head {
                return Seen::Head(head.clone());
            }
            if let Some(failure) = &state.failure {
                return Seen::Failed(failure.clone());
            }
            state.wakers.push(cx.waker().clone());
            Seen::Waiting
        })
    }

    /// Event `index` of the first call's stream, the end, or a wake-up when there is more.
    fn event(&self, index: usize, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.with(|state| {
            if let Some(event) = state.events.get(index) {
                return Poll::Ready(Some(event.clone()));
            }
            if state.ended {
                // A stream that failed mid-way ends, for the joined calls too, with an error.
                return Poll::Ready(
                    (index == state.events.len())
                        .then(|| state.failure.as_ref().map(Failure::event))
                        .flatten(),
                );
            }
            state.wakers.push(cx.waker().clone());
            Poll::Pending
        })
    }
}

/// A joined call's copy of the first call's stream, from its first event.
pub(crate) struct Follow {
    pub(crate) flight: Arc<Flight>,
    pub(crate) next: usize,
}

impl Stream for Follow {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let event = std::task::ready!(self.flight.event(self.next, cx));
        if event.is_some() {
            self.next += 1;
        }
        Poll::Ready(event)
    }
}
