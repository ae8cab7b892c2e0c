//! The gateway over loopback, in front of the in-process simulator.

use std::net::SocketAddr;
use std::time::Duration;

use seawall_gateway::{Config, ContentFilterConfig, Demo, GatewayHandle, VirtualKeyConfig};
use seawall_sim::{Fault, FaultRule, Provider, Simulator};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::openmetrics::Exposition;
use support::{Reply, chat, hello, open_chat, parse, send, start, start_threaded, start_with};

#[tokio::test]
async fn bad_input_is_refused_before_anything_goes_upstream() {
    let (sim, gw) = start(|c| c.server.max_body_bytes = 2048).await;
    let addr = gw.local_addr();
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "malformed json",
            b"{\"model\": \"demo\", ".to_vec(),
            400,
            None,
        ),
        ("not an object", b"[1,2]".to_vec(), 400, None),
        (
            "missing model",
            br#"{"messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
            400,
            Some("model"),
        ),
        (
            "missing messages",
            br#"{"model":"demo"}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "empty messages",
            br#"{"model":"demo","messages":[]}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "temperature of the wrong type",
            br#"{"model":"demo","temperature":"hot","messages":[{"role":"user","content":"hi"}]}"#
                .to_vec(),
            400,
            Some("temperature"),
        ),
        (
            "max_tokens of the wrong type",
            br#"{"model":"demo","max_tokens":"lots","messages":[{"role":"user","content":"hi"}]}"#
                .to_vec(),
            400,
            Some("max_tokens"),
        ),
        (
            "max_tokens of 0, named as sent",
            br#"{"model":"demo","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#
                .to_vec(),
            400,
            Some("max_tokens"),
        ),
        (
            "max_completion_tokens of 0, named as sent",
            br#"{"model":"demo","max_completion_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#
                .to_vec(),
            400,
            Some("max_completion_tokens"),
        ),
        (
            "unknown role",
            br#"{"model":"demo","messages":[{"role":"wizard","content":"hi"}]}"#.to_vec(),
            400,
            Some("messages[0].role"),
        ),
        (
            "temperature out of range",
            br#"{"model":"demo","temperature":7,"messages":[{"role":"user","content":"hi"}]}"#
                .to_vec(),
            400,
            Some("temperature"),
        ),
        (
            "unknown model group",
            br#"{"model":"gpt-nope","messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
            404,
            Some("model"),
        ),
        (
            "oversize body",
            serde_json::to_vec(
                &json!({"model":"demo","messages":[{"role":"user","content":"x".repeat(4096)}]}),
            )
            .unwrap(),
            413,
            None,
        ),
    ];
    for (name, body, status, param) in cases {
        let reply = send(addr, "POST", "/v1/chat/completions", &[], &body).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        let error = &reply.json()["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert!(error["type"].is_string(), "{name}");
        assert!(
            error.get("code").is_some() && error.get("param").is_some(),
            "{name}"
        );
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{name}");
        }
    }
    assert!(sim.requests().is_empty(), "nothing reaches the simulator");
    gw.shutdown().await;
}

#[tokio::test]
async fn missing_or_unknown_virtual_key_is_401_and_nothing_goes_upstream() {
    let (sim, gw) = start_with(
        |c| {
            c.keys.push(VirtualKeyConfig {
                name: "team-a".into(),
                key_env: "TEAM_A_KEY".into(),
                requests_per_minute: None,
                token_budget: None,
                budgets: Vec::new(),
            })
        },
        &[("TEAM_A_KEY", "vk-team-a")],
    )
    .await;
    let addr = gw.local_addr();
    let body = serde_json::to_vec(&hello(false)).unwrap();
    let missing = send(addr, "POST", "/v1/chat/completions", &[], &body).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["code"], "missing_api_key");
    let wrong = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer vk-other")],
        &body,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["code"], "invalid_api_key");
    assert!(sim.requests().is_empty());
    let right = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer vk-team-a")],
        &body,
    )
    .await;
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(sim.requests().len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn virtual_key_request_limit_and_token_budget_answer_429() {
    let (sim, gw) = start_with(
        |c| {
            c.keys.push(VirtualKeyConfig {
                name: "limited".into(),
                key_env: "LIMITED_KEY".into(),
                requests_per_minute: Some(1),
                token_budget: None,
                budgets: Vec::new(),
            });
            c.keys.push(VirtualKeyConfig {
                name: "budget".into(),
                key_env: "BUDGET_KEY".into(),
                requests_per_minute: None,
                token_budget: Some(1),
                budgets: Vec::new(),
            });
        },
        &[("LIMITED_KEY", "vk-limited"), ("BUDGET_KEY", "vk-budget")],
    )
    .await;
    let addr = gw.local_addr();
    let body = serde_json::to_vec(&hello(false)).unwrap();
    let call = |key: &'static str| {
        let body = body.clone();
        async move {
            let auth = format!("Bearer {key}");
            send(
                addr,
                "POST",
                "/v1/chat/completions",
                &[("authorization", &auth)],
                &body,
            )
            .await
        }
    };
    let first = call("vk-limited").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = call("vk-limited").await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.json()["error"]["code"], "rate_limit_exceeded");
    // One request a minute: the next is admitted within the minute.
    let retry_after: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");

    // A one-token budget fits no call: the first is refused before anything is sent.
    let refused = call("vk-budget").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"]["type"], "insufficient_quota");
    assert_eq!(refused.json()["error"]["code"], "budget_exceeded");
    assert_eq!(refused.header("x-should-retry"), Some("false"));
    assert_eq!(
        sim.requests().len(),
        1,
        "only the limited key's first call went upstream"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn non_streaming_success_carries_model_and_trail_headers() {
    let (sim, gw) = start(|_| {}).await;
    let reply = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(reply.header("x-seawall-attempts"), Some("1"));
    assert_eq!(reply.header("x-seawall-target"), Some("sim-openai"));
    let sent = sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body_json().unwrap()["model"], "gpt-4o-mini");
    gw.shutdown().await;
}

