//! The layers composed as recommended:
//! `Deadline → [Retry → Breaker → AttemptTimeout → target]`.

mod support;

use std::time::Duration;

use seawall::ServiceBuilderExt;
use seawall::breaker::{BreakerHandle, BreakerLayer, OpenReason};
use seawall::retry::{Backoff, RetryLayer};
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::{
    BoxError, BreakerState, ChatRequest, ChatResponse, CircuitOpen, Disposition, ErrorKind,
    TimedOut, classify,
};
use support::{answer, error, request};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneSyncService};
use tower_test::mock;

type Stack = BoxCloneSyncService<ChatRequest, ChatResponse, BoxError>;

fn stack() -> (
    Stack,
    mock::Handle<ChatRequest, ChatResponse>,
    BreakerHandle,
) {
    let (target, handle) = mock::pair::<ChatRequest, ChatResponse>();
    let breaker = BreakerLayer::builder("openai/gpt-4o")
        .consecutive_failures(3)
        .no_failure_ratio()
        .build();
    let breaker_handle = breaker.handle();
    let service = ServiceBuilder::new()
        .deadline(Duration::from_secs(20))
        .retry_target(RetryLayer::new().max_attempts(10).backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(400),
        )))
        .breaker(breaker)
        .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_secs(2)))
        .service(target);
    (BoxCloneSyncService::new(service), handle, breaker_handle)
}

#[tokio::test(start_paused = true)]
async fn each_attempt_counts_once_and_an_open_breaker_ends_the_retries() {
    let (service, mut target, breaker) = stack();
    let call = tokio::spawn(service.oneshot(request()));
    for _ in 0..3 {
        let (_, reply) = target.next_request().await.unwrap();
        reply.send_error(error(ErrorKind::Server, 500));
    }
    let error = call.await.unwrap().unwrap_err();
    // Three 500s trip the breaker at exactly its threshold; the fourth attempt is rejected
    // without being sent and the retry layer hands the rejection to failover at once.
    let open = error
        .downcast_ref::<CircuitOpen>()
        .expect("rejected by the breaker");
    assert_eq!(open.reason, OpenReason::Unhealthy);
    assert_eq!(classify(error.as_ref()).disposition, Disposition::Failover);
    assert_eq!(breaker.state(), BreakerState::Open);
    assert!(target.next_request().await.is_none(), "three attempts sent");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_not_retried_and_counts_against_the_target() {
    let (service, mut target, _breaker) = stack();
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(request()));
    let (_, _silent) = target.next_request().await.unwrap();
    let error = call.await.unwrap().unwrap_err();
    assert!(error.is::<TimedOut>());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(classify(error.as_ref()).health_failure);
}

#[tokio::test(start_paused = true)]
async fn a_429_is_waited_out_then_answered() {
    let (service, mut target, breaker) = stack();
    let call = tokio::spawn(service.oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    let at = Instant::now();
    reply.send_error(error(ErrorKind::RateLimited, 429).with_retry_after(Duration::from_secs(1)));
    let (_, reply) = target.next_request().await.unwrap();
    // The cooldown the 429 started ends exactly when the retry goes out.
    assert_eq!(at.elapsed(), Duration::from_secs(1));
    reply.send_response(answer("Paris"));
    assert_eq!(call.await.unwrap().unwrap().text(), "Paris");
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_429_without_a_wait_is_retried_after_a_backoff_not_parked() {
    let (service, mut target, breaker) = stack();
    let call = tokio::spawn(service.oneshot(request()));
    let (_, reply) = target.next_request().await.unwrap();
    let at = Instant::now();
    reply.send_error(error(ErrorKind::RateLimited, 429));
    assert!(
        breaker.check(Instant::now()).is_ok(),
        "no wait given: not parked"
    );
    let (_, reply) = target.next_request().await.unwrap();
    assert!(
        at.elapsed() <= Duration::from_millis(100),
        "the first backoff ceiling"
    );
    reply.send_response(answer("Paris"));
    assert_eq!(call.await.unwrap().unwrap().text(), "Paris");
}
