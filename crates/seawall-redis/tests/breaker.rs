//! Breakers of one target in two replicas, shared through Redis: an open, a close and a
//! cooldown on one hold on the other, and the half-open probe is counted over both.

use std::time::Duration;

use seawall::breaker::{BreakerLayer, OpenReason};
use seawall_core::{
    AssistantMessage, BoxError, BreakerState, ChatRequest, ChatResponse, ErrorKind, FinishReason,
    LlmError, Message, ProviderKind,
};
use seawall_redis::testing::RedisServer;
use seawall_redis::{RedisConfig, RedisState};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const BREAK: Duration = Duration::from_millis(400);

fn replica(server: &RedisServer) -> BreakerLayer {
    let state = RedisState::new(
        RedisConfig::new(server.url())
            .prefix("test:")
            .timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let breaker = BreakerLayer::builder("openai/gpt-4o")
        .consecutive_failures(2)
        .no_failure_ratio()
        .break_duration(BREAK, BREAK * 4)
        .half_open_probes(1)
        .default_cooldown(Duration::from_secs(30))
        .build();
    state.share_breaker(&breaker.handle(), 1);
    breaker
}

/// One call through `layer`: "S" answers, "F" is a 500, "R" a 429.
async fn call(layer: &BreakerLayer, step: &'static str) -> Result<ChatResponse, BoxError> {
    let service = layer.layer(service_fn(move |_request: ChatRequest| async move {
        match step {
            "S" => Ok(ChatResponse::new(
                ProviderKind::OpenAi,
                "gpt-4o",
                AssistantMessage::text("ok"),
                FinishReason::Stop,
            )),
            "F" => Err(BoxError::from(
                LlmError::new(ErrorKind::Server, "status 500").with_status(500),
            )),
            _ => Err(LlmError::new(ErrorKind::RateLimited, "status 429")
                .with_status(429)
                .into()),
        }
    }));
    service
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]))
        .await
}

/// Waits (up to 2 s) until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..400 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_on_one_replica_holds_on_the_other_and_one_probe_closes_both() {
    let server = RedisServer::start().unwrap();
    let (a, b) = (replica(&server), replica(&server));
    // Let both subscribe.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(call(&a, "F").await.is_err());
    assert!(call(&a, "F").await.is_err());
    assert_eq!(a.handle().state(), BreakerState::Open);
    eventually("B opens", || b.handle().state() == BreakerState::Open).await;
    let open = b.handle().check(Instant::now()).unwrap_err();
    assert_eq!(open.reason, OpenReason::Unhealthy);
    assert!(open.retry_in <= BREAK);

    tokio::time::sleep(BREAK).await;
    // B takes the one probe slot; A, asking after, gets none while B probes.
    let slow = b.layer(service_fn(|_request: ChatRequest| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, BoxError>(ChatResponse::new(
            ProviderKind::OpenAi,
            "gpt-4o",
            AssistantMessage::text("ok"),
            FinishReason::Stop,
        ))
    }));
    let mut b_probe = None;
    for _ in 0..400 {
        // The first call after the break asks Redis for the slot and is refused; the
        // call after the answer probes.
        let attempt = tokio::spawn(
            slow.clone()
                .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")])),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        if b.handle().state() == BreakerState::HalfOpen {
            b_probe = Some(attempt);
            break;
        }
        let _ = attempt.await;
    }
    let b_probe = b_probe.expect("B never probed");
    for _ in 0..10 {
        let refused = call(&a, "S").await.unwrap_err();
        assert!(
            refused.is::<seawall_core::CircuitOpen>(),
            "A probed too: {refused}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(b_probe.await.unwrap().is_ok());
    assert_eq!(b.handle().state(), BreakerState::Closed);
    eventually("A closes", || a.handle().state() == BreakerState::Closed).await;
    assert!(call(&a, "S").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_parks_the_target_everywhere_and_a_late_replica_reads_it() {
    let server = RedisServer::start().unwrap();
    let (a, b) = (replica(&server), replica(&server));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(call(&a, "R").await.is_err());
    eventually("B parks", || b.handle().check(Instant::now()).is_err()).await;
    let parked = b.handle().check(Instant::now()).unwrap_err();
    assert_eq!(parked.reason, OpenReason::OutOfCapacity);
    assert!(
        parked.retry_in > Duration::from_secs(29),
        "{:?}",
        parked.retry_in
    );

    // A replica that starts now learns of the cooldown from Redis.
    let late = replica(&server);
    eventually("the late replica parks", || {
        late.handle().check(Instant::now()).is_err()
    })
    .await;
}
