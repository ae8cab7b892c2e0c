//! The Anthropic Messages and OpenAI Responses dialects at the gateway, against the
//! simulator: the same groups as chat completions, translated both ways, errors in each
//! dialect's shape, pass-through fields only to targets of the client's dialect, token counts.

use seawall_gateway::{Config, GroupConfig, ProviderConfig};
use seawall_sim::{Fault, FaultRule, Provider};
use serde_json::{Value, json};

mod support;
use support::{Reply, send, start};

/// A group over the named demo targets, in that order.
fn group(config: &mut Config, name: &str, targets: &[&str]) {
    let mut group: GroupConfig = config.groups[0].clone();
    group.name = name.to_owned();
    group.targets = targets.iter().map(|t| (*t).to_owned()).collect();
    config.groups.push(group);
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &Value) -> Reply {
    send(addr, "POST", path, &[], body.to_string().as_bytes()).await
}

/// The `data:` payloads of the events named `name` in an SSE body with `event:` lines.
fn named(reply: &Reply, name: &str) -> Vec<Value> {
    reply
        .body
        .split("\n\n")
        .filter_map(|frame| {
            let (event, data) = frame.split_once('\n')?;
            (event.strip_prefix("event: ")? == name)
                .then(|| serde_json::from_str(data.strip_prefix("data: ")?).ok())
                .flatten()
        })
        .collect()
}

