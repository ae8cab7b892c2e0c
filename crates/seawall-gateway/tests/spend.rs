//! Spending through the gateway: key budgets that a huge prompt or a burst of concurrent
//! calls cannot overshoot, cost and budget headers, streams abandoned by their client,
//! the downgrade group, per-request caps, alerts to a webhook and the usage report.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seawall_gateway::{AlertConfig, Config, GroupConfig, KeyBudgetConfig, VirtualKeyConfig};
use seawall_sim::{Fault, FaultRule, Provider};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

mod support;
use support::{Reply, open_chat, send, start_with};

const KEY: &str = "vk-team";
const ADMIN: &str = "admin-secret";

/// The demo gateway with one key, `team`, whose budgets are `budgets`, and an admin key.
fn keyed(config: &mut Config, budgets: Vec<KeyBudgetConfig>) {
    config.keys.push(VirtualKeyConfig {
        name: "team".into(),
        key_env: "TEAM_KEY".into(),
        requests_per_minute: None,
        token_budget: None,
        budgets,
    });
    config.server.admin_key_env = Some("ADMIN_KEY".into());
}

const ENV: &[(&str, &str)] = &[("TEAM_KEY", KEY), ("ADMIN_KEY", ADMIN)];

fn budget(window: &str, tokens: Option<u64>, usd: Option<f64>) -> KeyBudgetConfig {
    serde_json::from_value(json!({ "window": window, "tokens": tokens, "usd": usd })).unwrap()
}

async fn call(addr: SocketAddr, body: &Value) -> Reply {
    let auth = format!("Bearer {KEY}");
    let body = serde_json::to_vec(body).unwrap();
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &body,
    )
    .await
}