/// Every reply carries an `x-request-id`: the client's own, or one the gateway made, new
/// for each request.
#[tokio::test]
async fn every_reply_carries_a_request_id_made_when_the_client_sent_none() {
    let (_sim, gw) = start(|_| {}).await;
    let addr = gw.local_addr();
    let first = chat(addr, hello(false)).await;
    let second = chat(addr, hello(true)).await;
    assert_eq!((first.status, second.status), (200, 200));
    let made: Vec<&str> = [&first, &second]
        .iter()
        .map(|reply| reply.header("x-request-id").expect("an x-request-id"))
        .collect();
    assert!(made.iter().all(|id| id.len() > 16), "{made:?}");
    assert_ne!(made[0], made[1]);
    // Every route, an unknown path's 404 included.
    let health = send(addr, "GET", "/healthz", &[], b"").await;
    let unknown = send(addr, "GET", "/nowhere", &[], b"").await;
    assert_eq!(unknown.status, 404);
    for reply in [&health, &unknown] {
        let id = reply.header("x-request-id").expect("an x-request-id");
        assert!(!made.contains(&id), "{id} again");
    }

    let body = serde_json::to_vec(&hello(false)).unwrap();
    let given = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "trace-from-client-7")],
        &body,
    )
    .await;
    assert_eq!(given.status, 200, "{}", given.body);
    assert_eq!(given.header("x-request-id"), Some("trace-from-client-7"));
    gw.shutdown().await;
}

#[tokio::test]
async fn streaming_success_ends_with_usage_chunk_and_done() {
    let (_sim, gw) = start(|_| {}).await;
    let mut request = hello(true);
    request["stream_options"] = json!({"include_usage": true});
    let reply = chat(gw.local_addr(), request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["model"] == "gpt-4o-mini" && c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");

    // Without include_usage: no usage chunk.
    let reply = chat(gw.local_addr(), hello(true)).await;
    assert!(reply.events().iter().all(|e| !e.contains("\"usage\"")));
    gw.shutdown().await;
}

#[tokio::test]
async fn failover_reports_the_model_that_answered() {
    let (sim, gw) = start(|_| {}).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    let reply = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["model"], "claude-3-5-haiku-latest");
    assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    let attempts: u32 = reply.header("x-seawall-attempts").unwrap().parse().unwrap();
    assert!(
        attempts >= 2,
        "OpenAI failed, then Anthropic answered: {attempts}"
    );

    let reply = chat(gw.local_addr(), hello(true)).await;
    assert_eq!(reply.status, 200);
    let events = reply.events();
    assert_eq!(events.last(), Some(&"[DONE]"));
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert_eq!(chunk["model"], "claude-3-5-haiku-latest", "{event}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_breaks_after_the_first_token_ends_with_an_in_band_error() {
    let (sim, gw) = start(|_| {}).await;
    // Every target breaks, so the broken stream cannot be recovered on another one.
    for provider in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        sim.set_faults(
            provider,
            vec![FaultRule::always(Fault::CutAfter { events: 4 })],
        );
    }
    let reply = chat(gw.local_addr(), hello(true)).await;
    assert_eq!(reply.status, 200);
    let events = reply.events();
    assert!(!events.contains(&"[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(last["error"]["type"].is_string());
    let text: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        !text.is_empty(),
        "some content was relayed before the break"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn all_targets_failed_is_an_openai_shaped_error_listing_the_attempts() {
    let (sim, gw) = start(|_| {}).await;
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        sim.set_faults(p, vec![FaultRule::always(Fault::status(500))]);
    }
    for stream in [false, true] {
        let reply = chat(gw.local_addr(), hello(stream)).await;
        assert_eq!(reply.status, 502, "{}", reply.body);
        assert_eq!(reply.header("x-should-retry"), Some("false"));
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "server_error");
        assert_eq!(error["code"], "all_targets_failed");
        let message = error["message"].as_str().unwrap();
        for target in ["sim-openai", "sim-anthropic", "sim-gemini"] {
            assert!(message.contains(target), "{message}");
        }
    }
    gw.shutdown().await;
}

/// Shuts `gw` down while a stream through it is under way (stalled upstream) and checks
/// that the stream still ends whole and that the listener is closed once shutdown returns.
async fn assert_shutdown_drains_a_live_stream(sim: Simulator, gw: GatewayHandle) {
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter { events: 2, ms: 300 })],
    );
    let addr = gw.local_addr();
    let call = tokio::spawn(chat(addr, hello(true)));
    // Wait until the stream is under way upstream.
    while sim.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    gw.shutdown().await;
    let reply = call.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.events().last(), Some(&"[DONE]"), "{}", reply.body);
    // The listener is closed once shutdown returns.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// A kept-alive connection with no call on it does not hold shutdown up for the grace
/// period: it is closed at once.
#[tokio::test]
async fn shutdown_closes_an_idle_kept_alive_connection_at_once() {
    let demo = Demo::start(|_| {}, |b| b).await.expect("demo");
    let gw = demo
        .gateway
        .listen("127.0.0.1:0".parse().unwrap())
        .shutdown_grace(Duration::from_secs(30))
        .serve()
        .await
        .expect("serve");
    let addr = gw.local_addr();
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while !raw.ends_with(b"ok\n") {
        let n = idle.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before the answer");
        raw.extend_from_slice(&buf[..n]);
    }
    // The connection is now idle and kept alive.
    tokio::time::timeout(Duration::from_secs(5), gw.shutdown())
        .await
        .expect("shutdown does not wait for an idle connection");
    let closed = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf))
        .await
        .expect("the idle connection is closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}

/// A call in flight when shutdown begins is answered in full within the grace period.
#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish() {
    let (sim, gw) = start(|_| {}).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::SlowFirstByte { ms: 300 })],
    );
    let addr = gw.local_addr();
    let call = tokio::spawn(chat(addr, hello(false)));
    while sim.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.shutdown().await;
    let reply = call.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.json()["choices"][0]["message"]["content"].is_string(),
        "{}",
        reply.body
    );
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_drains_a_live_stream() {
    let (sim, gw) = start(|_| {}).await;
    assert_shutdown_drains_a_live_stream(sim, gw).await;
}

