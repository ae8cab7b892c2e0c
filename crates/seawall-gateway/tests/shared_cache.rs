//! Two gateway replicas with `[cache]` and `[idempotency]` on one Redis (`[state]`): an
//! answer one replica got upstream is a hit on the other, and an idempotent call finished
//! on one is replayed on the other; neither sends the second call upstream.

use std::time::Duration;

use seawall_gateway::Config;
use seawall_redis::testing::RedisServer;
use serde_json::json;

mod support;
use support::{Reply, send};

/// The demo gateway with a 10-minute cache and idempotency keys, its state in the Redis at
/// `url`.
fn replica(config: &mut Config, url: &str) {
    config.state = Some(
        serde_json::from_value(json!({
            "redis_url": url,
            "timeout": "500ms",
            "key_prefix": "gw-cache:",
        }))
        .unwrap(),
    );
    config.cache = Some(serde_json::from_value(json!({"ttl": "10m"})).unwrap());
    config.idempotency = Some(serde_json::from_value(json!({"ttl": "1h"})).unwrap());
}

async fn ask(addr: std::net::SocketAddr, headers: &[(&str, &str)], text: &str) -> Reply {
    let body = json!({
        "model": "demo",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    });
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        headers,
        &serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// Waits (at most 5 s) until a key of `kind` is in Redis: the first replica stores in the
/// background after it answered.
async fn stored(url: &str, kind: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("gw-cache:{{{kind}:*");
    for _ in 0..500 {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut connection)
            .await
            .unwrap();
        if !keys.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing stored under {pattern}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_one_replica_is_a_cache_hit_on_the_other() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let (sim_a, a) = support::start(|c| replica(c, &url)).await;
    let (sim_b, b) = support::start(|c| replica(c, &url)).await;

    let first = ask(a.local_addr(), &[], "Capital of France?").await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    assert_eq!(first.header("x-seawall-cache"), Some("miss"));
    stored(&url, "cache").await;

    let second = ask(b.local_addr(), &[], "Capital of France?").await;
    assert_eq!(second.status, 200, "{:?}", second.json());
    assert_eq!(second.header("x-seawall-cache"), Some("hit"));
    assert_eq!(
        second.json()["choices"][0]["message"]["content"],
        first.json()["choices"][0]["message"]["content"]
    );
    assert_eq!(sim_a.requests().len(), 1);
    assert_eq!(
        sim_b.requests().len(),
        0,
        "the second replica sent nothing upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_call_finished_on_one_replica_is_replayed_on_the_other() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let (sim_a, a) = support::start(|c| replica(c, &url)).await;
    let (sim_b, b) = support::start(|c| replica(c, &url)).await;
    let key = [
        ("idempotency-key", "order-42"),
        ("cache-control", "no-store"),
    ];

    let first = ask(a.local_addr(), &key, "Place order 42.").await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    stored(&url, "idempotency").await;
    let again = ask(b.local_addr(), &key, "Place order 42.").await;
    assert_eq!(again.status, 200, "{:?}", again.json());
    assert_eq!(again.header("x-seawall-cache"), Some("replayed"));
    assert_eq!(again.json()["id"], first.json()["id"]);

    let other = ask(b.local_addr(), &key, "Place order 43.").await;
    assert_eq!(other.status, 422);
    assert_eq!(other.json()["error"]["code"], "idempotency_key_conflict");
    assert_eq!(sim_a.requests().len() + sim_b.requests().len(), 1);
}
