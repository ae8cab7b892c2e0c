//! Reloading the config of a running gateway: the new config answers new calls at once,
//! while what the old one counted (budgets spent, open breakers) carries over by name, a
//! config that does not build changes nothing, and a stream begun before finishes whole.
//! The binary re-reads its config file on SIGHUP.

use std::net::SocketAddr;
use std::time::Duration;

use seawall_gateway::{Config, GatewayHandle, GroupConfig, KeyBudgetConfig, VirtualKeyConfig};
use seawall_sim::{Fault, FaultRule, Provider, Simulator};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

mod support;

use support::{Reply, chat, chat_as, hello, open_chat, send, start_with};

const KEY: &str = "vk-team";
const ADMIN: &str = "admin-secret";
const ENV: &[(&str, &str)] = &[("TEAM_KEY", KEY), ("ADMIN_KEY", ADMIN)];

/// One key, `team`, with a daily token budget of `tokens`, and an admin key.
fn keyed(config: &mut Config, tokens: u64) {
    let budget: KeyBudgetConfig =
        serde_json::from_value(json!({ "window": "day", "tokens": tokens })).unwrap();
    config.keys.push(VirtualKeyConfig {
        name: "team".into(),
        key_env: "TEAM_KEY".into(),
        requests_per_minute: None,
        token_budget: None,
        budgets: vec![budget],
    });
    config.server.admin_key_env = Some("ADMIN_KEY".into());
}

/// The demo config over `sim`, changed by `adjust`.
fn config(sim: &Simulator, adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = seawall_gateway::demo_config(sim);
    adjust(&mut config);
    config
}

/// A group named `name` over `targets`, as the demo's group is.
fn group(config: &Config, name: &str, targets: &[&str]) -> GroupConfig {
    let mut group = config.groups[0].clone();
    group.name = name.into();
    group.targets = targets.iter().map(|t| (*t).to_owned()).collect();
    group
}

async fn call_as_team(addr: SocketAddr, model: &str) -> Reply {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hello"}]});
    chat_as(addr, KEY, &body).await
}

/// The team key's budgets, from `/status.json`.
async fn team_budgets(addr: SocketAddr) -> Vec<Value> {
    let auth = format!("Bearer {ADMIN}");
    let status = send(
        addr,
        "GET",
        "/status.json",
        &[("authorization", &auth)],
        b"",
    )
    .await
    .json();
    status["keys"][0]["budgets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn reload(gw: &GatewayHandle, config: Config) {
    let reloaded = gw.reload(config).await.expect("the config reloads");
    assert!(reloaded.ignored.is_empty(), "{:?}", reloaded.ignored);
}

#[tokio::test]
async fn a_budget_spent_before_a_reload_is_still_spent_after() {
    let (sim, gw) = start_with(|c| keyed(c, 100_000), ENV).await;
    let addr = gw.local_addr();
    assert_eq!(call_as_team(addr, "demo").await.status, 200);
    let spent = team_budgets(addr).await[0]["used"]["tokens"].clone();
    assert!(spent.as_u64().unwrap() > 0, "{spent}");

    // A reload that adds a group leaves the key's budget as it was.
    reload(
        &gw,
        config(&sim, |c| {
            keyed(c, 100_000);
            let extra = group(c, "extra", &["sim-gemini"]);
            c.groups.push(extra);
        }),
    )
    .await;
    let budgets = team_budgets(addr).await;
    assert_eq!(budgets[0]["used"]["tokens"], spent);
    assert_eq!(budgets[0]["limit"]["tokens"], 100_000);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_changed_budget_limit_takes_the_new_limit_over_what_was_spent() {
    let (sim, gw) = start_with(|c| keyed(c, 100_000), ENV).await;
    let addr = gw.local_addr();
    assert_eq!(call_as_team(addr, "demo").await.status, 200);
    let spent = team_budgets(addr).await[0]["used"]["tokens"]
        .as_u64()
        .unwrap();

    // The new limit is what was spent: the next call is refused, and nothing is sent.
    reload(&gw, config(&sim, |c| keyed(c, spent))).await;
    let budgets = team_budgets(addr).await;
    assert_eq!(budgets[0]["limit"]["tokens"], spent);
    assert_eq!(budgets[0]["used"]["tokens"], spent);
    let sent = sim.requests_for(Provider::OpenAi).len();
    let refused = call_as_team(addr, "demo").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "budget_exceeded");
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), sent);

    // Raised again, the key calls again.
    reload(&gw, config(&sim, |c| keyed(c, spent + 100_000))).await;
    assert_eq!(call_as_team(addr, "demo").await.status, 200);
    gw.shutdown().await;
}

/// The demo with OpenAI's breaker opening after two failures, for a minute.
fn quick_breaker(config: &mut Config) {
    let openai = &mut config.targets[0];
    openai.max_attempts = Some(1);
    openai.breaker_failures = Some(2);
    openai.breaker_cooldown = Some(Duration::from_secs(60));
}

