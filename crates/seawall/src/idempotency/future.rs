use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use pin_project_lite::pin_project;
use seawall_core::{
    BoxError, CacheStatus, ChatResponse, EventStream, ProviderKind, SharedTrail, StreamAccumulator,
    StreamEvent, Trail,
};

use super::error::FirstCallFailed;

/// A call whose store answers after a round trip (or once another replica's call ended).
pub(crate) type Boxed = Pin<Box<dyn Future<Output = Result<ChatResponse, BoxError>> + Send>>;
use super::flight::{Failure, Flight, Follow, Head, Seen};

use super::store::IdempotencyStore;
use crate::answer::{Answer, Recording, StoredAnswer};

/// The first call with a key. Dropped before it finished (its caller gave up, its stream
/// was dropped), it fails the calls that joined it and frees the key.
pub(crate) struct Leader {
    store: Arc<dyn IdempotencyStore>,
    key: Arc<str>,
    fingerprint: Box<[u8]>,
    flight: Arc<Flight>,
    done: bool,
}

impl Leader {
    pub(crate) fn new(
        store: Arc<dyn IdempotencyStore>,
        key: Arc<str>,
        fingerprint: Box<[u8]>,
        flight: Arc<Flight>,
    ) -> Self {
        Self {
            store,
            key,
            fingerprint,
            flight,
            done: false,
        }
    }

    fn finish(mut self, answer: Option<Answer>) {
        self.done = true;
        match answer {
            Some(answer) => {
                self.store
                    .complete(&self.key, &self.fingerprint, Arc::new(StoredAnswer(answer)));
            }
            None => self.store.release(&self.key),
        }
        self.flight.end();
    }

    fn failed(mut self, error: &(dyn std::error::Error + 'static)) {
        self.done = true;
        self.flight.fail(Failure::of(&self.key, error));
        self.store.release(&self.key);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.done {
            self.flight.fail(Failure::Other(FirstCallFailed {
                key: self.key.to_string(),
                reason: "it was abandoned before it finished".to_owned(),
            }));
            self.store.release(&self.key);
        }
    }
}

pin_project! {
    /// The response future of [`Idempotency`](super::Idempotency).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Passthrough {
            #[pin]
            inner: F,
        },
        Boxed {
            future: Boxed,
        },
        First {
            #[pin]
            inner: F,
            leader: Option<Leader>,
        },
        Join {
            flight: Arc<Flight>,
            streamed: bool,
            // For a whole answer out of a streamed first call: the stream, folded.
            follow: Option<(Follow, StreamAccumulator, ProviderKind, String)>,
        },
        Ready {
            outcome: Option<Result<ChatResponse, BoxError>>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn passthrough(inner: F) -> Self {
        Self {
            state: State::Passthrough { inner },
        }
    }

    pub(crate) fn first(inner: F, leader: Leader) -> Self {
        Self {
            state: State::First {
                inner,
                leader: Some(leader),
            },
        }
    }

    pub(crate) fn boxed(future: Boxed) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }

    pub(crate) fn join(flight: Arc<Flight>, streamed: bool) -> Self {
        Self {
            state: State::Join {
                flight,
                streamed,
                follow: None,
            },
        }
    }

