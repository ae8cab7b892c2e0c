use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::{BoxError, CacheStatus, ChatRequest, ChatResponse, Embeddings};
use tokio::time::Sleep;
use tower_service::Service;

use super::index::{Index, unit};
use crate::answer::keep_answer;

/// A call waiting for its prompt's embedding: the readied inner service and the request.
pub(crate) struct Pending<S> {
    pub(crate) inner: S,
    pub(crate) request: ChatRequest,
    /// Whether to look up (not under `no-cache`).
    pub(crate) lookup: bool,
    /// Whether to store the answer (not under `no-store`).
    pub(crate) store: bool,
    pub(crate) partition: Arc<[u8]>,
    pub(crate) index: Arc<Index>,
}

/// Where an answer from upstream is to be stored.
pub(crate) struct Store {
    pub(crate) index: Arc<Index>,
    pub(crate) partition: Arc<[u8]>,
    pub(crate) vector: Vec<f32>,
}

pin_project! {
    /// The response future of [`SemanticCache`](super::SemanticCache): the embedding, then
    /// a stored answer or the call upstream.
    pub struct ResponseFuture<S, EF>
    where
        S: Service<ChatRequest>,
    {
        #[pin]
        state: State<S, S::Future, EF>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, EF> {
        Embedding {
            #[pin]
            embed: EF,
            #[pin]
            timer: Sleep,
            pending: Option<Pending<S>>,
        },
        Calling {
            #[pin]
            inner: F,
            store: Option<Store>,
            looked_up: bool,
        },
    }
}

impl<S, EF> ResponseFuture<S, EF>
where
    S: Service<ChatRequest>,
{
    pub(crate) fn passthrough(inner: S::Future) -> Self {
        Self {
            state: State::Calling {
                inner,
                store: None,
                looked_up: false,
            },
        }
    }

    pub(crate) fn embedding(embed: EF, timeout: Duration, pending: Pending<S>) -> Self {
        Self {
            state: State::Embedding {
                embed,
                timer: tokio::time::sleep(timeout),
                pending: Some(pending),
            },
        }
    }
}

impl<S, EF> fmt::Debug for ResponseFuture<S, EF>
where
    S: Service<ChatRequest>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Embedding { .. } => "embedding",
            State::Calling { .. } => "calling",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, EF> Future for ResponseFuture<S, EF>
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: Into<BoxError>,
    EF: Future<Output = Result<Embeddings, BoxError>>,
{
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Embedding {
                    embed,
                    timer,
                    pending,
                } => {
                    let vector = match embed.poll(cx) {
                        Poll::Ready(Ok(embeddings)) => {
                            embeddings.vectors.into_iter().next().and_then(unit)
                        }
                        Poll::Ready(Err(error)) => {
                            tracing::debug!(%error, "semantic cache: the embedding failed; the call goes upstream");
                            None
                        }
                        Poll::Pending => {
                            ready!(timer.poll(cx));
                            tracing::debug!(
                                "semantic cache: the embedding timed out; the call goes upstream"
                            );
                            None
                        }
                    };
                    let Some(Pending {
                        mut inner,
                        mut request,
                        lookup,
                        store,
                        partition,
                        index,
                    }) = pending.take()
                    else {
                        return Poll::Ready(Err(
                            "the semantic cache's future was polled after it completed".into(),
                        ));
                    };
                    let Some(vector) = vector else {
                        index.count_embed_failure();
                        let inner = inner.call(request);
                        this.state.set(State::Calling {
                            inner,
                            store: None,
                            looked_up: true,
                        });
                        continue;
                    };
                    if lookup && let Some(found) = index.find(&partition, &vector) {
                        let recorder = request.context.trail().clone();
                        recorder.update(|trail| trail.cache = Some(CacheStatus::Hit));
                        if let Some(response) =
                            found.answer.response(request.stream, recorder.shared())
                        {
                            index.count_hit();
                            tracing::debug!(similarity = found.similarity, "semantic cache hit");
                            return Poll::Ready(Ok(response));
                        }
                    }
                    index.count_miss();
                    let store = store.then_some(Store {
                        index,
                        partition,
                        vector,
                    });
                    let inner = inner.call(request);
                    this.state.set(State::Calling {
                        inner,
                        store,
                        looked_up: true,
                    });
                }
                StateProj::Calling {
                    inner,
                    store,
                    looked_up,
                } => {
                    let mut response = ready!(inner.poll(cx)).map_err(Into::into)?;
                    if *looked_up {
                        response.trail.cache = Some(CacheStatus::Miss);
                    }
                    if let Some(store) = store.take() {
                        keep(store, &mut response);
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// Stores an answer that arrived: a whole one now, a streamed one once its stream ends with
/// its end of message. Refusals and cut answers are not stored.
fn keep(store: Store, response: &mut ChatResponse) {
    keep_answer(response, move |answer| {
        store.index.insert(store.partition, store.vector, answer);
    });
}