#[tokio::test]
async fn an_open_breaker_is_still_open_after_a_reload_and_a_changed_one_starts_closed() {
    let (sim, gw) = start_with(quick_breaker, &[]).await;
    let addr = gw.local_addr();
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    for _ in 0..2 {
        assert_eq!(chat(addr, hello(false)).await.status, 200);
    }
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 2);
    // OpenAI is well again, but its breaker is open: the reloaded config still skips it.
    sim.set_faults(Provider::OpenAi, vec![]);
    reload(
        &gw,
        config(&sim, |c| {
            quick_breaker(c);
            let extra = group(c, "extra", &["sim-gemini"]);
            c.groups.push(extra);
        }),
    )
    .await;
    let reply = chat(addr, hello(false)).await;
    assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 2);

    // New breaker settings: a new breaker, closed.
    reload(
        &gw,
        config(&sim, |c| {
            quick_breaker(c);
            c.targets[0].breaker_failures = Some(5);
        }),
    )
    .await;
    let reply = chat(addr, hello(false)).await;
    assert_eq!(reply.header("x-seawall-target"), Some("sim-openai"));
    gw.shutdown().await;
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn an_added_group_answers_and_a_removed_one_is_unknown() {
    let (sim, gw) = start_with(|_| {}, &[]).await;
    let addr = gw.local_addr();
    reload(
        &gw,
        config(&sim, |c| {
            c.groups = vec![group(c, "fresh", &["sim-gemini"])];
        }),
    )
    .await;
    let fresh = chat(addr, ask("fresh")).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.header("x-seawall-target"), Some("sim-gemini"));
    let removed = chat(addr, ask("demo")).await;
    assert_eq!(removed.status, 404, "{}", removed.body);
    let models = send(addr, "GET", "/v1/models", &[], b"").await.json();
    assert_eq!(models["data"][0]["id"], "fresh");
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_invalid_config_is_refused_and_the_running_one_keeps_answering() {
    let (sim, gw) = start_with(|_| {}, &[]).await;
    let addr = gw.local_addr();
    let broken = config(&sim, |c| {
        c.groups = vec![group(c, "demo", &["no-such-target"])];
    });
    let error = gw.reload(broken).await.expect_err("an unknown target");
    assert!(error.to_string().contains("no-such-target"), "{error}");
    let reply = chat(addr, hello(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-openai"));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_server_setting_is_kept_as_started_and_named_as_ignored() {
    let (sim, gw) = start_with(|_| {}, &[]).await;
    let reloaded = gw
        .reload(config(&sim, |c| c.server.max_body_bytes = 10))
        .await
        .expect("reloads");
    assert_eq!(reloaded.ignored, ["[server]"]);
    // The body limit is still the one the gateway started with.
    let reply = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_begun_before_a_reload_finishes_whole_on_its_config() {
    let (sim, gw) = start_with(|_| {}, &[]).await;
    let addr = gw.local_addr();
    let mut stream = open_chat(addr, &hello(true), &[]).await;
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("data:") {
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the reply ended before its first event");
        received.extend_from_slice(&chunk[..n]);
    }
    // The stream's group and target are gone from the new config.
    reload(
        &gw,
        config(&sim, |c| {
            c.targets.retain(|t| t.name == "sim-gemini");
            c.groups = vec![group(c, "other", &["sim-gemini"])];
        }),
    )
    .await;
    stream.read_to_end(&mut received).await.unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(text.contains("x-seawall-target: sim-openai"), "{text}");
    assert_eq!(chat(addr, hello(false)).await.status, 404);
    gw.shutdown().await;
}

/// A config file for the binary: one target on `sim`'s OpenAI API, and a group for each of
/// `groups`.
fn config_file(sim: &Simulator, groups: &[&str]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 1\n\n\
         [[targets]]\nname = \"sim\"\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n\
         base_url = \"{}\"\napi_key_env = \"SIM_KEY\"\n",
        sim.base_url(Provider::OpenAi)
    );
    for group in groups {
        text.push_str(&format!(
            "\n[[groups]]\nname = \"{group}\"\ntargets = [\"sim\"]\n"
        ));
    }
    text
}

/// The next line of `lines` that contains `wanted`, within ten seconds.
async fn line_with(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    wanted: &str,
) -> String {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if line.contains(wanted) {
                return line;
            }
        }
        panic!("stdout ended before a line with {wanted:?}");
    });
    found.await.expect("the line in time")
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_reloads_its_config_file_on_sighup() {
    use tokio::io::AsyncBufReadExt;

    let sim = Simulator::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("seawall-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config_file(&sim, &["first"])).unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_seawall-gateway"))
        .arg("--config")
        .arg(&path)
        .env("SIM_KEY", "sk-sim")
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = line_with(&mut lines, "listening on http://").await;
    let addr: SocketAddr = listening
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(chat(addr, ask("first")).await.status, 200);
    assert_eq!(chat(addr, ask("second")).await.status, 404);

    // A file that does not parse is refused; the running config answers on.
    std::fs::write(&path, "[[targets]\n").unwrap();
    let pid = child.id().unwrap().to_string();
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
    };
    assert!(hup().unwrap().success());
    // The refusal goes to stderr; the next good reload's line shows the signal was taken.
    std::fs::write(&path, config_file(&sim, &["second"])).unwrap();
    assert!(hup().unwrap().success());
    line_with(&mut lines, "config reloaded from").await;
    assert_eq!(chat(addr, ask("second")).await.status, 200);
    assert_eq!(chat(addr, ask("first")).await.status, 404);

    child.start_kill().unwrap();
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
