//! The tower contract every layer keeps: `call` drives the instance that was polled ready,
//! a clone does not inherit readiness, and layers, services and futures are
//! `Send + Sync + 'static` (futures `Send`).

mod support;

use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall::breaker::BreakerLayer;
use seawall::retry::RetryLayer;
use seawall::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use seawall_core::{BoxError, ChatRequest, ChatResponse};
use support::{answer, request};
use tower::{Layer, Service, ServiceExt};

/// Tracks readiness per instance, like `ConcurrencyLimit` or `Buffer`: a clone is not
/// ready, and a call on an instance that was not polled ready fails.
#[derive(Debug)]
struct ReadyTracked {
    ready: bool,
}

impl ReadyTracked {
    fn new() -> Self {
        Self { ready: false }
    }
}

impl Clone for ReadyTracked {
    fn clone(&self) -> Self {
        Self { ready: false }
    }
}

impl Service<ChatRequest> for ReadyTracked {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = Ready<Result<ChatResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ChatRequest) -> Self::Future {
        if !std::mem::take(&mut self.ready) {
            return ready(Err("called an instance that was not polled ready".into()));
        }
        ready(Ok(answer("ok")))
    }
}

async fn drives_the_readied_instance<L>(layer: L)
where
    L: Layer<ReadyTracked>,
    L::Service: Service<ChatRequest, Response = ChatResponse, Error = BoxError>,
{
    let mut service = layer.layer(ReadyTracked::new());
    for _ in 0..3 {
        let ready = service.ready().await.unwrap();
        let response = ready
            .call(request())
            .await
            .expect("the readied instance answers");
        assert_eq!(response.text(), "ok");
    }
}

async fn clone_resets_readiness<L>(layer: L)
where
    L: Layer<ReadyTracked>,
    L::Service: Service<ChatRequest, Response = ChatResponse, Error = BoxError> + Clone,
{
    let mut service = layer.layer(ReadyTracked::new());
    service.ready().await.unwrap();
    let mut clone = service.clone();
    let error = clone.call(request()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "called an instance that was not polled ready"
    );
    service
        .call(request())
        .await
        .expect("the original stays ready");
}

fn deadline() -> DeadlineLayer {
    DeadlineLayer::new(Duration::from_secs(30))
}

fn attempt_timeout() -> AttemptTimeoutLayer {
    AttemptTimeoutLayer::new(Duration::from_secs(10))
        .first_token(Duration::from_secs(2))
        .idle(Duration::from_secs(5))
}

fn retry() -> RetryLayer {
    RetryLayer::new()
}

fn breaker() -> BreakerLayer {
    BreakerLayer::new("openai/gpt-4o")
}

#[tokio::test(start_paused = true)]
async fn deadline_drives_the_readied_instance() {
    drives_the_readied_instance(deadline()).await;
    clone_resets_readiness(deadline()).await;
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_drives_the_readied_instance() {
    drives_the_readied_instance(attempt_timeout()).await;
    clone_resets_readiness(attempt_timeout()).await;
}

#[tokio::test(start_paused = true)]
async fn retry_drives_the_readied_instance() {
    drives_the_readied_instance(retry()).await;
    clone_resets_readiness(retry()).await;
}

#[tokio::test(start_paused = true)]
async fn breaker_drives_the_readied_instance() {
    drives_the_readied_instance(breaker()).await;
    clone_resets_readiness(breaker()).await;
}

#[tokio::test(start_paused = true)]
async fn a_retry_polls_the_inner_service_ready_again() {
    // The retry's second attempt goes to the same instance, which must be polled ready
    // again (a 500 then a success).
    #[derive(Debug)]
    struct FailOnce {
        ready: bool,
        calls: u32,
    }
    impl Clone for FailOnce {
        fn clone(&self) -> Self {
            Self {
                ready: false,
                calls: self.calls,
            }
        }
    }
    impl Service<ChatRequest> for FailOnce {
        type Response = ChatResponse;
        type Error = BoxError;
        type Future = Ready<Result<ChatResponse, BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: ChatRequest) -> Self::Future {
            assert!(std::mem::take(&mut self.ready), "not polled ready");
            self.calls += 1;
            if self.calls == 1 {
                let failure = seawall_core::LlmError::new(seawall_core::ErrorKind::Server, "boom")
                    .with_status(500);
                return ready(Err(failure.into()));
            }
            ready(Ok(answer("ok")))
        }
    }
    let service = RetryLayer::new().layer(FailOnce {
        ready: false,
        calls: 0,
    });
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "ok");
}

fn send_sync_static<T: Send + Sync + 'static>() {}
fn send<T: Send>() {}

#[test]
fn layers_services_and_futures_are_send_sync_static() {
    type Inner = ReadyTracked;
    send_sync_static::<DeadlineLayer>();
    send_sync_static::<AttemptTimeoutLayer>();
    send_sync_static::<RetryLayer>();
    send_sync_static::<BreakerLayer>();
    send_sync_static::<seawall::breaker::BreakerHandle>();
    send_sync_static::<seawall::timeout::EnforceDeadline<Inner>>();
    send_sync_static::<seawall::timeout::AttemptTimeout<Inner>>();
    send_sync_static::<seawall::retry::Retry<Inner>>();
    send_sync_static::<seawall::breaker::Breaker<Inner>>();
    type InnerFuture = <Inner as Service<ChatRequest>>::Future;
    send::<seawall::timeout::future::DeadlineFuture<InnerFuture>>();
    send::<seawall::timeout::future::AttemptTimeoutFuture<InnerFuture>>();
    send::<seawall::retry::future::ResponseFuture<Inner, ChatRequest>>();
    send::<seawall::breaker::future::ResponseFuture<InnerFuture>>();
}
