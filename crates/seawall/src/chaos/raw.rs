//! The chaos layer on raw HTTP: `http::Request` → `http::Response`, with the fault played
//! on the wire as the provider would (its error body and retry headers, its in-band error
//! frame, a cut or stalled event stream).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use pin_project_lite::pin_project;
use seawall_core::fault::Fault;
use seawall_core::{BoxError, LlmError, ProviderKind};
use tokio::time::{Sleep, sleep};
use tower_service::Service;

use super::body::ChaosBody;
use super::future::{poll_delayed, poll_hang, polled_after_completion};
use super::service::Chaos;
use super::stream::StreamFault;
use super::wire;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Chaos<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<ChaosBody<ResBody>>;
    type Error = BoxError;
    type Future = RawResponseFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let provider = self.provider();
        let Some(fault) = self.next_fault() else {
            return RawResponseFuture::new(RawState::Passthrough {
                inner: self.get_mut().call(request),
            });
        };
        if let Some(error) = fault.error(provider) {
            if matches!(fault, Fault::Disconnect) {
                return RawResponseFuture::new(RawState::Failed { error: Some(error) });
            }
            let response = wire::error_response(&fault, &error, provider);
            return RawResponseFuture::new(RawState::Injected {
                response: Some(response),
            });
        }
        let state = match fault {
            Fault::Hang { ms } => RawState::Hang {
                sleep: ms.map(|ms| sleep(Duration::from_millis(ms))),
            },
            Fault::SlowFirstByte { ms } => RawState::Delayed {
                inner: self.get_mut().call(request),
                sleep: sleep(Duration::from_millis(ms)),
                response: None,
            },
            shaping => RawState::Shaped {
                inner: self.get_mut().call(request),
                fault: StreamFault::new(shaping),
                provider,
            },
        };
        RawResponseFuture::new(state)
    }
}

pin_project! {
    /// The response future of [`Chaos`] on raw HTTP.
    pub struct RawResponseFuture<F, B> {
        #[pin]
        state: RawState<F, B>,
    }
}

pin_project! {
    #[project = RawStateProj]
    enum RawState<F, B> {
        Passthrough {
            #[pin]
            inner: F,
        },
        Injected {
            response: Option<http::Response<Bytes>>,
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
            response: Option<Result<http::Response<B>, BoxError>>,
        },
        Shaped {
            #[pin]
            inner: F,
            fault: StreamFault,
            provider: ProviderKind,
        },
    }
}

impl<F, B> RawResponseFuture<F, B> {
    fn new(state: RawState<F, B>) -> Self {
        Self { state }
    }
}

impl<F, B> fmt::Debug for RawResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E, B> Future for RawResponseFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<http::Response<ChaosBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RawStateProj::Passthrough { inner } => {
                let response = ready!(inner.poll(cx)).map_err(Into::into)?;
                Poll::Ready(Ok(response.map(ChaosBody::passthrough)))
            }
            RawStateProj::Injected { response } => Poll::Ready(match response.take() {
                Some(response) => Ok(response.map(ChaosBody::injected)),
                None => Err(polled_after_completion()),
            }),
            RawStateProj::Failed { error } => Poll::Ready(match error.take() {
                Some(error) => Err(error.into()),
                None => Err(polled_after_completion()),
            }),
            RawStateProj::Hang { sleep } => poll_hang(sleep.as_pin_mut(), cx).map(Err),
            RawStateProj::Delayed {
                inner,
                sleep,
                response,
            } => poll_delayed(inner, sleep, response, cx)
                .map(|result| result.map(|r| r.map(ChaosBody::passthrough))),
            RawStateProj::Shaped {
                inner,
                fault,
                provider,
            } => {
                let response = ready!(inner.poll(cx)).map_err(Into::into)?;
                let sse = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream"));
                let (fault, provider) = (*fault, *provider);
                Poll::Ready(Ok(
                    response.map(|body| ChaosBody::shaped(body, fault, provider, sse))
                ))
            }
        }
    }
}