#[tokio::test]
async fn metrics_count_a_known_sequence_of_calls() {
    let (sim, gw) = start(|c| {
        c.targets[0].input_price_per_mtok = Some(2.0);
        c.targets[0].output_price_per_mtok = Some(10.0);
        c.targets[0].requests_per_minute = Some(10_000);
    })
    .await;
    let addr = gw.local_addr();
    let a = chat(addr, hello(false)).await;
    let b = chat(addr, hello(true)).await;
    assert_eq!((a.status, b.status), (200, 200));
    let usage = a.json()["usage"].clone();
    let missing = chat(
        addr,
        json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(missing.status, 404);
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::status(500))],
    );
    let retried = chat(addr, hello(false)).await;
    assert_eq!(retried.status, 200);
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    let failed_over = chat(addr, hello(false)).await;
    assert_eq!(
        failed_over.header("x-seawall-target"),
        Some("sim-anthropic")
    );

    let calls = [&a, &b, &retried, &failed_over];
    let attempts: f64 = calls
        .iter()
        .map(|r| {
            r.header("x-seawall-attempts")
                .unwrap()
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    let moved = calls
        .iter()
        .filter(|r| r.header("x-seawall-target") != Some("sim-openai"))
        .count() as f64;

    let metrics = send(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let m = Exposition::parse(&metrics.body);
    assert_eq!(m.types["seawall_gateway_calls"], "counter");
    assert_eq!(
        m.types["seawall_gateway_call_duration_seconds"],
        "histogram"
    );
    assert_eq!(
        m.sum("seawall_gateway_requests_total", &[("status", "200")]),
        4.0
    );
    assert_eq!(
        m.sum("seawall_gateway_requests_total", &[("status", "404")]),
        1.0
    );
    assert_eq!(
        m.sum("seawall_gateway_request_duration_seconds_count", &[]),
        5.0
    );
    assert_eq!(
        m.sum("seawall_gateway_time_to_first_token_seconds_count", &[]),
        1.0
    );

    // Per model: the four calls to `demo` (the 404 never reached a group), all answered,
    // one of them streamed; p95 derivable from the buckets.
    let demo = [("model", "demo")];
    assert_eq!(
        m.sum(
            "seawall_gateway_calls_total",
            &[("model", "demo"), ("outcome", "answered")]
        ),
        4.0
    );
    assert_eq!(m.sum("seawall_gateway_calls_total", &[]), 4.0);
    assert_eq!(
        m.sum("seawall_gateway_call_duration_seconds_count", &demo),
        4.0
    );
    let p95 = m
        .quantile("seawall_gateway_call_duration_seconds", &demo, 0.95)
        .expect("a p95 for the demo model");
    assert!(p95 > 0.0 && p95.is_finite(), "{p95}");
    assert_eq!(
        m.sum(
            "seawall_gateway_call_time_to_first_token_seconds_count",
            &demo
        ),
        1.0
    );

    // Per target: the attempts the router made, the failure that moved the last call, the
    // move itself.
    assert!(
        attempts >= 5.0,
        "the failed-over call needed two attempts: {attempts}"
    );
    assert_eq!(m.sum("seawall_gateway_attempts_total", &[]), attempts);
    assert_eq!(
        m.sum(
            "seawall_gateway_attempts_total",
            &[("target", "sim-openai"), ("outcome", "server_error")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "seawall_gateway_attempts_total",
            &[("target", "sim-anthropic"), ("outcome", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        m.sum("seawall_gateway_attempt_duration_seconds_count", &[]),
        attempts
    );
    assert!(moved >= 1.0);
    assert_eq!(m.sum("seawall_gateway_failovers_total", &[]), moved);
    assert_eq!(
        m.sum(
            "seawall_gateway_failovers_total",
            &[("from", "sim-openai"), ("to", "sim-anthropic")]
        ),
        moved
    );

    let sent = sim.requests().len() as f64;
    assert_eq!(
        m.sum("seawall_gateway_upstream_requests_total", &[]),
        sent,
        "every request the simulator saw is counted"
    );
    assert!(
        sent > attempts,
        "the retry layer retried the 500s on OpenAI"
    );
    assert_eq!(m.sum("seawall_gateway_retries_total", &[]), sent - attempts);
    assert_eq!(
        m.sum("seawall_gateway_retries_total", &[("target", "sim-openai")]),
        sent - attempts
    );
    assert_eq!(
        m.find("seawall_gateway_breaker_state", &[("target", "sim-openai")])
            .count(),
        1
    );
    assert_eq!(m.sum("seawall_gateway_breaker_state", &[]), 0.0);
    assert_eq!(
        m.find(
            "seawall_gateway_limiter_queue_length",
            &[("target", "sim-openai")]
        )
        .count(),
        1
    );
    assert_eq!(m.sum("seawall_gateway_limiter_queue_length", &[]), 0.0);
    let input = m.sum("seawall_gateway_tokens_total", &[("kind", "input")]);
    assert!(input >= 4.0 * usage["prompt_tokens"].as_f64().unwrap());
    assert!(m.sum("seawall_gateway_tokens_total", &[("kind", "output")]) > 0.0);
    assert!(
        m.sum(
            "seawall_gateway_cost_usd_total",
            &[("model", "gpt-4o-mini")]
        ) > 0.0,
        "{}",
        metrics.body
    );

    let status = send(addr, "GET", "/status.json", &[], b"").await.json();
    assert_eq!(status["targets"][0]["name"], "sim-openai");
    assert_eq!(status["targets"][0]["breaker"], "closed");
    for path in ["/healthz", "/readyz", "/v1/models"] {
        assert_eq!(
            send(addr, "GET", path, &[], b"").await.status,
            200,
            "{path}"
        );
    }
    let models = send(addr, "GET", "/v1/models", &[], b"").await.json();
    assert_eq!(models["data"][0]["id"], "demo");
    gw.shutdown().await;
}

#[tokio::test]
async fn keys_never_appear_in_debug_status_metrics_or_errors() {
    let upstream = "sk-upstream-secret-4242";
    let virtual_key = "vk-virtual-secret-4242";
    let sim = Simulator::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let mut config = seawall_gateway::demo_config(&sim);
    for t in &mut config.targets {
        t.api_key_env = Some("UPSTREAM_KEY".into());
    }
    config.keys.push(VirtualKeyConfig {
        name: "team".into(),
        key_env: "VIRTUAL_KEY".into(),
        requests_per_minute: None,
        token_budget: None,
        budgets: Vec::new(),
    });
    let builder = seawall_gateway::Gateway::builder(config)
        .env("UPSTREAM_KEY", upstream)
        .env("VIRTUAL_KEY", virtual_key);
    let mut seen = format!("{builder:?}");
    let gateway = builder.build().unwrap();
    seen.push_str(&format!("{gateway:?}"));
    let gw = gateway
        .listen("127.0.0.1:0".parse().unwrap())
        .serve()
        .await
        .unwrap();
    seen.push_str(&format!("{gw:?}"));
    let addr = gw.local_addr();
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        sim.set_faults(p, vec![FaultRule::always(Fault::status(401))]);
    }
    let auth = format!("Bearer {virtual_key}");
    let body = serde_json::to_vec(&hello(false)).unwrap();
    let failed = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &body,
    )
    .await;
    assert!(failed.status >= 400);
    seen.push_str(&failed.body);
    seen.push_str(&send(addr, "GET", "/status.json", &[], b"").await.body);
    seen.push_str(&send(addr, "GET", "/metrics", &[], b"").await.body);
    assert!(!seen.contains(upstream), "upstream key leaked");
    assert!(!seen.contains(virtual_key), "virtual key leaked");
    // The call did reach the simulator (with the key), so the error path was exercised.
    assert!(!sim.requests().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn server_threads_answer_concurrent_calls_and_share_each_targets_breaker() {
    let (sim, gw) = start_threaded(2, |c| {
        let openai = &mut c.targets[0];
        openai.max_attempts = Some(1);
        openai.breaker_failures = Some(2);
        openai.breaker_cooldown = Some(Duration::from_secs(60));
    })
    .await;
    let addr = gw.local_addr();

    // Concurrent calls, streaming and not, each on its own connection: every one answered.
    let calls: Vec<_> = (0..16)
        .map(|i| tokio::spawn(chat(addr, hello(i % 2 == 0))))
        .collect();
    for call in calls {
        let reply = call.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-seawall-target"), Some("sim-openai"));
    }
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 16);

    // OpenAI fails from now on. Its breaker is one for every server thread: two failures
    // open it, whichever threads the calls land on, and later calls skip OpenAI.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    for _ in 0..8 {
        let reply = chat(addr, hello(false)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    }
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 16 + 2);
    assert_eq!(sim.requests_for(Provider::Anthropic).len(), 8);
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_of_server_threads_drains_a_live_stream_and_closes_the_listener() {
    let (sim, gw) = start_threaded(2, |_| {}).await;
    assert_shutdown_drains_a_live_stream(sim, gw).await;
}

#[test]
fn defaults_fill_what_each_target_leaves_unset() {
    let text = r#"
        [defaults]
        provider = "openai"
        api_key_env = "K"
        attempt_timeout = "20s"
        max_attempts = 4
        breaker_failures = 3

        [[targets]]
        name = "a"
        model = "gpt-4o"

        [[targets]]
        name = "b"
        provider = "anthropic"
        model = "claude"
        attempt_timeout = "5s"
        continuation = "user_message"

        [[groups]]
        name = "g"
        targets = ["a", "b"]
    "#;
    let config = Config::from_toml(text).unwrap();
    let env = |_: &str| Some("x".to_owned());
    config.validate(&env).unwrap();
    let (a, b) = (&config.targets[0], &config.targets[1]);
    assert_eq!(a.attempt_timeout, Some(Duration::from_secs(20)));
    assert_eq!(
        b.attempt_timeout,
        Some(Duration::from_secs(5)),
        "a target's own wins"
    );
    assert_eq!((a.max_attempts, b.max_attempts), (Some(4), Some(4)));
    assert_eq!((a.breaker_failures, b.breaker_failures), (Some(3), Some(3)));
    assert_eq!(a.api_key_env.as_deref(), Some("K"));
    assert!(matches!(
        b.provider,
        seawall_gateway::ProviderConfig::Anthropic
    ));

    let error = |extra: &str| {
        Config::from_toml(&format!(
            "[defaults]\n{extra}\n[[targets]]\nname = \"a\"\nprovider = \"openai\"\nmodel = \"m\"\n"
        ))
        .map(drop)
        .unwrap_err()
    };
    let unknown = error("attempt_timeuot = \"1s\"");
    assert_eq!(unknown.key, "defaults");
    assert!(unknown.problem.contains("attempt_timeuot"), "{unknown}");
    assert_eq!(error("name = \"x\"").key, "defaults.name");
    let wrong = error("max_attempts = \"four\"");
    assert_eq!(wrong.key, "defaults");
}

#[test]
fn config_errors_name_the_key() {
    let env = |name: &str| (name == "SET").then(|| "x".to_owned());
    let check = |text: &str| Config::from_toml(text).and_then(|c| c.validate(&env).map(|_| c));
    let unknown = check(
        r#"
        [[targets]]
        name = "a"
        provider = "openai"
        model = "m"
        api_key_env = "SET"
        [[groups]]
        name = "g"
        targets = ["b"]
        "#,
    )
    .unwrap_err();
    assert_eq!(unknown.key, "groups[0].targets[0]");
    let unset = check(
        r#"
        [[targets]]
        name = "a"
        provider = "anthropic"
        model = "m"
        api_key_env = "UNSET"
        [[groups]]
        name = "g"
        targets = ["a"]
        "#,
    )
    .unwrap_err();
    assert_eq!(unset.key, "targets[0].api_key_env");
    assert!(unset.problem.contains("UNSET"));
    let bad_duration = check(
        r#"
        [[targets]]
        name = "a"
        provider = "openai"
        model = "m"
        api_key_env = "SET"
        attempt_timeout = "soon"
        [[groups]]
        name = "g"
        targets = ["a"]
        "#,
    )
    .unwrap_err();
    assert!(
        bad_duration.problem.contains("attempt_timeout"),
        "{bad_duration}"
    );
    let too_many_threads = check(
        r#"
        [server]
        threads = 100000
        "#,
    )
    .unwrap_err();
    assert_eq!(too_many_threads.key, "server.threads");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.example.toml"))
            .unwrap();
    let env_all = |_: &str| Some("x".to_owned());
    Config::from_toml(&example)
        .unwrap()
        .validate(&env_all)
        .unwrap();
}

#[test]
fn attempt_first_token_and_idle_timeouts_have_defaults_and_can_be_set_or_turned_off() {
    let env = |_: &str| Some("x".to_owned());
    let target = |timeouts: &str| {
        let text = format!(
            r#"
            [[targets]]
            name = "a"
            provider = "openai"
            model = "m"
            api_key_env = "KEY"
            {timeouts}
            [[groups]]
            name = "g"
            targets = ["a"]
            "#
        );
        Config::from_toml(&text)
            .and_then(|c| c.validate(&env).map(|()| c))
            .map(|c| {
                let t = &c.targets[0];
                (t.attempt_timeout, t.first_token_timeout, t.idle_timeout)
            })
    };
    let secs = |s| Some(Duration::from_secs(s));
    assert_eq!(target(""), Ok((secs(60), secs(30), secs(30))));
    assert_eq!(
        target("attempt_timeout = \"2m\"\nidle_timeout = 5"),
        Ok((secs(120), secs(30), secs(5)))
    );
    assert_eq!(
        target("attempt_timeout = \"off\"\nfirst_token_timeout = \"off\"\nidle_timeout = \"Off\""),
        Ok((None, None, None))
    );
    let zero = target("first_token_timeout = \"0s\"").unwrap_err();
    assert_eq!(zero.key, "targets[0].first_token_timeout");
    assert!(zero.problem.contains("off"), "{zero}");
}

/// The demo's targets through a config file that sets no timeout but the group's default.
fn without_timeouts(config: &mut Config) {
    let url = |i: usize| config.targets[i].base_url.clone().unwrap();
    let text = format!(
        r#"
        [[targets]]
        name = "sim-openai"
        provider = "openai"
        model = "gpt-4o-mini"
        base_url = "{}"
        api_key_env = "SEAWALL_DEMO_KEY"
        [[targets]]
        name = "sim-anthropic"
        provider = "anthropic"
        model = "claude-3-5-haiku-latest"
        base_url = "{}"
        api_key_env = "SEAWALL_DEMO_KEY"
        [[groups]]
        name = "demo"
        targets = ["sim-openai", "sim-anthropic"]
        "#,
        url(0),
        url(1),
    );
    *config = Config::from_toml(&text).unwrap();
    assert_eq!(config.groups[0].timeout, Duration::from_secs(120));
}

/// Real sockets on the paused clock: while the gateway waits on a silent upstream the
/// runtime has nothing to do, so the clock jumps to the next timer.
#[tokio::test(start_paused = true)]
async fn a_silent_upstream_fails_over_after_the_default_timeouts_not_the_group_timeout() {
    let (sim, gw) = start(without_timeouts).await;
    let addr = gw.local_addr();

    // No response head at all: the 60 s attempt timeout.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::Hang { ms: None })],
    );
    let started = tokio::time::Instant::now();
    let reply = chat(addr, hello(false)).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    assert!(
        (Duration::from_secs(60)..Duration::from_secs(61)).contains(&elapsed),
        "{elapsed:?}"
    );

    // A stream whose head comes and then nothing: the 30 s first-token timeout.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter {
            events: 0,
            ms: 3_600_000,
        })],
    );
    let started = tokio::time::Instant::now();
    let reply = chat(addr, hello(true)).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    assert_eq!(reply.events().last(), Some(&"[DONE]"));
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(31)).contains(&elapsed),
        "{elapsed:?}"
    );
    gw.shutdown().await;
}

