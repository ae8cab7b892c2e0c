//! One classifier per stack: given once, to the router or to a target stack, it decides
//! for every layer inside (the retry layer, the breaker and the router), and users
//! classify their own error types with it.

mod support;

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall::breaker::BreakerLayer;
use seawall::failover::Failover;
use seawall::retry::{Backoff, RetryLayer};
use seawall::stack::{Guarded, TargetStack};
use seawall_core::{
    BoxError, BreakerState, BuiltinClassifier, Cause, ChatRequest, ChatResponse, Classification,
    Classifier, Classify, Disposition,
};
use support::{reply, request};
use tower::{ServiceExt, service_fn};

/// An error of the user's own, which the built-in table does not know.
#[derive(Debug)]
struct QueueFull;

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the upstream queue is full")
    }
}

impl Error for QueueFull {}

/// Retries [`QueueFull`] on the same target and counts it against the target's health;
/// everything else goes to the built-in table.
struct QueueAware;

impl Classify for QueueAware {
    fn recognise(&self, error: &(dyn Error + 'static)) -> Option<Classification> {
        if error.is::<QueueFull>() {
            return Some(
                Classification::new(Disposition::Retry, Cause::Custom("queue_full")).unhealthy(),
            );
        }
        BuiltinClassifier::default().recognise(error)
    }
}

/// A target whose service always fails with [`QueueFull`], counting its calls.
fn full_target(calls: &Arc<AtomicU32>, stack: TargetStack) -> Guarded {
    let calls = Arc::clone(calls);
    stack.build(service_fn(move |_request: ChatRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<ChatResponse, BoxError>(Box::new(QueueFull)) }
    }))
}

fn answering_target() -> Guarded {
    TargetStack::new("b").build(service_fn(|_request: ChatRequest| async {
        Ok::<_, BoxError>(reply("model-b", "Paris"))
    }))
}

fn stack(id: &str) -> TargetStack {
    TargetStack::new(id)
        .retry(RetryLayer::new().max_attempts(3).backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
        )))
        .breaker(
            BreakerLayer::builder(id)
                .consecutive_failures(3)
                .no_failure_ratio()
                .build(),
        )
}

#[tokio::test(start_paused = true)]
async fn a_classifier_given_to_the_router_decides_in_every_target_layer() {
    let calls = Arc::new(AtomicU32::new(0));
    let full = full_target(&calls, stack("a"));
    let breaker = full.breaker.clone();
    let router = Failover::builder()
        .classifier(Classifier::new(QueueAware))
        .target(full.target)
        .target(answering_target().target)
        .build();

    let response = router.oneshot(request()).await.unwrap();

    assert_eq!(response.text(), "Paris");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the retry layer retried by the router's classifier"
    );
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "the breaker counted each as a health failure"
    );
    let attempts = &response.trail.attempts;
    assert_eq!(attempts.len(), 2);
    assert!(
        matches!(&attempts[0].outcome, seawall_core::AttemptOutcome::Failed { cause, .. } if cause.as_str() == "queue_full"),
        "the router classified it too: {:?}",
        attempts[0].outcome
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_classifier_an_unknown_error_is_fatal_everywhere() {
    let calls = Arc::new(AtomicU32::new(0));
    let full = full_target(&calls, stack("a"));
    let breaker = full.breaker.clone();
    let router = Failover::builder()
        .target(full.target)
        .target(answering_target().target)
        .build();

    let error = router.oneshot(request()).await.unwrap_err();

    assert!(seawall_core::ErrorWithTrail::find(&*error).is_some());
    assert!(
        seawall_core::find_error::<QueueFull>(&*error).is_some(),
        "the caller gets the error itself"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "not a health failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_target_stack_used_alone_hands_its_classifier_to_its_layers() {
    let calls = Arc::new(AtomicU32::new(0));
    let full = full_target(&calls, stack("a").classifier(Classifier::new(QueueAware)));

    // A router without a classifier of its own: the stack's decides inside the target.
    let router = Failover::builder().target(full.target).build();

    router.oneshot(request()).await.unwrap_err();

    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(full.breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_layer_given_its_own_classifier_keeps_it_inside_a_router() {
    let calls = Arc::new(AtomicU32::new(0));
    let own = stack("a").retry(
        RetryLayer::new()
            .max_attempts(3)
            .backoff(Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(10),
            ))
            .classifier(Classifier::default()),
    );
    let full = full_target(&calls, own);
    let router = Failover::builder()
        .classifier(Classifier::new(QueueAware))
        .target(full.target)
        .target(answering_target().target)
        .build();

    let response = router.oneshot(request()).await.unwrap();

    assert_eq!(response.text(), "Paris", "the router still fails over");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the retry layer decided with its own table"
    );
}
