use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::fault::Fault;
use seawall_core::{BoxError, ChatResponse, ErrorKind, FinishReason, LlmError, ProviderKind};
use tokio::time::{Sleep, sleep};

use super::stream::{ChaosStream, StreamFault};

pin_project! {
    /// The response future of [`Chaos`](super::Chaos): the call as it is, or with its fault.
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
        Failed {
            error: Option<LlmError>,
        },
        Hang {
            #[pin]
            sleep: Option<Sleep>,
        },
        Delayed {
            #[pin]
            inner: F,
            #[pin]
            sleep: Sleep,
            response: Option<Result<ChatResponse, BoxError>>,
        },
        Shaped {
            #[pin]
            inner: F,
            fault: Option<Fault>,
            provider: ProviderKind,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn passthrough(inner: F) -> Self {
        Self {
            state: State::Passthrough { inner },
        }
    }

    pub(crate) fn failed(error: LlmError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }

    pub(crate) fn hang(for_: Option<Duration>) -> Self {
        Self {
            state: State::Hang {
                sleep: for_.map(sleep),
            },
        }
    }

    pub(crate) fn delayed(inner: F, delay: Duration) -> Self {
        Self {
            state: State::Delayed {
                inner,
                sleep: sleep(delay),
                response: None,
            },
        }
    }

    pub(crate) fn shaped(inner: F, fault: Fault, provider: ProviderKind) -> Self {
        Self {
            state: State::Shaped {
                inner,
                fault: Some(fault),
                provider,
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The error of a future polled again after it completed.
pub(super) fn polled_after_completion() -> BoxError {
    "the chaos layer's response future was polled after it completed".into()
}

/// A hang: silent for good (`None`: only a timeout or the caller ends the call), or until
/// `sleep` ends with a closed connection.
pub(super) fn poll_hang(sleep: Option<Pin<&mut Sleep>>, cx: &mut Context<'_>) -> Poll<BoxError> {
    match sleep {
        None => Poll::Pending,
        Some(sleep) => {
            ready!(sleep.poll(cx));
            Poll::Ready(
                LlmError::new(
                    ErrorKind::Connect,
                    "the connection closed without a response",
                )
                .into(),
            )
        }
    }
}

/// A response held until `sleep` ends: `inner`'s outcome, kept in `held` meanwhile.
pub(super) fn poll_delayed<F, T, E>(
    inner: Pin<&mut F>,
    sleep: Pin<&mut Sleep>,
    held: &mut Option<Result<T, BoxError>>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, BoxError>>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    if held.is_none()
        && let Poll::Ready(result) = inner.poll(cx)
    {
        *held = Some(result.map_err(Into::into));
    }
    ready!(sleep.poll(cx));
    match held.take() {
        Some(result) => Poll::Ready(result),
        None => Poll::Pending,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatResponse, E>>,
    E: Into<BoxError>,
{
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Passthrough { inner } => inner.poll(cx).map_err(Into::into),
            StateProj::Failed { error } => Poll::Ready(match error.take() {
                Some(error) => Err(error.into()),
                None => Err(polled_after_completion()),
            }),
            StateProj::Hang { sleep } => poll_hang(sleep.as_pin_mut(), cx).map(Err),
            StateProj::Delayed {
                inner,
                sleep,
                response,
            } => poll_delayed(inner, sleep, response, cx),
            StateProj::Shaped {
                inner,
                fault,
                provider,
            } => {
                let mut response = ready!(inner.poll(cx)).map_err(Into::into)?;
                let Some(fault) = fault.take() else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                Poll::Ready(shape(&mut response, fault, *provider).map(|()| response))
            }
        }
    }
}

/// Applies a fault that shapes a response that did arrive.
fn shape(
    response: &mut ChatResponse,
    fault: Fault,
    provider: ProviderKind,
) -> Result<(), BoxError> {
    if let Some(stream) = response.stream.take() {
        let fault = StreamFault::new(fault);
        let stream = ChaosStream::new(stream, fault, provider);
        response.stream = Some(seawall_core::EventStream::new(stream));
        return Ok(());
    }
    match fault {
        // Half a body, then the connection closes.
        Fault::CutAfter { .. } => Err(LlmError::new(
            ErrorKind::Connect,
            "the connection closed in the middle of the body",
        )
        .with_provider(provider)
        .into()),
        Fault::ContentFiltered => {
            response.finish_reason = Some(FinishReason::ContentFilter);
            Ok(())
        }
        // The other faults shape streams only.
        _ => Ok(()),
    }
}