#[test]
fn names_with_control_characters_or_surrounding_whitespace_are_refused() {
    let env = |_: &str| Some("x".to_owned());
    let check = |target: &str, group: &str, key: &str| {
        let mut config = Config::from_toml(
            "[[targets]]\nname = \"t\"\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"K\"",
        )
        .unwrap();
        config.targets[0].name = target.to_owned();
        let config = Config {
            groups: vec![seawall_gateway::GroupConfig {
                name: group.to_owned(),
                targets: vec![target.to_owned()],
                strategy: Default::default(),
                timeout: Duration::from_secs(30),
                content_filter: Default::default(),
                hedge: None,
            }],
            keys: vec![VirtualKeyConfig {
                name: key.to_owned(),
                key_env: "VK".into(),
                requests_per_minute: None,
                token_budget: None,
                budgets: Vec::new(),
            }],
            ..config
        };
        config.validate(&env)
    };
    assert_eq!(check("openai \"4o\" \\ primary", "chat", "team-a"), Ok(()));
    let cases = [
        (("a\nb", "chat", "team"), "targets[0].name", "U+000A"),
        (("a\u{1b}[31m", "chat", "team"), "targets[0].name", "U+001B"),
        (("a", "chat\t", "team"), "groups[0].name", "U+0009"),
        (("a", " chat", "team"), "groups[0].name", "whitespace"),
        (("a", "chat", "team\u{7f}"), "keys[0].name", "U+007F"),
        (("a", "chat", "team "), "keys[0].name", "whitespace"),
        (
            (&*"x".repeat(129), "chat", "team"),
            "targets[0].name",
            "128",
        ),
    ];
    for ((target, group, key), field, problem) in cases {
        let error = check(target, group, key).unwrap_err();
        assert_eq!(error.key, field, "{error}");
        assert!(error.problem.contains(problem), "{error}");
    }
}

