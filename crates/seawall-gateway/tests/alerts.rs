//! Operational alerts: a target's breaker opening and a limiter queue growing past its
//! threshold reach the log, the metrics and the webhook, like the spending alerts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall_gateway::{AlertConfig, GroupConfig};
use seawall_sim::{Fault, FaultRule, Provider};
use serde_json::{Value, json};

mod support;
use support::openmetrics::Exposition;
use support::{chat, send, start};

/// Waits (a bounded time) until the webhook received an alert of `kind`.
async fn alert_of(bodies: &Arc<Mutex<Vec<Value>>>, kind: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        if let Some(body) = bodies
            .lock()
            .unwrap()
            .iter()
            .find(|body| body["kind"] == kind)
        {
            return body.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {kind} alert arrived: {:?}",
            bodies.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics(addr: SocketAddr) -> Exposition {
    let reply = send(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(reply.status, 200);
    Exposition::parse(&reply.body)
}

fn alert(rule: Value) -> AlertConfig {
    serde_json::from_value(rule).unwrap()
}

#[tokio::test]
async fn a_breaker_that_opens_raises_an_alert_once() {
    let (url, bodies) = support::webhook::receiver(false).await;
    let (sim, gw) = start(|c| {
        c.targets[0].breaker_failures = Some(1);
        c.targets[0].max_attempts = Some(1);
        c.budget.alert_webhook = Some(url);
        c.alerts.push(alert(json!({ "breaker_open": true })));
    })
    .await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    let addr = gw.local_addr();
    for _ in 0..3 {
        let reply = chat(addr, support::hello(false)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    }
    let body = alert_of(&bodies, "breaker_open").await;
    assert_eq!(body["target"], "sim-openai");
    assert!(body["open_for_secs"].as_f64().unwrap() > 0.0, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("sim-openai"),
        "{body}"
    );

    let m = metrics(addr).await;
    assert_eq!(
        m.sum("seawall_gateway_alerts_total", &[("kind", "breaker_open")]),
        1.0
    );
    assert_eq!(
        m.sum(
            "seawall_gateway_breaker_transitions_total",
            &[("target", "sim-openai"), ("to", "open")]
        ),
        1.0
    );
    assert_eq!(
        m.sum("seawall_gateway_breaker_state", &[("target", "sim-openai")]),
        2.0
    );
    // The open breaker was skipped by the later calls, not tried again.
    assert_eq!(
        m.sum(
            "seawall_gateway_attempts_total",
            &[("target", "sim-openai"), ("outcome", "skipped")]
        ),
        2.0
    );
    assert_eq!(
        bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["kind"] == "breaker_open")
            .count(),
        1
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_limiter_queue_that_reaches_its_threshold_raises_an_alert() {
    let (url, bodies) = support::webhook::receiver(false).await;
    let (_sim, gw) = start(|c| {
        // One call per 10 s: the second and third wait in the queue.
        c.targets[0].requests_per_minute = Some(1);
        c.targets[0].limit_period = Some(Duration::from_secs(10));
        c.targets[0].max_wait = Some(Duration::from_secs(30));
        c.groups.push(GroupConfig {
            name: "solo".into(),
            targets: vec!["sim-openai".into()],
            strategy: Default::default(),
            timeout: Duration::from_secs(30),
            content_filter: Default::default(),
            hedge: None,
        });
        c.server.shutdown_grace = Duration::from_millis(50);
        c.budget.alert_webhook = Some(url);
        c.alerts.push(alert(json!({ "queue_length": 2 })));
    })
    .await;
    let addr = gw.local_addr();
    let mut ask = support::hello(false);
    ask["model"] = json!("solo");
    let first = chat(addr, ask.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let waiting: Vec<_> = (0..2)
        .map(|_| tokio::spawn(chat(addr, ask.clone())))
        .collect();

    let body = alert_of(&bodies, "queue_growth").await;
    assert_eq!(body["target"], "sim-openai");
    assert_eq!(body["waiting"], 2);
    assert_eq!(body["threshold"], 2);
    let m = metrics(addr).await;
    assert_eq!(
        m.sum("seawall_gateway_alerts_total", &[("kind", "queue_growth")]),
        1.0
    );
    assert_eq!(
        m.sum(
            "seawall_gateway_limiter_queue_length",
            &[("target", "sim-openai")]
        ),
        2.0
    );
    for call in waiting {
        call.abort();
    }
    gw.shutdown().await;
}
