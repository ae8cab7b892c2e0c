//! Gateway replicas sharing their state through Redis: one key's request limit and one
//! budget hold for all of them, and Redis going away is answered as configured.

use std::net::SocketAddr;

use std::time::Duration;

use seawall_gateway::{Config, VirtualKeyConfig};
use seawall_redis::testing::RedisServer;
use seawall_sim::{Fault, FaultRule, Provider};
use serde_json::{Value, json};

mod support;
use support::{Reply, chat_as, send, start_with};

const KEY: &str = "vk-shared";
const ENV: &[(&str, &str)] = &[("SHARED_KEY", KEY), ("ADMIN_KEY", "admin-secret")];

/// The demo gateway with key `team` (4 requests a minute, 2,000 tokens in all), its
/// state in the Redis at `url`.
fn replica(config: &mut Config, url: &str, on_down: &str) {
    config.keys.push(VirtualKeyConfig {
        name: "team".into(),
        key_env: "SHARED_KEY".into(),
        requests_per_minute: Some(4),
        token_budget: Some(2_000),
        budgets: Vec::new(),
    });
    config.server.admin_key_env = Some("ADMIN_KEY".into());
    config.state = Some(
        serde_json::from_value(json!({
            "redis_url": url,
            "on_redis_down": on_down,
            "timeout": "200ms",
            "key_prefix": "gw-test:",
        }))
        .unwrap(),
    );
}

async fn call(addr: SocketAddr) -> Reply {
    let body = json!({
        "model": "demo",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hello"}],
    });
    chat_as(addr, KEY, &body).await
}

/// The text of `/metrics`.
async fn metrics(addr: SocketAddr) -> String {
    let auth = [("authorization", "Bearer admin-secret")];
    send(addr, "GET", "/metrics", &auth, b"").await.body
}

fn code(reply: &Reply) -> Value {
    reply.json()["error"]["code"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_key_limit_and_one_budget() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let (_sim_a, a) = start_with(|c| replica(c, &url, "fail_open"), ENV).await;
    let (_sim_b, b) = start_with(|c| replica(c, &url, "fail_open"), ENV).await;

    let first = call(a.local_addr()).await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    let left_after_a: u64 = first
        .header("x-seawall-budget-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(left_after_a < 2_000);
    // Replica B sees what A spent: its first call leaves less than A's left.
    let second = call(b.local_addr()).await;
    assert_eq!(second.status, 200);
    let left_after_b: u64 = second
        .header("x-seawall-budget-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        left_after_b < left_after_a,
        "{left_after_b} vs {left_after_a}"
    );

    // The key's 4 requests a minute are for both replicas together: 2 more, then 429s.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let addr = if i % 2 == 0 {
            a.local_addr()
        } else {
            b.local_addr()
        };
        statuses.push(call(addr).await.status);
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_with_503_and_sends_nothing_while_redis_is_down() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let (simulator, gateway) = start_with(|c| replica(c, &url, "fail_closed"), ENV).await;
    assert_eq!(call(gateway.local_addr()).await.status, 200);
    let sent = simulator.requests().len();

    server.kill();
    let started = std::time::Instant::now();
    let refused = call(gateway.local_addr()).await;
    assert_eq!(refused.status, 503);
    assert_eq!(code(&refused), "state_unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(started.elapsed().as_secs() < 2);
    assert_eq!(simulator.requests().len(), sent, "nothing went upstream");
    let text = metrics(gateway.local_addr()).await;
    assert!(text.contains("seawall_gateway_state_up 0"), "{text}");
    assert!(!text.contains("seawall_gateway_state_unreachable_total{mode=\"fail_closed\"} 0"));

    server.restart().unwrap();
    let mut back = false;
    for _ in 0..50 {
        if call(gateway.local_addr()).await.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "the gateway never used Redis again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_keeps_serving_on_local_state_while_redis_is_down() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let (_simulator, gateway) = start_with(|c| replica(c, &url, "fail_open"), ENV).await;
    assert_eq!(call(gateway.local_addr()).await.status, 200);
    server.kill();
    // The replica's own limit: 4 a minute from its in-process state, then 429.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(call(gateway.local_addr()).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
    let text = metrics(gateway.local_addr()).await;
    assert!(text.contains("seawall_gateway_state_up 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_on_one_replica_skips_the_target_on_the_other() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let breaker = |c: &mut Config| {
        replica(c, &url, "fail_open");
        c.keys[0].requests_per_minute = None;
        c.keys[0].token_budget = None;
        let openai = &mut c.targets[0];
        openai.max_attempts = Some(1);
        openai.breaker_failures = Some(2);
        openai.breaker_cooldown = Some(Duration::from_secs(60));
    };
    let (sim_a, a) = start_with(breaker, ENV).await;
    let (sim_b, b) = start_with(breaker, ENV).await;
    // Let both replicas subscribe to the breakers' changes.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // OpenAI fails behind replica A: two failures open its breaker there, and the calls
    // are answered by the next target.
    sim_a.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    for _ in 0..2 {
        let reply = call(a.local_addr()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    }
    // Replica B never saw a failure, and skips OpenAI too.
    let mut skipped = false;
    for _ in 0..100 {
        let reply = call(b.local_addr()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.header("x-seawall-target") == Some("sim-anthropic") {
            skipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(skipped, "replica B kept calling the target A opened");
    let sent_to_openai = sim_b.requests_for(Provider::OpenAi).len();
    for _ in 0..5 {
        let reply = call(b.local_addr()).await;
        assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    }
    assert_eq!(sim_b.requests_for(Provider::OpenAi).len(), sent_to_openai);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_hangs_no_call() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let (_simulator, gateway) = start_with(
        |c| {
            replica(c, &url, "fail_open");
            c.keys[0].requests_per_minute = Some(1_000);
            c.keys[0].token_budget = Some(10_000_000);
        },
        ENV,
    )
    .await;
    let addr = gateway.local_addr();
    // Four clients, each sending calls one after another, while Redis goes away and
    // comes back.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..30 {
                    let reply = tokio::time::timeout(Duration::from_secs(5), call(addr))
                        .await
                        .expect("a call hung");
                    statuses.push(reply.status);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.restart().unwrap();
    for client in clients {
        let statuses = client.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_shuts_down_gives_its_leases_back() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    // A request limit large enough to lease from: 1/32 of it is 64 calls.
    let (_sim, gateway) = start_with(
        |c| {
            replica(c, &url, "fail_open");
            c.keys[0].requests_per_minute = Some(6_400);
        },
        ENV,
    )
    .await;
    let reply = call(gateway.local_addr()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    gateway.shutdown().await;

    // The key's limiter in Redis: "tat,left,limit,reset,from,in flight" for requests. The
    // call ended and the rest of its lease went back: nothing is left in flight.
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let requests: String = redis::cmd("HGET")
        .arg("gw-test:{limiter:key team}")
        .arg("d1")
        .query_async(&mut connection)
        .await
        .unwrap();
    let in_flight = requests.rsplit(',').next().unwrap();
    assert_eq!(in_flight, "0", "{requests}");
}
