//! The status page in a real browser (headless Chromium, from `PATH` as `chromium`): what a
//! person reads there about a target whose breaker opened, the failover it caused, and a
//! key's budget.

use std::net::SocketAddr;
use std::time::Duration;

use seawall_gateway::{Config, VirtualKeyConfig};
use seawall_sim::{Fault, FaultRule, Provider};
use serde_json::json;

mod support;
use support::{chat_as, send, start_with};

const ADMIN: &str = "adm-status-key-42";
const KEY: &str = "vk-status-team";

/// The page's DOM once its script has run, as the browser built it.
async fn rendered(url: &str) -> String {
    // A profile per browser: tests in one process run side by side.
    static BROWSERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = BROWSERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!("seawall-chromium-{}-{n}", std::process::id()));
    let output = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("chromium took over a minute")
        .expect("chromium on PATH (.ci/run installs Debian's package)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn configure(c: &mut Config) {
    c.server.admin_key_env = Some("ADMIN_KEY".into());
    c.keys.push(
        serde_json::from_value::<VirtualKeyConfig>(json!({
            "name": "team",
            "key_env": "TEAM_KEY",
            "budgets": [{"window": "day", "tokens": 100000}],
        }))
        .unwrap(),
    );
    let openai = &mut c.targets[0];
    openai.max_attempts = Some(1);
    openai.breaker_failures = Some(2);
    openai.breaker_cooldown = Some(Duration::from_secs(600));
}

async fn call(addr: SocketAddr) -> u16 {
    let body = json!({"model": "demo", "messages": [{"role": "user", "content": "hello"}]});
    chat_as(addr, KEY, &body).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_an_open_breaker_the_failover_and_the_budget() {
    let (sim, gateway) = start_with(configure, &[("ADMIN_KEY", ADMIN), ("TEAM_KEY", KEY)]).await;
    let addr = gateway.local_addr();
    assert_eq!(call(addr).await, 200);
    // OpenAI fails from now on: two failures open its breaker, and the calls fail over.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    for _ in 0..3 {
        assert_eq!(call(addr).await, 200);
    }

    let page = rendered(&format!("http://{addr}/status#key={ADMIN}")).await;
    // The page read the data: no complaint, the gateway is ready.
    assert_eq!(element(&page, "problem"), "", "{page}");
    assert!(
        element(&page, "state").starts_with("ready · updated"),
        "{page}"
    );
    // The OpenAI target's breaker is open, with the time left of its 600 s break.
    let openai = row(&page, "targets", "sim-openai");
    assert!(openai.contains(">open, 10 min left<"), "{openai}");
    assert!(
        openai.contains("66.7 %"),
        "two of its three attempts failed: {openai}"
    );
    let anthropic = row(&page, "targets", "sim-anthropic");
    assert!(anthropic.contains(">closed<"), "{anthropic}");
    assert!(anthropic.contains("0.0 %"), "{anthropic}");
    // The failovers, newest first: a skip of the open target, then the failures.
    let failover = row(&page, "failovers", "sim-openai");
    assert!(failover.contains("sim-anthropic"), "{failover}");
    // The key's daily budget, with what the calls used.
    let team = row(&page, "keys", "team");
    assert!(team.contains("tokens"), "{team}");
    assert!(
        !page.contains(KEY) && !page.contains(ADMIN),
        "a key in the page"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_admin_key_the_page_says_how_to_open_it_and_shows_nothing() {
    let (_sim, gateway) = start_with(configure, &[("ADMIN_KEY", ADMIN), ("TEAM_KEY", KEY)]).await;
    let addr = gateway.local_addr();
    // The page itself is public and holds no data; its data needs the admin key.
    let page = send(addr, "GET", "/status", &[], b"").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        send(addr, "GET", "/status.json", &[], b"").await.status,
        401
    );

    let page = rendered(&format!("http://{addr}/status")).await;
    assert_eq!(
        element(&page, "problem"),
        "This gateway needs its admin key: open /status#key=&lt;admin key&gt;."
    );
    assert_eq!(element(&page, "state"), "loading…");
    assert!(!page.contains("sim-openai"), "{page}");
    gateway.shutdown().await;
}

/// The text of the `div` with `id` (markup escaped as the DOM serialises it).
fn element<'a>(page: &'a str, id: &str) -> &'a str {
    let open = format!("<div id=\"{id}\">");
    let start = page
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id}: {page}"))
        + open.len();
    let rest = &page[start..];
    &rest[..rest.find("</div>").unwrap()]
}

/// The first row of table body `table` that mentions `text`.
fn row<'a>(page: &'a str, table: &str, text: &str) -> &'a str {
    let start = page
        .find(&format!("<tbody id=\"{table}\">"))
        .unwrap_or_else(|| panic!("no table {table}: {page}"));
    let body = &page[start..];
    let body = &body[..body.find("</tbody>").unwrap()];
    body.split("<tr>")
        .find(|row| row.contains(text))
        .unwrap_or_else(|| panic!("no row with {text} in {table}: {body}"))
}