    pub(crate) fn replay(answer: &StoredAnswer, streamed: bool) -> Self {
        let outcome = answer
            .0
            .response(streamed, replayed().into())
            .ok_or_else(|| "the stored answer cannot be replayed".into());
        Self {
            state: State::Ready {
                outcome: Some(outcome),
            },
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            state: State::Ready {
                outcome: Some(Err(error)),
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The trail of a call another call answered.
fn replayed() -> Trail {
    let mut trail = Trail::default();
    trail.cache = Some(CacheStatus::Replayed);
    trail
}

fn polled_after_completion() -> BoxError {
    "the idempotency layer's response future was polled after it completed".into()
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatResponse, E>>,
    E: Into<BoxError>,
{
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Passthrough { inner } => return inner.poll(cx).map_err(Into::into),
                StateProj::Boxed { future } => return future.as_mut().poll(cx),
                StateProj::Ready { outcome } => {
                    return Poll::Ready(
                        outcome
                            .take()
                            .unwrap_or_else(|| Err(polled_after_completion())),
                    );
                }
                StateProj::First { inner, leader } => {
                    let result = ready!(inner.poll(cx)).map_err(Into::into);
                    let Some(leader) = leader.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    return Poll::Ready(match result {
                        Ok(response) => Ok(lead(response, leader)),
                        Err(error) => {
                            leader.failed(&*error);
                            Err(error)
                        }
                    });
                }
                StateProj::Join {
                    flight,
                    streamed,
                    follow,
                } => {
                    if let Some((stream, accumulator, provider, model)) = follow {
                        while let Some(event) = ready!(Pin::new(&mut *stream).poll_next(cx)) {
                            if let Err(error) = accumulator.push(&event) {
                                return Poll::Ready(Err(error.into()));
                            }
                        }
                        let id = accumulator.id().map(str::to_owned);
                        let accumulator = std::mem::replace(accumulator, StreamAccumulator::new());
                        let (message, finish, usage) = accumulator.finish()?;
                        let mut response =
                            ChatResponse::new(*provider, model.as_str(), message, finish);
                        if let Some(id) = id {
                            response.id = id;
                        }
                        response.usage = usage;
                        response.trail = replayed().into();
                        return Poll::Ready(Ok(response));
                    }
                    match flight.look(cx) {
                        Seen::Waiting => return Poll::Pending,
                        Seen::Failed(failure) => return Poll::Ready(Err(failure.error())),
                        Seen::Head(Head::Whole(answer)) => {
                            return Poll::Ready(
                                answer
                                    .0
                                    .response(*streamed, SharedTrail::default())
                                    .ok_or_else(|| {
                                        "the first call's answer cannot be replayed".into()
                                    }),
                            );
                        }
                        Seen::Head(Head::Stream { provider, model }) => {
                            let stream = Follow {
                                flight: Arc::clone(flight),
                                next: 0,
                            };
                            if *streamed {
                                let mut response = ChatResponse::streaming(
                                    provider,
                                    model.as_str(),
                                    EventStream::new(stream),
                                );
                                response.trail = replayed().into();
                                return Poll::Ready(Ok(response));
                            }
                            *follow = Some((stream, StreamAccumulator::new(), provider, model));
                        }
                    }
                }
            }
        }
    }
}

/// The first call's response: a whole answer is shared and kept now; a stream is shared
/// event by event as it is relayed, and kept once it reached its end of message.
fn lead(mut response: ChatResponse, leader: Leader) -> ChatResponse {
    let Some(inner) = response.stream.take() else {
        let answer = Answer::Whole {
            id: response.id.clone(),
            provider: response.provider,
            model: response.model.clone(),
            message: response.message.clone(),
            finish_reason: response.finish_reason.clone(),
            usage: response.usage,
        };
        leader
            .flight
            .set_head(Head::Whole(Arc::new(StoredAnswer(answer.clone()))));
        leader.finish(Some(answer));
        return response;
    };
    leader.flight.set_head(Head::Stream {
        provider: response.provider,
        model: response.model.clone(),
    });
    let recording = Recording::of(&response);
    response.stream = Some(EventStream::new(Tee {
        inner,
        recording,
        leader: Some(leader),
    }));
    response
}

/// The first call's stream, shared with the calls that joined it as it is relayed.
struct Tee {
    inner: EventStream,
    recording: Recording,
    leader: Option<Leader>,
}

impl Stream for Tee {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = &mut *self;
        let event = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &event {
            Some(event) => {
                this.recording.note(event);
                if let Some(leader) = &this.leader {
                    leader.flight.push(event.clone());
                }
            }
            None => {
                if let Some(leader) = this.leader.take() {
                    // Only a whole answer is replayed later; the joined calls saw every
                    // event either way.
                    leader.finish(this.recording.answer());
                }
            }
        }
        Poll::Ready(event)
    }
}
