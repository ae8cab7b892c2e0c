//! The access log: one JSON line per chat call with what an operator looks for (the
//! request id included), written when a stream ends, and never a key, even at trace
//! level, whichever header carried it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use seawall_gateway::VirtualKeyConfig;
use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;

mod support;
use support::{Reply, chat_as, send, start_with};

const KEY: &str = "vk-access-secret-0123";

/// Every line the subscriber wrote.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn access(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
            .filter(|line| line["target"] == "seawall_gateway::access")
            .collect()
    }
}

async fn call(addr: std::net::SocketAddr, body: Value) -> Reply {
    chat_as(addr, KEY, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_writes_one_json_line_and_no_key_ever() {
    let lines = Lines::default();
    // Trace level: every event of every layer, to look for keys in all of them.
    tracing::subscriber::set_global_default(seawall_gateway::access::subscriber(
        "trace",
        lines.clone(),
    ))
    .unwrap();
    let (_sim, gateway) = start_with(
        |c| {
            c.keys.push(VirtualKeyConfig {
                name: "team-a".into(),
                key_env: "ACCESS_KEY".into(),
                requests_per_minute: Some(4),
                token_budget: None,
                budgets: Vec::new(),
            });
        },
        &[("ACCESS_KEY", KEY)],
    )
    .await;
    let addr = gateway.local_addr();
    let ask = |stream: bool| json!({"model": "demo", "stream": stream, "messages": [{"role": "user", "content": "hello"}]});

    assert_eq!(call(addr, ask(false)).await.status, 200);
    assert_eq!(call(addr, ask(true)).await.status, 200);
    let unknown = json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(call(addr, unknown).await.status, 404);
    // The key in `x-api-key` (as Anthropic's SDK sends it), with the client's request id.
    let body = serde_json::to_vec(&ask(false)).unwrap();
    let given = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-api-key", KEY), ("x-request-id", "client-request-9")],
        &body,
    )
    .await;
    assert_eq!(given.status, 200, "{}", given.body);
    assert_eq!(given.header("x-request-id"), Some("client-request-9"));
    // The key's limit of 4 a minute: the fifth call is refused.
    let refused = call(addr, ask(false)).await;
    assert_eq!(refused.status, 429);
    gateway.shutdown().await;

    let access = lines.access();
    assert_eq!(access.len(), 5, "{access:#?}");
    let whole = &access[0];
    assert_eq!(whole["status"], 200);
    assert_eq!(whole["method"], "POST");
    assert_eq!(whole["path"], "/v1/chat/completions");
    assert_eq!(whole["key"], "team-a");
    assert_eq!(whole["model"], "demo");
    assert_eq!(whole["stream"], false);
    assert!(whole["answered_by"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(whole["targets"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(whole["attempts"], 1);
    assert!(whole["latency_ms"].as_f64().is_some());
    assert!(whole["input_tokens"].as_u64().is_some_and(|n| n > 0));
    assert!(whole["output_tokens"].as_u64().is_some_and(|n| n > 0));
    assert!(whole["cost_usd"].as_f64().is_some_and(|c| c > 0.0));
    assert!(whole["timestamp"].as_str().is_some());

    // The stream's line is written when it ends, with its first token and its usage.
    let streamed = &access[1];
    assert_eq!(streamed["stream"], true);
    assert!(streamed["ttft_ms"].as_f64().is_some());
    assert!(streamed["output_tokens"].as_u64().is_some_and(|n| n > 0));
    assert!(streamed["error"].is_null());

    assert_eq!(access[2]["status"], 404);
    assert_eq!(access[2]["error"], "model_not_found");
    assert_eq!(access[3]["status"], 200);
    assert_eq!(access[3]["key"], "team-a");
    assert_eq!(access[3]["request_id"], "client-request-9");
    assert_eq!(access[4]["status"], 429);
    assert_eq!(access[4]["error"], "rate_limit_exceeded");
    // Each line carries the id its reply was sent with; the gateway made those the
    // clients did not send, one per call.
    assert_eq!(
        access[4]["request_id"].as_str(),
        refused.header("x-request-id")
    );
    let ids: std::collections::HashSet<&str> = access
        .iter()
        .map(|line| line["request_id"].as_str().expect("a request_id"))
        .collect();
    assert_eq!(ids.len(), access.len(), "{ids:?}");

    // Neither the virtual key nor the upstream key, in any line of any level.
    let text = lines.text();
    assert!(text.lines().count() > 4);
    assert!(!text.contains(KEY), "a virtual key in the logs");
    assert!(!text.contains("sk-sim"), "an upstream key in the logs");
}