/// A sample's metric name, labels (values unescaped) and value.
#[tokio::test]
async fn metrics_escape_label_values_so_the_exposition_parses() {
    let name = r#"sim "openai" \ primary"#;
    let (_sim, gw) = start(|c| {
        c.targets[0].name = name.to_owned();
        c.groups[0].targets[0] = name.to_owned();
    })
    .await;
    let addr = gw.local_addr();
    let reply = chat(addr, hello(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let metrics = send(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    let m = Exposition::parse(&metrics.body);
    let sent = m
        .find("seawall_gateway_upstream_requests_total", &[])
        .find(|(_, labels, _)| labels == &[("target".to_owned(), name.to_owned())])
        .unwrap_or_else(|| panic!("no sample for {name:?}:\n{}", metrics.body));
    assert_eq!(sent.2, 1.0);
    // The library's families escape the same way.
    assert_eq!(
        m.sum(
            "seawall_gateway_attempts_total",
            &[("target", name), ("outcome", "succeeded")]
        ),
        1.0
    );
    assert!(
        metrics
            .body
            .contains(r#"seawall_gateway_breaker_state{target="sim \"openai\" \\ primary"} 0"#),
        "{}",
        metrics.body
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_drops_the_upstream_stream() {
    let (sim, gw) = start(|_| {}).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter {
            events: 3,
            ms: 5_000,
        })],
    );
    let addr = gw.local_addr();
    let mut stream = open_chat(addr, &hello(true), &[]).await;
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);

    // The relay (and with it the upstream stream) is dropped long before the stall ends:
    // its latency is recorded when it goes away.
    let started = std::time::Instant::now();
    loop {
        let metrics = send(addr, "GET", "/metrics", &[], b"").await.body;
        if metrics.contains("seawall_gateway_request_duration_seconds_count 1\n") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the upstream stream outlived the client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_pattern_group_passes_the_requested_model_to_its_primary() {
    let (sim, gw) = start(|c| {
        c.groups.push(seawall_gateway::GroupConfig {
            name: "gpt-*".into(),
            targets: vec!["sim-openai".into(), "sim-anthropic".into()],
            strategy: Default::default(),
            timeout: Duration::from_secs(30),
            content_filter: Default::default(),
            hedge: None,
        })
    })
    .await;
    let addr = gw.local_addr();
    let request = json!({"model": "gpt-4.1-nano", "messages": [{"role": "user", "content": "hi"}]});
    let reply = chat(addr, request.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["model"], "gpt-4.1-nano");
    assert_eq!(
        sim.requests()[0].body_json().unwrap()["model"],
        "gpt-4.1-nano"
    );

    // Its fallback gets its own model.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    let reply = chat(addr, request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["model"], "claude-3-5-haiku-latest");
    // A name that only equals the prefix is no match.
    let reply = chat(
        addr,
        json!({"model": "gpt-", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_recovered_on_another_target_is_whole_and_names_the_model_that_answered() {
    let (sim, gw) = start(|_| {}).await;
    let content = |events: &[&str]| -> Vec<(String, String)> {
        events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|c| {
                let text = c["choices"][0]["delta"]["content"].as_str()?.to_owned();
                Some((c["model"].as_str().unwrap_or_default().to_owned(), text))
            })
            .filter(|(_, text)| !text.is_empty())
            .collect()
    };
    let unbroken = chat(gw.local_addr(), hello(true)).await;
    let full: String = content(&unbroken.events())
        .into_iter()
        .map(|(_, text)| text)
        .collect();

    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::CutAfter { events: 4 })],
    );
    let reply = chat(gw.local_addr(), hello(true)).await;
    let events = reply.events();
    assert_eq!(events.last(), Some(&"[DONE]"), "{events:?}");
    let pieces = content(&events);
    let text: String = pieces.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(text, full, "the whole answer, exactly once");
    assert_eq!(pieces.first().unwrap().0, "gpt-4o-mini", "before the break");
    assert_eq!(
        pieces.last().unwrap().0,
        "claude-3-5-haiku-latest",
        "after the break, the model that answered"
    );
    gw.shutdown().await;
}

/// OpenAI's refusal of a prompt: a 400 with code `content_filter`.
fn content_filter() -> Fault {
    Fault::Status {
        status: 400,
        error_type: Some("invalid_request_error".into()),
        message: Some(
            "The response was filtered due to the prompt triggering the content management policy."
                .into(),
        ),
        code: Some("content_filter".into()),
        retry: Default::default(),
    }
}

#[tokio::test]
async fn a_group_returns_a_refusal_unless_its_policy_fails_over() {
    let (sim, gw) = start(|_| {}).await;
    sim.set_faults(Provider::OpenAi, vec![FaultRule::always(content_filter())]);
    let reply = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "content_filtered");
    assert_eq!(sim.requests_for(Provider::Anthropic).len(), 0);

    let (sim, gw) = start(|c| c.groups[0].content_filter = ContentFilterConfig::Failover).await;
    sim.set_faults(Provider::OpenAi, vec![FaultRule::always(content_filter())]);
    let reply = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    assert_eq!(
        sim.requests_for(Provider::OpenAi).len(),
        1,
        "a refusal is not retried"
    );
}

#[test]
fn a_group_reads_its_content_filter_policy() {
    let text = r#"
        [[targets]]
        name = "a"
        provider = "openai"
        model = "gpt-4o"

        [[groups]]
        name = "chat"
        targets = ["a"]
        content_filter = "failover"
    "#;
    let config = Config::from_toml(text).expect("valid");
    assert_eq!(
        config.groups[0].content_filter,
        ContentFilterConfig::Failover
    );
    let bad = text.replace("\"failover\"", "\"maybe\"");
    assert!(Config::from_toml(&bad).is_err());
}

async fn chat_with(addr: SocketAddr, headers: &[(&str, &str)], body: &Value) -> Reply {
    let body = serde_json::to_vec(body).expect("json");
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(addr, "POST", "/v1/chat/completions", &all, &body).await
}

#[tokio::test]
async fn a_cached_answer_is_served_without_an_upstream_call() {
    let (sim, gw) = start(|c| {
        c.cache = Some(seawall_gateway::CacheConfig {
            ttl: Duration::from_secs(600),
            stale_if_error: None,
            max_bytes: 1 << 20,
        });
    })
    .await;
    let addr = gw.local_addr();
    let first = chat_with(addr, &[], &hello(false)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-seawall-cache"), Some("miss"));
    let second = chat_with(addr, &[], &hello(false)).await;
    assert_eq!(second.header("x-seawall-cache"), Some("hit"));
    assert_eq!(
        second.json()["choices"][0]["message"]["content"],
        first.json()["choices"][0]["message"]["content"]
    );
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 1);

    // The caller may ask for a fresh answer.
    let fresh = chat_with(addr, &[("cache-control", "no-cache")], &hello(false)).await;
    assert_eq!(fresh.header("x-seawall-cache"), Some("miss"));
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 2);

    // A streamed request is answered from the cache as a stream.
    let streamed = chat_with(addr, &[], &hello(true)).await;
    assert_eq!(streamed.header("x-seawall-cache"), Some("hit"));
    assert_eq!(streamed.events().last(), Some(&"[DONE]"));
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_makes_retries_one_call_and_refuses_reuse() {
    let (sim, gw) = start(|c| {
        c.idempotency = Some(seawall_gateway::IdempotencyConfig {
            ttl: Duration::from_secs(3600),
        });
    })
    .await;
    let addr = gw.local_addr();
    let key = [("idempotency-key", "order-42")];
    let first = chat_with(addr, &key, &hello(false)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let retry = chat_with(addr, &key, &hello(false)).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("x-seawall-cache"), Some("replayed"));
    assert_eq!(
        retry.json()["choices"][0]["message"]["content"],
        first.json()["choices"][0]["message"]["content"]
    );
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 1);

    let other =
        json!({"model": "demo", "messages": [{"role": "user", "content": "something else"}]});
    let reused = chat_with(addr, &key, &other).await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.json()["error"]["code"], "idempotency_key_conflict");
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 1, "nothing sent");

    let long = "k".repeat(300);
    let bad = chat_with(addr, &[("idempotency-key", &long)], &hello(false)).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["code"], "invalid_idempotency_key");
}

