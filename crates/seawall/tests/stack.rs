//! The layers composed as recommended:
//! `Deadline → [Retry → Breaker → AttemptTimeout → target]`, and two such targets behind
//! the failover router with their breakers as gates.

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

/// Two targets, each `Retry → Breaker → AttemptTimeout → mock` built by `TargetStack`,
/// behind the failover router with each breaker as its target's gate.
fn routed() -> (
    seawall::failover::Failover,
    [mock::Handle<ChatRequest, ChatResponse>; 2],
    [BreakerHandle; 2],
) {
    use seawall::failover::Failover;
    use seawall::stack::TargetStack;

    let mut handles = Vec::new();
    let mut breakers = Vec::new();
    let mut targets = Vec::new();
    for (id, model) in [
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude", "claude-sonnet-4-5"),
    ] {
        let (service, handle) = mock::pair::<ChatRequest, ChatResponse>();
        let guarded = TargetStack::new(id)
            .retry(RetryLayer::new().max_attempts(5).backoff(Backoff::new(
                Duration::from_millis(100),
                Duration::from_millis(100),
            )))
            .breaker(
                BreakerLayer::builder(id)
                    .consecutive_failures(2)
                    .no_failure_ratio()
                    .break_duration(Duration::from_secs(5), Duration::from_secs(20))
                    .build(),
            )
            .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_secs(2)))
            .build(service);
        targets.push(guarded.target.model(model));
        handles.push(handle);
        breakers.push(guarded.breaker);
    }
    let failover = Failover::builder().targets(targets).build();
    let [a, b] = <[_; 2]>::try_from(handles).unwrap();
    let [x, y] = <[_; 2]>::try_from(breakers).unwrap();
    (failover, [a, b], [x, y])
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_shifts_traffic_and_a_probe_brings_it_back() {
    use seawall_core::AttemptOutcome;

    let (failover, [mut openai, mut anthropic], [openai_breaker, _]) = routed();

    // Two 500s trip OpenAI's breaker inside its retry loop; the call fails over to Anthropic.
    let call = tokio::spawn(failover.clone().oneshot(request()));
    for _ in 0..2 {
        let (_, reply) = openai.next_request().await.unwrap();
        reply.send_error(error(ErrorKind::Server, 500));
    }
    let (sent, reply) = anthropic.next_request().await.unwrap();
    assert_eq!(
        &*sent.model, "claude-sonnet-4-5",
        "the target's own model name"
    );
    reply.send_response(answer("Paris"));
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.text(), "Paris");
    assert_eq!(openai_breaker.state(), BreakerState::Open);

    // While the break lasts, OpenAI is skipped by its gate: no request reaches it.
    let call = tokio::spawn(failover.clone().oneshot(request()));
    let (_, reply) = anthropic.next_request().await.unwrap();
    reply.send_response(answer("Berlin"));
    let response = call.await.unwrap().unwrap();
    let first = &response.trail.attempts[0];
    assert_eq!(first.target.as_str(), "openai/gpt-4o");
    assert!(
        matches!(first.outcome, AttemptOutcome::Skipped { .. }),
        "{first:?}"
    );
    assert!(
        response
            .trail
            .breaker_states
            .contains(&("openai/gpt-4o".into(), BreakerState::Open))
    );

    // After the break a half-open probe goes to OpenAI; it succeeds and closes the breaker.
    tokio::time::advance(Duration::from_secs(5)).await;
    let call = tokio::spawn(failover.clone().oneshot(request()));
    let (_, reply) = openai.next_request().await.unwrap();
    reply.send_response(answer("Rome"));
    assert_eq!(call.await.unwrap().unwrap().text(), "Rome");
    assert_eq!(openai_breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_runs_out_returns_one_error_with_the_attempt_trail() {
    use seawall::timeout::DeadlineLayer;
    use seawall_core::{AttemptOutcome, DeadlineExceeded, ErrorWithTrail};
    use tower::Layer;

    let (failover, [mut openai, mut anthropic], _) = routed();
    let service = DeadlineLayer::new(Duration::from_secs(1)).layer(failover);
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(request()));
    // OpenAI asks for a wait longer than the wait-or-fail-over threshold: the call moves on
    // to Anthropic at once, which never answers.
    let (_, reply) = openai.next_request().await.unwrap();
    reply.send_error(error(ErrorKind::RateLimited, 429).with_retry_after(Duration::from_secs(30)));
    let (_, _silent) = anthropic.next_request().await.unwrap();

    let error = call.await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let with_trail = ErrorWithTrail::find(error.as_ref()).expect("the error carries the trail");
    assert!(with_trail.downcast_inner::<DeadlineExceeded>().is_some());
    assert_eq!(classify(error.as_ref()).disposition, Disposition::Fatal);
    let first = &with_trail.trail().attempts[0];
    assert_eq!(first.target.as_str(), "openai/gpt-4o");
    assert!(
        matches!(first.outcome, AttemptOutcome::Failed { .. }),
        "{first:?}"
    );
}
