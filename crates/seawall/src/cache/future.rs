use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{
    BoxError, CacheStatus, Cause, ChatResponse, Classifier, ErrorKind, ErrorWithTrail,
};

use super::key::CacheKey;
use super::store::Shared;
use crate::answer::{Answered, StoredAnswer, keep_answer};

/// A call whose store answers after a round trip: looked up, then sent if missed.
pub(crate) type Boxed = Pin<Box<dyn Future<Output = Result<ChatResponse, BoxError>> + Send>>;

/// What a missed call needs for a stale answer: its key, whether it streams, and the
/// stack's classifier (to tell a provider's failure from the caller's).
pub(crate) type StaleKey = (CacheKey, bool, Option<Classifier>);

pin_project! {
    /// The response future of [`Cache`](super::Cache): a stored answer, or the call.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Hit {
            response: Option<ChatResponse>,
        },
        Boxed {
            future: Boxed,
        },
        Miss {
            #[pin]
            inner: F,
            store: Arc<Shared>,
            // The key to store the answer under (none with `no-store`).
            store_key: Option<CacheKey>,
            stale: Option<StaleKey>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn hit(response: ChatResponse) -> Self {
        Self {
            state: State::Hit {
                response: Some(response),
            },
        }
    }

    pub(crate) fn boxed(future: Boxed) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }

    pub(crate) fn miss(
        inner: F,
        stale: Option<StaleKey>,
        store: &Arc<Shared>,
        store_key: Option<CacheKey>,
    ) -> Self {
        Self {
            state: State::Miss {
                inner,
                store: Arc::clone(store),
                store_key,
                stale,
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Whether a failure is the caller's own, which no stored answer may hide.
fn callers_fault(
    error: &(dyn std::error::Error + 'static),
    classifier: Option<&Classifier>,
) -> bool {
    let verdict = crate::classifier::classify(None, classifier, error);
    matches!(
        verdict.cause,
        Cause::InvalidRequest
            | Cause::Provider(
                ErrorKind::InvalidRequest
                    | ErrorKind::ContextLengthExceeded
                    | ErrorKind::RequestTooLarge
                    | ErrorKind::ContentFiltered
            )
    )
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatResponse, E>>,
    E: Into<BoxError>,
{
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            StateProj::Boxed { future } => future.as_mut().poll(cx),
            StateProj::Hit { response } => {
                Poll::Ready(response.take().ok_or_else(|| {
                    "the cache's response future was polled after it completed".into()
                }))
            }
            StateProj::Miss {
                inner,
                store,
                store_key,
                stale,
            } => match ready!(inner.poll(cx)).map_err(Into::into) {
                Ok(mut response) => {
                    // A layer below may have answered from its own store (the semantic cache).
                    response.trail.cache.get_or_insert(CacheStatus::Miss);
                    if let Some(key) = store_key.take() {
                        keep(store, key, &mut response);
                    }
                    Poll::Ready(Ok(response))
                }
                Err(error) => {
                    let Some((key, streamed, classifier)) = stale.take() else {
                        return Poll::Ready(Err(error));
                    };
                    let Some(stale_for) = store.stale_if_error else {
                        return Poll::Ready(Err(error));
                    };
                    if callers_fault(&*error, classifier.as_ref()) {
                        return Poll::Ready(Err(error));
                    }
                    let older = store.ttl.saturating_add(stale_for);
                    match store.store.get(&key, older) {
                        Answered::Now(found) => {
                            Poll::Ready(stale_answer(store, found, streamed, error))
                        }
                        Answered::Later(lookup) => {
                            let store = Arc::clone(store);
                            let mut future: Boxed = Box::pin(async move {
                                stale_answer(&store, lookup.await, streamed, error)
                            });
                            let poll = future.as_mut().poll(cx);
                            if poll.is_pending() {
                                state.set(State::Boxed { future });
                            }
                            poll
                        }
                    }
                }
            },
        }
    }
}

/// A failed call answered with an expired answer, if one was found; its error otherwise.
fn stale_answer(
    store: &Shared,
    found: super::store::Lookup,
    streamed: bool,
    error: BoxError,
) -> Result<ChatResponse, BoxError> {
    let Ok(Some(answer)) = found else {
        return Err(error);
    };
    let mut trail = ErrorWithTrail::find(&*error)
        .map(|e| e.trail().clone())
        .unwrap_or_default();
    trail.cache = Some(CacheStatus::Stale);
    match answer.0.response(streamed, trail.into()) {
        Some(response) => {
            store.count_stale();
            Ok(response)
        }
        None => Err(error),
    }
}

/// Stores an answer that arrived: a whole one now, a streamed one once its stream ends with
/// its end of message. Refusals and cut answers are not stored.
fn keep(store: &Arc<Shared>, key: CacheKey, response: &mut ChatResponse) {
    let store = Arc::clone(store);
    keep_answer(response, move |answer| {
        store.insert(&key, StoredAnswer(answer));
    });
}