#[tokio::test]
async fn upstream_error_text_that_echoes_a_key_is_not_relayed() {
    let upstream = "sk-proj-Zq81mfW2xkqPp7Lr0aVb3cDe5FgHiJ";
    let sim = Simulator::builder().start().await.unwrap();
    let mut config = seawall_gateway::demo_config(&sim);
    for t in &mut config.targets {
        t.api_key_env = Some("UPSTREAM_KEY".into());
    }
    let gw = seawall_gateway::Gateway::builder(config)
        .env("UPSTREAM_KEY", upstream)
        .build()
        .unwrap()
        .listen("127.0.0.1:0".parse().unwrap())
        .serve()
        .await
        .unwrap();
    // OpenAI's own 401 wording shows the key's start and end; a proxy echoes it whole.
    let shown = format!(
        "Incorrect API key provided: {}********{}. You can find your API key at https://platform.openai.com/account/api-keys.",
        &upstream[..8],
        &upstream[upstream.len() - 4..]
    );
    let echoed = format!("upstream said: authorization: Bearer {upstream}");
    for (provider, message) in [
        (Provider::OpenAi, shown),
        (Provider::Anthropic, echoed.clone()),
        (Provider::Gemini, echoed),
    ] {
        sim.set_faults(
            provider,
            vec![FaultRule::always(Fault::Status {
                status: 401,
                error_type: None,
                message: Some(message),
                code: None,
                retry: Default::default(),
            })],
        );
    }
    for stream in [false, true] {
        let reply = chat(gw.local_addr(), hello(stream)).await;
        assert_eq!(reply.status, 502, "{}", reply.body);
        assert!(!reply.body.contains(&upstream[..8]), "{}", reply.body);
        assert!(
            !reply.body.contains(&upstream[upstream.len() - 8..]),
            "{}",
            reply.body
        );
        assert!(reply.body.contains("[redacted]"), "{}", reply.body);
        assert!(
            reply.body.contains("sim-openai"),
            "the attempts are still listed"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_a_huge_unknown_model_is_not_echoed() {
    let (_sim, gw) = start_with(
        |c| {
            c.keys.push(VirtualKeyConfig {
                name: "team".into(),
                key_env: "TEAM_KEY".into(),
                requests_per_minute: None,
                token_budget: None,
                budgets: Vec::new(),
            });
        },
        &[("TEAM_KEY", "vk-team-1234")],
    )
    .await;
    let addr = gw.local_addr();
    let body = serde_json::to_vec(&hello(false)).unwrap();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} vk-team-1234");
        let reply = send(
            addr,
            "POST",
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            &body,
        )
        .await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
    }
    let huge = "m".repeat(100_000);
    let body = serde_json::to_vec(
        &json!({"model": huge, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap();
    let reply = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer vk-team-1234"),
        ],
        &body,
    )
    .await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.len() < 1_000, "{} bytes", reply.body.len());
}

/// One raw HTTP/1.1 exchange, head written as given.
async fn send_raw(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse(&raw)
}

#[tokio::test]
async fn a_page_on_another_site_cannot_spend_a_keyless_loopback_gateway() {
    let (sim, gw) = start(|_| {}).await;
    let addr = gw.local_addr();
    let body = serde_json::to_vec(&hello(false)).unwrap();
    let len = body.len();
    // A cross-site "simple" POST: text/plain, so the browser sends it without asking.
    let simple = send_raw(
        addr,
        &format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\norigin: https://evil.example\r\ncontent-type: text/plain\r\ncontent-length: {len}\r\n\r\n"),
        &body,
    )
    .await;
    assert_eq!(simple.status, 403, "{}", simple.body);
    assert_eq!(simple.json()["error"]["code"], "forbidden_origin");
    // The same without an Origin (a tool, not a browser), still not JSON.
    let plain = send_raw(
        addr,
        &format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: {len}\r\n\r\n"),
        &body,
    )
    .await;
    assert_eq!(plain.status, 415, "{}", plain.body);
    // DNS rebinding: an attacker's name resolving to this loopback address.
    let rebound = send_raw(
        addr,
        &format!("POST /v1/chat/completions HTTP/1.1\r\nhost: attacker.example:{}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n", addr.port()),
        &body,
    )
    .await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert_eq!(rebound.json()["error"]["code"], "forbidden_host");
    let status = send_raw(
        addr,
        "GET /status HTTP/1.1\r\nhost: attacker.example\r\nconnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(status.status, 403);
    // No Host, or two.
    let hostless = send_raw(
        addr,
        &format!("POST /v1/chat/completions HTTP/1.1\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"),
        &body,
    )
    .await;
    assert_eq!(hostless.status, 400, "{}", hostless.body);
    let twice = send_raw(
        addr,
        &format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"),
        &body,
    )
    .await;
    assert_eq!(twice.status, 400, "{}", twice.body);
    assert!(sim.requests().is_empty(), "nothing went upstream");

    // The gateway's own clients are served.
    let ok = chat(addr, hello(false)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn status_and_metrics_name_every_key_so_they_need_the_admin_key() {
    let team = |c: &mut Config| {
        c.keys.push(VirtualKeyConfig {
            name: "team".into(),
            key_env: "TEAM_KEY".into(),
            requests_per_minute: None,
            token_budget: None,
            budgets: Vec::new(),
        });
    };
    // Virtual keys and no admin key: closed.
    let (_sim, gw) = start_with(team, &[("TEAM_KEY", "vk-team-1234")]).await;
    for path in ["/status.json", "/metrics"] {
        let reply = send(gw.local_addr(), "GET", path, &[], b"").await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(!reply.body.contains("team"), "{}", reply.body);
    }
    gw.shutdown().await;

    let (_sim, gw) = start_with(
        |c| {
            team(c);
            c.server.admin_key_env = Some("ADMIN_KEY".into());
        },
        &[
            ("TEAM_KEY", "vk-team-1234"),
            ("ADMIN_KEY", "adm-secret-5678"),
        ],
    )
    .await;
    let addr = gw.local_addr();
    for path in ["/status.json", "/metrics"] {
        let without = send(addr, "GET", path, &[], b"").await;
        assert_eq!(without.status, 401, "{path}");
        let tenant = send(
            addr,
            "GET",
            path,
            &[("authorization", "Bearer vk-team-1234")],
            b"",
        )
        .await;
        assert_eq!(tenant.status, 401, "a tenant's key is not the admin key");
        let admin = send(
            addr,
            "GET",
            path,
            &[("authorization", "bearer adm-secret-5678")],
            b"",
        )
        .await;
        assert_eq!(admin.status, 200, "{path}: {}", admin.body);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn silent_trickling_and_slow_body_clients_are_closed_after_their_timeouts() {
    let (_sim, gw) = start(|c| {
        c.server.header_read_timeout = Duration::from_millis(300);
        c.server.body_read_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = gw.local_addr();
    // Silent, and trickling: headers that never end.
    for opening in [
        &b""[..],
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n",
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(opening).await.unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("closed by the gateway, not by the test's bound");
        assert!(read.is_ok() || read.is_err(), "closed");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }
    // A body that stops halfway.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 100\r\n\r\n{{\"model\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(parse(&raw).status, 408);
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_one_closes() {
    let (_sim, gw) = start(|c| c.server.max_connections = 2).await;
    let addr = gw.local_addr();
    let idle = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = tokio::spawn(chat(addr, hello(false)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served past the cap");
    drop(idle);
    let reply = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn past_the_in_flight_bound_a_call_is_refused_before_its_body_is_read() {
    let (sim, gw) = start(|c| c.server.max_in_flight = 1).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(
            1,
            Fault::StallAfter {
                events: 2,
                ms: 60_000,
            },
        )],
    );
    let addr = gw.local_addr();
    // A stream that holds its slot while it is open.
    let mut open = open_chat(addr, &hello(true), &[]).await;
    let mut first = [0u8; 256];
    let n = open.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));

    let refused = chat(addr, hello(false)).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json()["error"]["code"], "overloaded");

    // The slot comes back when the stream goes.
    drop(open);
    let mut served = None;
    for _ in 0..100 {
        let reply = chat(addr, hello(false)).await;
        if reply.status == 200 {
            served = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served.is_some(), "served once the stream was dropped");
}

#[tokio::test]
async fn a_request_with_both_content_length_and_chunked_encoding_smuggles_nothing() {
    let (sim, gw) = start(|_| {}).await;
    let addr = gw.local_addr();
    let inner = serde_json::to_string(&hello(false)).unwrap();
    // The body, read by length, ends early; read as chunks, it carries a second request.
    let smuggled = format!(
        "0\r\n\r\nPOST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let reply = send_raw(addr, &head, smuggled.as_bytes()).await;
    assert!(reply.status >= 400, "{} {}", reply.status, reply.body);
    assert!(
        sim.requests().is_empty(),
        "neither request reached the upstream"
    );
}

#[tokio::test]
async fn a_stream_still_open_when_the_shutdown_grace_runs_out_ends_with_an_error_event() {
    let demo = Demo::start(|_| {}, |b| b).await.expect("demo");
    let sim = demo.simulator;
    let gw = demo
        .gateway
        .listen("127.0.0.1:0".parse().unwrap())
        .shutdown_grace(Duration::from_millis(200))
        .serve()
        .await
        .expect("serve");
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter {
            events: 2,
            ms: 60_000,
        })],
    );
    let addr = gw.local_addr();
    let call = tokio::spawn(chat(addr, hello(true)));
    while sim.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    gw.shutdown().await;
    let reply = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the stream ended")
        .unwrap();
    assert_eq!(reply.status, 200);
    let events = reply.events();
    assert!(!events.contains(&"[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().expect("events")).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
}

/// The demo gateway with one target, the simulator's OpenAI API, that follows the
/// provider's headers with `max_wait`; the simulator allows one request per `window_ms`.
async fn start_following_headers(max_wait: Duration, window_ms: u64) -> (Simulator, GatewayHandle) {
    let (sim, gw) = start(|c| {
        c.groups[0].targets = vec!["sim-openai".to_owned()];
        let target = &mut c.targets[0];
        target.follow_provider_headers = true;
        target.max_wait = Some(max_wait);
    })
    .await;
    sim.set_quota(
        Provider::OpenAi,
        seawall_sim::QuotaConfig {
            requests: 1,
            tokens: 1_000_000,
            window_ms,
            ..seawall_sim::QuotaConfig::default()
        },
    );
    (sim, gw)
}

/// A target that follows the provider's headers sends nothing the provider has said it
/// will refuse: with no request left until the reset, the next call is refused here, with
/// `retry-after` saying how long is actually left, and never reaches the provider.
#[tokio::test]
async fn the_provider_headers_hold_calls_back_and_retry_after_says_for_how_long() {
    let (sim, gw) = start_following_headers(Duration::from_secs(1), 60_000).await;
    let first = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(first.status, 200, "{}", first.body);

    let second = chat(gw.local_addr(), hello(false)).await;
    assert!(matches!(second.status, 429 | 503), "{}", second.body);
    let retry_after: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (55..=61).contains(&retry_after),
        "retry-after {retry_after}"
    );
    assert_eq!(
        sim.requests_for(Provider::OpenAi).len(),
        1,
        "the refused call never reached the provider"
    );
}

/// A call that can wait for the provider's reset within `max_wait` waits for it and is
/// answered, instead of being refused or sent to collect a 429.
#[tokio::test]
async fn a_call_that_fits_after_the_reset_waits_for_it() {
    let (sim, gw) = start_following_headers(Duration::from_secs(5), 400).await;
    let first = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let started = std::time::Instant::now();
    let second = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited {:?} for the reset",
        started.elapsed()
    );
    assert_eq!(
        sim.requests_for(Provider::OpenAi).len(),
        2,
        "no call was sent to collect a 429"
    );
}

/// A provider that asks for an absurd wait (more seconds than a clock can add) is parked,
/// not a panic: the call fails over, the gateway keeps answering. Found by the `hints` fuzz
/// target.
#[tokio::test]
async fn an_absurd_retry_after_fails_over_without_a_panic() {
    use seawall_sim::{RateLimitKind, RetryAfter, RetryHeaders};
    let (sim, gw) = start(|_| {}).await;
    for retry_after in ["11406509395579377545", "1e300", "99999999999999999999999"] {
        sim.set_faults(
            Provider::OpenAi,
            vec![FaultRule::always(Fault::RateLimited {
                limit: RateLimitKind::Requests,
                retry: RetryHeaders {
                    retry_after: Some(RetryAfter::Raw(retry_after.into())),
                    ..RetryHeaders::default()
                },
            })],
        );
        let reply = chat(gw.local_addr(), hello(false)).await;
        assert_eq!(reply.status, 200, "{retry_after}: {}", reply.body);
        assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_callers_traceparent_reaches_every_target_tried_and_an_invalid_one_none() {
    let (sim, gw) = start(|c| c.targets[0].max_attempts = Some(1)).await;
    let addr = gw.local_addr();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // The first target fails once: the call goes on to the next, with the same context.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::status(500))],
    );
    let body = serde_json::to_vec(&hello(false)).unwrap();
    let reply = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("traceparent", traceparent)],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sent: Vec<_> = sim.requests();
    assert_eq!(sent.len(), 2, "a failed attempt and the failover");
    for request in &sent {
        assert_eq!(request.header("traceparent"), Some(traceparent));
    }

    let reply = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("traceparent", "00-not-a-trace-01")],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200);
    let last = sim.requests().pop().unwrap();
    assert_eq!(last.header("traceparent"), None);
    gw.shutdown().await;
}
