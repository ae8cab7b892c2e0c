//! The response future of the retry layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{BoxError, LlmRequest, LlmResponse};
use tokio::time::{Sleep, sleep};
use tower_service::Service;

use super::policy::{RetryConfig, log_give_up};

pin_project! {
    /// The response future of [`Retry`](super::Retry): the current attempt, the wait before
    /// the next one, or the wait for the inner service's readiness.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        request: Req,
        config: Arc<RetryConfig>,
        attempts: u32,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Waiting { #[pin] sleep: Sleep },
        Readying,
    }
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        service: S,
        request: Req,
        config: Arc<RetryConfig>,
    ) -> Self {
        Self {
            state: State::Calling { future },
            service,
            request,
            config,
            attempts: 1,
        }
    }
}

impl<S, Req> fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: LlmResponse,
    Req: LlmRequest + Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    let verdict = match &result {
                        Err(error) => this.config.classify(error.as_ref(), &*this.request),
                        Ok(response) => match response.failure() {
                            None => return Poll::Ready(result),
                            Some(failure) => this.config.classify(&failure, &*this.request),
                        },
                    };
                    match this.config.decide(&verdict, *this.attempts, &*this.request) {
                        Ok(wait) => {
                            tracing::debug!(
                                target: "seawall::retry",
                                attempts = *this.attempts,
                                cause = verdict.cause.as_str(),
                                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                                "retrying the same target"
                            );
                            this.state.set(State::Waiting { sleep: sleep(wait) });
                        }
                        Err(reason) => {
                            log_give_up(reason, &verdict, *this.attempts);
                            return Poll::Ready(result);
                        }
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    ready!(this.service.poll_ready(cx)).map_err(Into::into)?;
                    let mut request = this.request.clone();
                    request.context_mut().attempt += *this.attempts;
                    *this.attempts += 1;
                    let future = this.service.call(request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}
