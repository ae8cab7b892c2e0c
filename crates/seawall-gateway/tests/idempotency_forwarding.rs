//! `forward_idempotency_key`: the caller's `Idempotency-Key` reaches an OpenAI-compatible
//! target that opted in, and no target that did not.

mod support;
use support::{hello, send, start};

async fn call_with_key(addr: std::net::SocketAddr) -> u16 {
    let body = serde_json::to_vec(&hello(false)).unwrap();
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("idempotency-key", "order-42")],
        &body,
    )
    .await
    .status
}

#[tokio::test]
async fn the_idempotency_key_reaches_a_target_that_opted_in_and_no_other() {
    let (sim, gw) = start(|c| c.targets[0].forward_idempotency_key = true).await;
    assert_eq!(call_with_key(gw.local_addr()).await, 200);
    let sent = sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("idempotency-key"), Some("order-42"));
    gw.shutdown().await;

    let (sim, gw) = start(|_| {}).await;
    assert_eq!(call_with_key(gw.local_addr()).await, 200);
    let sent = sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("idempotency-key"), None, "off by default");
    gw.shutdown().await;
}

#[tokio::test]
async fn forwarding_the_key_to_a_provider_without_one_is_a_config_error() {
    let demo =
        seawall_gateway::Demo::start(|c| c.targets[1].forward_idempotency_key = true, |b| b).await;
    let Err(error) = demo else {
        panic!("a gateway forwarding the key to anthropic was built")
    };
    let error = error.to_string();
    assert!(error.contains("forward_idempotency_key"), "{error}");
}