fn messages_call(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn an_anthropic_dialect_call_is_answered_by_an_openai_target_without_anthropic_only_fields() {
    let (sim, gw) = start(|_| {}).await;
    let addr = gw.local_addr();
    // The demo group's first target is OpenAI's.
    let mut call = messages_call("demo", false);
    call["top_k"] = json!(5);
    let reply = post(addr, "/v1/messages", &call).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-openai"));
    assert_eq!(reply.header("x-seawall-dropped-fields"), Some("top_k"));
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"][0]["type"], "text");
    assert!(!message["content"][0]["text"].as_str().unwrap().is_empty());
    assert_eq!(message["stop_reason"], "end_turn");
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = sim.requests_for(Provider::OpenAi);
    let sent = sent[0].body_json().unwrap();
    assert!(sent.get("top_k").is_none(), "{sent}");
    assert_eq!(sent["max_completion_tokens"], 64);
    gw.shutdown().await;
}

#[tokio::test]
async fn pass_through_fields_reach_a_target_of_the_clients_dialect() {
    let (sim, gw) = start(|c| group(c, "claude", &["sim-anthropic"])).await;
    let mut call = messages_call("claude", false);
    call["top_k"] = json!(5);
    let reply = post(gw.local_addr(), "/v1/messages", &call).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-dropped-fields"), None);
    let sent = sim.requests_for(Provider::Anthropic)[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["top_k"], 5);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_cut_anthropic_dialect_stream_is_finished_by_an_openai_target() {
    let (sim, gw) = start(|c| {
        group(c, "claude", &["sim-anthropic", "sim-openai"]);
        group(c, "gpt", &["sim-openai"]);
    })
    .await;
    sim.set_faults(
        Provider::Anthropic,
        vec![FaultRule::always(Fault::CutAfter { events: 4 })],
    );
    let reply = post(
        gw.local_addr(),
        "/v1/messages",
        &messages_call("claude", true),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/event-stream"),
        "{}",
        reply.body
    );
    assert!(named(&reply, "error").is_empty(), "{}", reply.body);
    assert_eq!(named(&reply, "message_start").len(), 1);
    assert_eq!(named(&reply, "message_stop").len(), 1, "{}", reply.body);
    let delta = &named(&reply, "message_delta")[0];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    let text: String = named(&reply, "content_block_delta")
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    // The OpenAI target answered from the start; the client got its answer once, joined
    // after what the Anthropic target had delivered: the same text the OpenAI target gives
    // on its own.
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 1);
    sim.clear_log();
    let whole = send(
        gw.local_addr(),
        "POST",
        "/v1/chat/completions",
        &[],
        json!({"model": "gpt", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(
        whole.json()["choices"][0]["message"]["content"],
        text.as_str()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn errors_come_in_each_dialects_shape() {
    let (sim, gw) = start(|_| {}).await;
    let addr = gw.local_addr();

    let reply = post(addr, "/v1/messages", &messages_call("no-such-model", false)).await;
    assert_eq!(reply.status, 404);
    let body = reply.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");

    let mut invalid = messages_call("demo", false);
    invalid.as_object_mut().unwrap().remove("max_tokens");
    let reply = post(addr, "/v1/messages", &invalid).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );

    let reply = post(
        addr,
        "/v1/responses",
        &json!({"model": "no-such-model", "input": "hi"}),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "model_not_found");

    // Every target fails: the Anthropic-dialect client sees Anthropic's overload shape.
    for provider in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        sim.set_faults(provider, vec![FaultRule::always(Fault::status(503))]);
    }
    let reply = post(addr, "/v1/messages", &messages_call("demo", false)).await;
    assert!(reply.status >= 500, "{}", reply.body);
    assert_eq!(reply.json()["type"], "error");
    assert!(
        ["overloaded_error", "api_error"]
            .contains(&reply.json()["error"]["type"].as_str().unwrap()),
        "{}",
        reply.body
    );
    // Nothing was sent upstream for the invalid or unknown calls.
    assert_eq!(sim.requests().len(), 3 * 2, "two attempts per target");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_responses_dialect_stream_fails_over_and_ends_completed() {
    let (sim, gw) = start(|_| {}).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500))],
    );
    let reply = post(
        gw.local_addr(),
        "/v1/responses",
        &json!({"model": "demo", "input": "hello", "stream": true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    let completed = named(&reply, "response.completed");
    assert_eq!(completed.len(), 1, "{}", reply.body);
    let response = &completed[0]["response"];
    assert_eq!(response["status"], "completed");
    assert!(response["usage"]["output_tokens"].as_u64().unwrap() > 0);
    // Sequence numbers count every event from 0.
    let numbers: Vec<u64> = reply
        .body
        .split("\n\n")
        .filter_map(|frame| frame.split_once("\ndata: "))
        .map(|(_, data)| {
            serde_json::from_str::<Value>(data).unwrap()["sequence_number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>());
    gw.shutdown().await;
}

#[tokio::test]
async fn token_counts_are_exact_on_a_counting_target_and_estimated_otherwise() {
    let (sim, gw) = start(|c| {
        group(c, "claude", &["sim-anthropic"]);
        group(c, "gpt", &["sim-openai"]);
    })
    .await;
    let addr = gw.local_addr();
    let count =
        json!({"model": "claude", "messages": [{"role": "user", "content": "hello there"}]});
    let reply = post(addr, "/v1/messages/count_tokens", &count).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-token-count"), Some("exact"));
    let exact = reply.json()["input_tokens"].as_u64().unwrap();
    // The same request's usage, as the provider reports it.
    let mut call = count.clone();
    call["max_tokens"] = json!(16);
    let answered = post(addr, "/v1/messages", &call).await;
    assert_eq!(
        answered.json()["usage"]["input_tokens"].as_u64(),
        Some(exact)
    );
    let counted = sim.requests_for(Provider::Anthropic);
    assert!(counted[0].path.ends_with("/v1/messages/count_tokens"));
    assert_eq!(
        counted[0].body_json().unwrap()["model"],
        "claude-3-5-haiku-latest",
        "counted for the target's model"
    );

    let mut count = count;
    count["model"] = json!("gpt");
    let reply = post(addr, "/v1/messages/count_tokens", &count).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-token-count"), Some("estimate"));
    assert!(reply.json()["input_tokens"].as_u64().unwrap() > 0);
    assert!(
        sim.requests_for(Provider::OpenAi).is_empty(),
        "nothing sent"
    );

    let reply = post(
        addr,
        "/v1/responses/input_tokens",
        &json!({"model": "claude", "input": "hello there"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["object"], "response.input_tokens");
    gw.shutdown().await;
}

#[tokio::test]
async fn an_azure_openai_target_answers_through_its_deployment_url() {
    let (sim, gw) = start(|c| {
        let mut azure = c.targets[0].clone();
        azure.name = "azure".to_owned();
        azure.provider = ProviderConfig::AzureOpenai;
        azure.model = "my-gpt-deployment".to_owned();
        // The resource's endpoint: the simulator's root.
        azure.base_url = azure
            .base_url
            .as_deref()
            .and_then(|url| url.strip_suffix("/openai/v1"))
            .map(str::to_owned);
        azure.api_version = Some("2024-10-21".to_owned());
        c.targets.push(azure);
        group(c, "azure", &["azure"]);
    })
    .await;
    let reply = send(
        gw.local_addr(),
        "POST",
        "/v1/chat/completions",
        &[],
        json!({"model": "azure", "messages": [{"role": "user", "content": "hello"}]})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sent = &sim.requests_for(Provider::OpenAi)[0];
    assert!(
        sent.path.starts_with(
            "/openai/deployments/my-gpt-deployment/chat/completions?api-version=2024-10-21"
        ),
        "{}",
        sent.path
    );
    assert!(sent.header("api-key").is_some());
    assert!(sent.header("authorization").is_none());
    gw.shutdown().await;
}