async fn admin(addr: SocketAddr, path: &str) -> Value {
    let auth = format!("Bearer {ADMIN}");
    send(addr, "GET", path, &[("authorization", &auth)], b"")
        .await
        .json()
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

/// Sends a chat call for the key over a raw connection, left open for the caller to read
/// from, or to drop.
async fn open_call(addr: SocketAddr, stream: bool) -> TcpStream {
    let auth = format!("Bearer {KEY}");
    open_chat(addr, &ask("demo", stream), &[("authorization", &auth)]).await
}

/// Sends a call and hangs up once the reply holds `after`.
async fn leave_after(addr: SocketAddr, stream: bool, after: &str) {
    let mut socket = open_call(addr, stream).await;
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains(after) {
        let mut chunk = [0u8; 1024];
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the reply ended before {after:?}");
        received.extend_from_slice(&chunk[..n]);
    }
}

/// The key's budget status from `/status`.
async fn key_budgets(addr: SocketAddr) -> Vec<Value> {
    let status = admin(addr, "/status.json").await;
    status["keys"][0]["budgets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_key_budget_refuses_a_huge_prompt_and_a_burst_cannot_overshoot_it() {
    let (sim, gw) = start_with(
        |c| {
            keyed(c, vec![budget("day", Some(3_000), None)]);
            c.server.max_body_bytes = 2_000_000;
            c.budget.default_output_tokens = Some(200);
        },
        ENV,
    )
    .await;
    let addr = gw.local_addr();

    // An 800 KB prompt: refused before it is sent.
    let huge = "lorem ipsum ".repeat(800_000 / 12);
    let refused = call(
        addr,
        &json!({"model": "demo", "messages": [{"role": "user", "content": huge}]}),
    )
    .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "budget_exceeded");
    assert!(sim.requests().is_empty(), "nothing was sent upstream");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");

    // 25 calls at once: each reserves its prompt and 200 output tokens.
    let calls: Vec<_> = (0..25)
        .map(|_| tokio::spawn(async move { call(addr, &ask("demo", false)).await }))
        .collect();
    let mut spent = 0;
    let mut answered = 0;
    for handle in calls {
        let reply = handle.await.unwrap();
        match reply.status {
            200 => {
                answered += 1;
                spent += reply.json()["usage"]["total_tokens"].as_u64().unwrap();
            }
            429 => assert_eq!(reply.json()["error"]["code"], "budget_exceeded"),
            other => panic!("{other}: {}", reply.body),
        }
    }
    assert!((1..25).contains(&answered), "{answered} answered");
    assert!(spent <= 3_000, "{spent} tokens spent");
    assert_eq!(sim.requests().len(), answered);
    let budgets = key_budgets(addr).await;
    assert_eq!(budgets[0]["used"]["tokens"], spent);
    assert_eq!(budgets[0]["limit"]["tokens"], 3_000);
    // Every call that went out carried the output cap it reserved.
    for request in sim.requests() {
        assert_eq!(request.body_json().unwrap()["max_completion_tokens"], 200);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn replies_carry_the_cost_and_what_the_key_has_left() {
    let (_sim, gw) = start_with(|c| keyed(c, vec![budget("day", None, Some(1.0))]), ENV).await;
    let addr = gw.local_addr();
    let reply = call(addr, &ask("demo", false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cost: f64 = reply.header("x-seawall-cost-usd").unwrap().parse().unwrap();
    let body = reply.json();
    assert!(cost > 0.0);
    assert_eq!(body["seawall"]["cost_usd"].as_f64(), Some(cost));
    // gpt-4o-mini: $0.15 in, $0.60 out per million.
    let usage = &body["usage"];
    let expected = usage["prompt_tokens"].as_f64().unwrap() * 0.15e-6
        + usage["completion_tokens"].as_f64().unwrap() * 0.6e-6;
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    let left: f64 = reply
        .header("x-seawall-budget-remaining-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!((left - (1.0 - cost)).abs() < 1e-9, "{left}");
    let reset: u64 = reply
        .header("x-seawall-budget-reset")
        .unwrap()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(reset, (now / 86_400 + 1) * 86_400, "the next UTC midnight");

    // A stream: the usage chunk carries the cost.
    let stream = call(
        addr,
        &json!({"model": "demo", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    let events = stream.events();
    let usage_chunk: Value = serde_json::from_str(events[events.len() - 2]).unwrap();
    assert!(usage_chunk["seawall"]["cost_usd"].as_f64().unwrap() > 0.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_a_stream_early_is_charged_for_what_it_received() {
    let (sim, gw) = start_with(|c| keyed(c, vec![budget("day", Some(100_000), None)]), ENV).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter {
            events: 4,
            ms: 5_000,
        })],
    );
    let addr = gw.local_addr();
    // Read until content arrived, then leave before the end (and before any usage).
    leave_after(addr, true, "\"content\":\"").await;

    let started = std::time::Instant::now();
    loop {
        let budgets = key_budgets(addr).await;
        let used = budgets[0]["used"]["tokens"].as_u64().unwrap();
        // The reservation (prompt + 4,096 output) is replaced by the prompt estimate and
        // the content delivered: more than nothing, far less than reserved.
        if used > 0 && used < 1_000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the abandoned stream was not settled: {budgets:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = admin(addr, "/admin/usage").await;
    assert_eq!(report["days"][0]["by_key"]["team"]["calls"], 1);
    assert!(
        report["days"][0]["by_key"]["team"]["output_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_call_the_budget_refuses_goes_to_the_downgrade_group() {
    let (sim, gw) = start_with(
        |c| {
            // `smart` answers with gpt-4o ($2.50 / $10), `demo` at most $0.80 / $4.
            let mut smart = c.targets[0].clone();
            smart.name = "sim-openai-4o".into();
            smart.model = "gpt-4o".into();
            c.targets.push(smart);
            let mut group: GroupConfig = c.groups[0].clone();
            group.name = "smart".into();
            group.targets = vec!["sim-openai-4o".into()];
            c.groups.push(group);
            c.budget.downgrade_group = Some("demo".into());
            c.budget.default_output_tokens = Some(1_000);
            // A gpt-4o call reserves about $0.010025: one fits, then only cheaper ones.
            keyed(c, vec![budget("day", None, Some(0.0101))]);
        },
        ENV,
    )
    .await;
    let addr = gw.local_addr();
    let first = call(addr, &ask("smart", false)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-seawall-model"), Some("gpt-4o"));
    assert_eq!(first.header("x-seawall-downgraded-from"), None);
    let second = call(addr, &ask("smart", false)).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.header("x-seawall-downgraded-from"), Some("smart"));
    assert_eq!(second.header("x-seawall-model"), Some("gpt-4o-mini"));
    let models: Vec<Value> = sim
        .requests()
        .iter()
        .map(|r| r.body_json().unwrap()["model"].clone())
        .collect();
    assert_eq!(models, [json!("gpt-4o"), json!("gpt-4o-mini")]);
    gw.shutdown().await;
}

#[tokio::test]
async fn per_request_caps_answer_400_before_anything_is_sent() {
    let (sim, gw) = start_with(
        |c| {
            keyed(c, Vec::new());
            c.budget.max_input_tokens = Some(100);
            c.budget.max_output_tokens = Some(50);
        },
        ENV,
    )
    .await;
    let addr = gw.local_addr();
    let long = "word ".repeat(1_000);
    let refused = call(
        addr,
        &json!({"model": "demo", "messages": [{"role": "user", "content": long}]}),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "request_cap_exceeded");
    assert_eq!(refused.json()["error"]["param"], "messages");
    assert!(sim.requests().is_empty());

    // Above the output cap: clamped (the default policy).
    let clamped = call(
        addr,
        &json!({"model": "demo", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(clamped.status, 200, "{}", clamped.body);
    assert_eq!(
        sim.requests()[0].body_json().unwrap()["max_completion_tokens"],
        50
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn alerts_reach_the_webhook_with_a_retry_and_the_usage_report_adds_up() {
    let (url, bodies) = support::webhook::receiver(true).await;
    let (_sim, gw) = start_with(
        |c| {
            keyed(c, vec![budget("month", Some(1_000_000), None)]);
            c.budget.alert_webhook = Some(url);
            c.alerts.push(
                serde_json::from_value::<AlertConfig>(json!({ "call_usd": 0.000_000_1 })).unwrap(),
            );
        },
        ENV,
    )
    .await;
    let addr = gw.local_addr();
    let reply = call(addr, &ask("demo", false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The first POST is answered 500, the retry (a second later) 200.
    let started = std::time::Instant::now();
    while bodies.lock().unwrap().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no retry arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies[0], bodies[1], "the retry sends the same alert");
    assert_eq!(bodies[0]["kind"], "expensive_call");
    assert_eq!(bodies[0]["model"], "gpt-4o-mini");
    let metrics = send(
        addr,
        "GET",
        "/metrics",
        &[("authorization", &format!("Bearer {ADMIN}"))],
        b"",
    )
    .await
    .body;
    assert!(
        metrics.contains("seawall_gateway_alerts_total{kind=\"expensive_call\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("seawall_gateway_alert_webhook_total{result=\"delivered\"} 1\n"),
        "{metrics}"
    );

    let report = admin(addr, "/admin/usage").await;
    let today = &report["days"][0];
    let usage = &reply.json()["usage"];
    assert_eq!(today["by_key"]["team"]["calls"], 1);
    assert_eq!(
        today["by_key"]["team"]["input_tokens"],
        usage["prompt_tokens"]
    );
    assert_eq!(
        today["by_model"]["gpt-4o-mini"]["output_tokens"],
        usage["completion_tokens"]
    );
    assert_eq!(today["by_target"]["sim-openai"]["calls"], 1);
    let cost: f64 = reply.header("x-seawall-cost-usd").unwrap().parse().unwrap();
    assert!((today["by_key"]["team"]["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
    // The report is for the admin only.
    let anonymous = send(addr, "GET", "/admin/usage", &[], b"").await;
    assert_eq!(anonymous.status, 401);
    gw.shutdown().await;
}

#[test]
fn spend_settings_that_make_no_sense_name_their_key() {
    let env = |_: &str| Some("x".to_owned());
    let base = r#"
        [[targets]]
        name = "a"
        provider = "openai"
        model = "gpt-4o"
        api_key_env = "K"
        [[groups]]
        name = "g"
        targets = ["a"]
        [[groups]]
        name = "p-*"
        targets = ["a"]
    "#;
    let check = |extra: &str| {
        Config::from_toml(&format!("{base}\n{extra}"))
            .and_then(|c| c.validate(&env))
            .err()
            .map(|e| e.key)
    };
    let key =
        |budgets: &str| format!("[[keys]]\nname = \"k\"\nkey_env = \"V\"\nbudgets = [{budgets}]");
    assert_eq!(check(&key(r#"{ window = "day", tokens = 5 }"#)), None);
    assert_eq!(
        check(&key(r#"{ window = "week", tokens = 5 }"#)).as_deref(),
        Some("keys[0].budgets[0].window")
    );
    assert_eq!(
        check(&key(r#"{ window = "day", tokens = 5, usd = 1.0 }"#)).as_deref(),
        Some("keys[0].budgets[0]")
    );
    assert_eq!(
        check(&key(r#"{ window = "day", usd = -1.0 }"#)).as_deref(),
        Some("keys[0].budgets[0].usd")
    );
    assert_eq!(
        check("[budget]\ndowngrade_group = \"p-*\"").as_deref(),
        Some("budget.downgrade_group"),
        "a pattern is not a group a call can be sent to"
    );
    assert_eq!(
        check("[budget]\nutc_offset = \"2h\"").as_deref(),
        Some("budget.utc_offset")
    );
    assert_eq!(
        check("[budget]\nalert_webhook = \"ftp://x\"").as_deref(),
        Some("budget.alert_webhook")
    );
    assert_eq!(
        check("[[alerts]]\nwindow = \"day\"").as_deref(),
        Some("alerts[0]")
    );
    assert_eq!(
        check("[[alerts]]\ncall_usd = 1.0\nwindow = \"day\"").as_deref(),
        Some("alerts[0].window")
    );
    assert_eq!(check("[[alerts]]\nbreaker_open = true"), None);
    assert_eq!(check("[[alerts]]\nqueue_length = 20"), None);
    assert_eq!(
        check("[[alerts]]\nbreaker_open = true\ncall_usd = 1.0").as_deref(),
        Some("alerts[0]")
    );
    assert_eq!(
        check("[[alerts]]\nqueue_length = 0").as_deref(),
        Some("alerts[0].queue_length")
    );
    assert_eq!(
        check("[prices.\"x\"]\ninput = -1.0\noutput = 1.0").as_deref(),
        Some("prices.\"x\".input")
    );
}

/// Alerts are logged to stderr by a task of their own: a gateway whose stderr nobody reads
/// (a full pipe) keeps answering, where writing each alert from the call's own thread would
/// block the server once the pipe's buffer is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_does_not_stop_the_gateway() {
    use std::process::{Command, Stdio};
    use tokio::io::AsyncBufReadExt;

    let sim = seawall_sim::Simulator::builder().start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("seawall-spend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [server]
            threads = 1
            [[targets]]
            name = "sim"
            provider = "openai"
            model = "gpt-4o-mini"
            base_url = "{}"
            api_key_env = "SIM_KEY"
            [[groups]]
            name = "chat"
            targets = ["sim"]
            # Every call raises an alert, and every alert is a line on stderr.
            [[alerts]]
            call_usd = 0.0000001
            "#,
            sim.base_url(Provider::OpenAi)
        ),
    )
    .unwrap();
    let mut child =
        tokio::process::Command::from(Command::new(env!("CARGO_BIN_EXE_seawall-gateway")))
            .args([
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .env("SIM_KEY", "sk-sim")
            .stdout(Stdio::piped())
            // Piped and never read: after about 64 KB, a blocking write would hang.
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the gateway's address");
        if let Some(url) = line.strip_prefix("seawall-gateway listening on http://") {
            break url.parse().unwrap();
        }
    };
    let body = serde_json::to_vec(&ask("chat", false)).unwrap();
    // About 250 bytes per alert line: 1,000 calls write four times a pipe's buffer.
    for i in 0..1_000 {
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            send(addr, "POST", "/v1/chat/completions", &[], &body),
        )
        .await
        .unwrap_or_else(|_| panic!("call {i} hung"));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whatever the client does — waits for the whole answer, leaves a stream early, or hangs
/// up while a call is still upstream — what the key's budget counted and what the usage
/// report shows are the same tokens: nothing charged twice, nothing left uncharged.
#[tokio::test]
async fn the_budget_and_the_usage_report_count_the_same_whatever_the_client_does() {
    let (sim, gw) = start_with(
        |c| keyed(c, vec![budget("day", Some(10_000_000), None)]),
        ENV,
    )
    .await;
    let addr = gw.local_addr();
    // Whole answers, streamed and not.
    for stream in [false, true, false, true] {
        assert_eq!(call(addr, &ask("demo", stream)).await.status, 200);
    }
    // Streams left after their first content, while the upstream stalls.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter {
            events: 4,
            ms: 3_000,
        })],
    );
    for _ in 0..3 {
        leave_after(addr, true, "\"content\":\"").await;
    }
    // Calls whose client hangs up while the provider has not answered yet.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::SlowFirstByte { ms: 1_000 })],
    );
    for stream in [false, true] {
        let socket = open_call(addr, stream).await;
        while sim.requests().len() < 8 + usize::from(stream) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(socket);
    }

    // Every call settles; then the two counts agree.
    let started = std::time::Instant::now();
    loop {
        let used = key_budgets(addr).await[0]["used"]["tokens"]
            .as_u64()
            .unwrap();
        let report = admin(addr, "/admin/usage").await;
        let row = &report["days"][0]["by_key"]["team"];
        let reported =
            row["input_tokens"].as_u64().unwrap_or(0) + row["output_tokens"].as_u64().unwrap_or(0);
        if row["calls"] == 9 && used == reported {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "budget {used} vs report {reported} ({row})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.shutdown().await;
}
