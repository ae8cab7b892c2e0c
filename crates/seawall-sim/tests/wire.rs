//! Bytes on the wire: bodies, headers and SSE framing of every endpoint, local-server quirks,
//! deterministic replies and prefill, and bad input.

mod common;

use common::*;
use seawall_sim::{Provider, ProviderSettings, Simulator};
use serde_json::{Value, json};

fn go_duration(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || "hms.".contains(c))
        && (s.ends_with("ms") || s.ends_with('s'))
}

fn rfc3339(s: &str) -> bool {
    s.len() == 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}

#[tokio::test]
async fn openai_completion_body_and_headers() {
    let sim = Simulator::builder().seed(3).start().await.unwrap();
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("openai-version"), Some("2020-10-01"));
    assert!(r.header("x-request-id").unwrap().starts_with("req_"));
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("10000000"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("9999999"));
    for h in ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"] {
        assert!(go_duration(r.header(h).unwrap()), "{h}: {:?}", r.header(h));
    }
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    let text = choice["message"]["content"].as_str().unwrap();
    assert_eq!(
        text.split(' ').count(),
        12,
        "default reply is 12 tokens: {text}"
    );
    // Token rule: 3 per message + ceil(5 chars / 4) = 2, + 3 priming.
    assert_eq!(v["usage"]["prompt_tokens"], 8);
    assert_eq!(v["usage"]["completion_tokens"], 12);
    assert_eq!(v["usage"]["total_tokens"], 20);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("9999999980"));
}

#[tokio::test]
async fn openai_stream_framing_usage_and_same_text() {
    let sim = Simulator::builder().start().await.unwrap();
    let full = openai(sim.addr(), OAI_BODY).await.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}"#;
    let r = openai(sim.addr(), body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert!(r.complete, "chunked body ends properly");
    let frames = data_frames(&r.text(), "\n\n");
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let ids: std::collections::HashSet<_> = chunks.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids.len(), 1, "one id for every chunk");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["total_tokens"], 20);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(
            c["usage"],
            Value::Null,
            "usage key present and null before the end"
        );
        assert!(c["obfuscation"].is_string());
    }
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, full);
}

#[tokio::test]
async fn openai_stream_without_include_usage_has_no_usage_and_obfuscation_can_be_off() {
    let sim = Simulator::builder().start().await.unwrap();
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false},"messages":[{"role":"user","content":"x"}]}"#;
    let r = openai(sim.addr(), body).await;
    let frames = data_frames(&r.text(), "\n\n");
    for f in &frames[..frames.len() - 1] {
        let c: Value = serde_json::from_str(f).unwrap();
        assert!(c.get("usage").is_none(), "{f}");
        assert!(c.get("obfuscation").is_none(), "{f}");
        assert!(!c["choices"].as_array().unwrap().is_empty());
    }
}

#[tokio::test]
async fn openai_tool_call_and_fragments() {
    let sim = Simulator::builder().start().await.unwrap();
    let tools = r#""tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}}]"#;
    let body =
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"weather?"}}],{tools}}}"#);
    let v = openai(sim.addr(), &body).await.json();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string() && args["days"].is_u64());

    let body = format!(
        r#"{{"model":"m","stream":true,"messages":[{{"role":"user","content":"weather?"}}],{tools}}}"#
    );
    let r = openai(sim.addr(), &body).await;
    let frames = data_frames(&r.text(), "\n\n");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["index"], 0);
    assert_eq!(first["function"]["name"], "get_weather");
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    let mut joined = String::new();
    for c in &chunks[1..chunks.len() - 1] {
        let tc = &c["choices"][0]["delta"]["tool_calls"][0];
        assert!(
            tc.get("id").is_none() && tc["function"].get("name").is_none(),
            "id/name only first"
        );
        joined.push_str(tc["function"]["arguments"].as_str().unwrap());
    }
    assert_eq!(joined, call["function"]["arguments"].as_str().unwrap());
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // After the tool result the model answers in text.
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"weather?"}},{{"role":"assistant","content":null,"tool_calls":[{{"id":"c","type":"function","function":{{"name":"get_weather","arguments":"{{}}"}}}}]}},{{"role":"tool","tool_call_id":"c","content":"sunny"}}],{tools}}}"#
    );
    let v = openai(sim.addr(), &body).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn openai_models_list() {
    let sim = Simulator::builder().start().await.unwrap();
    let r = send(sim.addr(), "GET", "/openai/v1/models", &[OAI_AUTH], "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "model");
}

#[tokio::test]
async fn anthropic_message_both_auth_forms_and_headers() {
    let sim = Simulator::builder().start().await.unwrap();
    for (auth, version) in [
        (("x-api-key", "sk-ant"), "2023-06-01"),
        (("authorization", "Bearer sk-ant"), "2026-10-21"),
    ] {
        let r = send(
            sim.addr(),
            "POST",
            "/anthropic/v1/messages?beta=true",
            &[auth, ("anthropic-version", version), JSON],
            ANT_BODY,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("request-id").unwrap().starts_with("req_"));
        assert!(r.header("anthropic-organization-id").is_some());
        let mut n = 0;
        for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
            for part in ["limit", "remaining", "reset"] {
                let name = format!("anthropic-ratelimit-{kind}-{part}");
                let value = r.header(&name).unwrap_or_else(|| panic!("{name} missing"));
                if part == "reset" {
                    assert!(rfc3339(value), "{name}: {value}");
                }
                n += 1;
            }
        }
        assert_eq!(n, 12);
        let v = r.json();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        assert_eq!(v["usage"]["input_tokens"], 8);
        assert_eq!(v["usage"]["output_tokens"], 12);
    }
}

#[tokio::test]
async fn anthropic_stream_event_lines_ping_and_cumulative_usage() {
    let sim = Simulator::builder().reply_tokens(5).start().await.unwrap();
    let body = r#"{"model":"claude-x","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello"}]}"#;
    let r = anthropic(sim.addr(), body).await;
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let text = r.text();
    assert!(text.ends_with("\n\n"));
    let mut names = Vec::new();
    let mut text_out = String::new();
    for frame in text.split("\n\n").filter(|f| !f.is_empty()) {
        let (event, data) = frame.split_once('\n').unwrap();
        let name = event
            .strip_prefix("event: ")
            .expect("every frame has an event line");
        let data = data.strip_prefix("data: ").unwrap();
        if name == "ping" {
            assert_eq!(data, r#"{"type": "ping"}"#);
        }
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], name, "event name matches data type");
        if name == "content_block_delta" {
            text_out.push_str(v["delta"]["text"].as_str().unwrap());
        }
        if name == "message_start" {
            assert_eq!(v["message"]["usage"]["input_tokens"], 8);
            assert_eq!(v["message"]["stop_reason"], Value::Null);
        }
        if name == "message_delta" {
            assert_eq!(v["delta"]["stop_reason"], "end_turn");
            assert_eq!(v["usage"]["output_tokens"], 5);
        }
        names.push(name.to_owned());
    }
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(text_out.split(' ').count(), 5);
}

#[tokio::test]
async fn anthropic_count_tokens_and_tool_use() {
    let sim = Simulator::builder().start().await.unwrap();
    let r = send(
        sim.addr(),
        "POST",
        "/anthropic/v1/messages/count_tokens",
        &[
            ("x-api-key", "k"),
            ("anthropic-version", "2023-06-01"),
            JSON,
        ],
        r#"{"model":"claude-x","messages":[{"role":"user","content":"hello"}]}"#,
    )
    .await;
    assert_eq!(r.json(), json!({"input_tokens": 8}));
    let body = r#"{"model":"claude-x","max_tokens":64,"tools":[{"name":"lookup","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],"messages":[{"role":"user","content":"find"}]}"#;
    let v = anthropic(sim.addr(), body).await.json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["name"], "lookup");
    assert!(v["content"][0]["input"]["q"].is_string());
}

#[tokio::test]
async fn gemini_generate_on_both_versions_and_key_forms() {
    let sim = Simulator::builder().start().await.unwrap();
    for (path, headers) in [
        (
            "/gemini/v1/models/gemini-x:generateContent",
            vec![("x-goog-api-key", "AIza"), JSON],
        ),
        (
            "/gemini/v1beta/models/gemini-x:generateContent?key=AIza",
            vec![JSON],
        ),
    ] {
        let r = send(sim.addr(), "POST", path, &headers, GEM_BODY).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=UTF-8")
        );
        assert!(
            r.header("x-ratelimit-limit-requests").is_none(),
            "Gemini sends no rate-limit headers"
        );
        let v = r.json();
        assert_eq!(v["candidates"][0]["content"]["role"], "model");
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        let u = &v["usageMetadata"];
        assert_eq!(u["promptTokenCount"], 8);
        assert_eq!(
            u["totalTokenCount"],
            u["promptTokenCount"].as_u64().unwrap() + u["candidatesTokenCount"].as_u64().unwrap()
        );
        assert_eq!(v["modelVersion"], "gemini-x");
    }
    let log = sim.requests_for(Provider::Gemini);
    assert_eq!(
        log[1].path,
        "/gemini/v1beta/models/gemini-x:generateContent?key=[redacted]"
    );
}

#[tokio::test]
async fn gemini_stream_sse_crlf_and_json_array() {
    let sim = Simulator::builder().reply_tokens(4).start().await.unwrap();
    let r = gemini(sim.addr(), "streamGenerateContent?alt=sse", GEM_BODY).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let frames = data_frames(&r.text(), "\r\n\r\n");
    assert_eq!(frames.len(), 4);
    for (i, f) in frames.iter().enumerate() {
        let v: Value = serde_json::from_str(f).unwrap();
        assert_eq!(
            v["usageMetadata"]["candidatesTokenCount"],
            i + 1,
            "cumulative usage"
        );
        let last = i == 3;
        assert_eq!(v["candidates"][0].get("finishReason").is_some(), last);
    }
    let r = gemini(sim.addr(), "streamGenerateContent", GEM_BODY).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    let v: Value = serde_json::from_slice(&r.body).expect("a JSON array");
    assert_eq!(v.as_array().unwrap().len(), 4);
    let r = gemini(sim.addr(), "countTokens", GEM_BODY).await;
    assert_eq!(r.json()["totalTokens"], 8);
}

#[tokio::test]
async fn replies_are_deterministic_and_prefill_continues_them() {
    let sim = Simulator::builder()
        .seed(11)
        .reply_tokens(10)
        .start()
        .await
        .unwrap();
    let a = anthropic(sim.addr(), ANT_BODY).await.json();
    let b = anthropic(sim.addr(), ANT_BODY).await.json();
    let full = a["content"][0]["text"].as_str().unwrap().to_owned();
    assert_eq!(full, b["content"][0]["text"].as_str().unwrap());
    // Same conversation, same text on another provider.
    let o = openai(sim.addr(), OAI_BODY).await.json();
    assert_eq!(o["choices"][0]["message"]["content"], full.as_str());
    for cut in [3, full.len() / 2, full.len() - 2] {
        let prefill = &full[..cut];
        let body = json!({"model": "claude-x", "max_tokens": 64, "messages": [
            {"role": "user", "content": "hello"}, {"role": "assistant", "content": prefill}]});
        let v = anthropic(sim.addr(), &body.to_string()).await.json();
        let rest = v["content"][0]["text"].as_str().unwrap();
        assert_eq!(format!("{prefill}{rest}"), full);
    }
    // Another seed, another text.
    let other = Simulator::builder()
        .seed(12)
        .reply_tokens(10)
        .start()
        .await
        .unwrap();
    let c = anthropic(other.addr(), ANT_BODY).await.json();
    assert_ne!(c["content"][0]["text"].as_str().unwrap(), full);
}

#[tokio::test]
async fn prefill_rejection_uses_each_providers_400() {
    let sim = Simulator::builder()
        .reject_prefill(Provider::Anthropic, true)
        .reject_prefill(Provider::OpenAi, true)
        .reject_prefill(Provider::Gemini, true)
        .start()
        .await
        .unwrap();
    let body = r#"{"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"The"}]}"#;
    let r = anthropic(sim.addr(), body).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(
        v["error"],
        json!({"type": "invalid_request_error", "message": "This model does not support assistant message prefill. The conversation must end with a user message."})
    );
    assert!(v["request_id"].as_str().unwrap().starts_with("req_"));
    let r = openai(sim.addr(), r#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"The"}]}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = gemini(sim.addr(), "generateContent", r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]},{"role":"model","parts":[{"text":"The"}]}]}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    // Switch off while running.
    sim.set_reject_prefill(Provider::Anthropic, false);
    assert_eq!(anthropic(sim.addr(), body).await.status, 200);
}

#[tokio::test]
async fn local_server_quirks() {
    let sim = Simulator::builder().reply_tokens(8).start().await.unwrap();
    let post = |prefix: &'static str, body: &'static str| {
        let addr = sim.addr();
        async move {
            send(
                addr,
                "POST",
                &format!("/{prefix}/v1/chat/completions"),
                &[JSON],
                body,
            )
            .await
        }
    };
    // Ollama ignores max_completion_tokens, honours max_tokens, reports fp_ollama and 3 usage fields.
    let v = post("ollama", r#"{"model":"llama3.2","max_completion_tokens":2,"messages":[{"role":"user","content":"x"}]}"#).await.json();
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["system_fingerprint"], "fp_ollama");
    assert!(v["usage"].get("prompt_tokens_details").is_none());
    let v = post(
        "ollama",
        r#"{"model":"llama3.2","max_tokens":2,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await
    .json();
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let r = post("ollama", r#"{"model":"llama3.2","messages":[]}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "[] is too short - 'messages'", "type": "invalid_request_error", "param": "messages", "code": null}})
    );
    // vLLM: include_usage defaults to true once stream_options is present; integer error codes.
    let r = post("vllm", r#"{"model":"m","stream":true,"stream_options":{},"messages":[{"role":"user","content":"x"}]}"#).await;
    let frames = data_frames(&r.text(), "\n\n");
    let usage: Value = serde_json::from_str(&frames[frames.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    let r = post("vllm", r#"{"model":"m"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], 400);
    assert_eq!(r.json()["error"]["type"], "BadRequestError");
    // llama.cpp: timings on the final object, its own error shape, /health.
    let v = post(
        "llamacpp",
        r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await
    .json();
    assert_eq!(v["timings"]["predicted_n"], 8);
    let r = post(
        "llamacpp",
        r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
    )
    .await;
    let e = r.json();
    assert_eq!(e["error"]["code"], 400);
    assert_eq!(e["error"]["type"], "invalid_request_error");
    let r = send(sim.addr(), "GET", "/llamacpp/health", &[], "").await;
    assert_eq!(r.json(), json!({"status": "ok"}));
    // No rate-limit headers on local servers.
    assert!(r.header("x-ratelimit-limit-requests").is_none());
}

#[tokio::test]
async fn unprefixed_paths_reach_their_provider() {
    let sim = Simulator::builder().start().await.unwrap();
    let r = send(
        sim.addr(),
        "POST",
        "/v1/chat/completions",
        &[OAI_AUTH, JSON],
        OAI_BODY,
    )
    .await;
    assert_eq!(r.json()["object"], "chat.completion");
    let r = send(
        sim.addr(),
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", "k"),
            ("anthropic-version", "2023-06-01"),
            JSON,
        ],
        ANT_BODY,
    )
    .await;
    assert_eq!(r.json()["type"], "message");
    let r = send(
        sim.addr(),
        "POST",
        "/v1beta/models/g:generateContent",
        &[("x-goog-api-key", "k"), JSON],
        GEM_BODY,
    )
    .await;
    assert!(r.json()["candidates"].is_array());
}

#[tokio::test]
async fn bad_input_gets_the_providers_error_shape() {
    let sim = Simulator::builder()
        .configure(Provider::Gemini, |s: &mut ProviderSettings| {
            s.valid_keys = Some(vec!["good".into()])
        })
        .configure(Provider::OpenAi, |s: &mut ProviderSettings| {
            s.valid_keys = Some(vec!["good".into()])
        })
        .start()
        .await
        .unwrap();
    let addr = sim.addr();
    // OpenAI: missing key, wrong key, invalid JSON, missing messages, bad role, temperature, max_tokens on o3.
    let r = send(
        addr,
        "POST",
        "/openai/v1/chat/completions",
        &[JSON],
        OAI_BODY,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], Value::Null);
    let r = send(
        addr,
        "POST",
        "/openai/v1/chat/completions",
        &[("authorization", "Bearer bad"), JSON],
        OAI_BODY,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    assert!(!r.text().contains("bad"), "the key is not echoed");
    let good = ("authorization", "Bearer good");
    for (body, code, param) in [
        ("{not json", Value::Null, Value::Null),
        (
            r#"{"model":"m"}"#,
            json!("missing_required_parameter"),
            json!("messages"),
        ),
        (
            r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
            json!("invalid_value"),
            json!("messages[0].role"),
        ),
        (
            r#"{"model":"m","temperature":-1,"messages":[{"role":"user","content":"x"}]}"#,
            json!("decimal_below_min_value"),
            json!("temperature"),
        ),
        (
            r#"{"model":"o3-mini","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
            json!("unsupported_parameter"),
            json!("max_tokens"),
        ),
        ("[1,2,3]", Value::Null, Value::Null),
    ] {
        let r = send(
            addr,
            "POST",
            "/openai/v1/chat/completions",
            &[good, JSON],
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{body}");
        let e = &r.json()["error"];
        assert_eq!(
            e.as_object().unwrap().len(),
            4,
            "message, type, param, code: {e}"
        );
        assert_eq!(e["type"], "invalid_request_error");
        assert_eq!(e["code"], code, "{body}");
        assert_eq!(e["param"], param, "{body}");
    }
    let r = send(addr, "POST", "/openai/v1/nope", &[good, JSON], "{}").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["message"], "Invalid URL (POST /v1/nope)");
    // Anthropic: missing key, missing version, unknown version, missing max_tokens, bad role, junk.
    let ant = |headers: Vec<(&'static str, &'static str)>, body: &'static str| async move {
        send(addr, "POST", "/anthropic/v1/messages", &headers, body).await
    };
    let r = ant(vec![("anthropic-version", "2023-06-01")], ANT_BODY).await;
    assert_eq!(
        (r.status, r.json()["error"]["type"].clone()),
        (401, json!("authentication_error"))
    );
    let r = ant(vec![("x-api-key", "k")], ANT_BODY).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "anthropic-version: header is required"
    );
    let r = ant(
        vec![("x-api-key", "k"), ("anthropic-version", "2020-01-01")],
        ANT_BODY,
    )
    .await;
    assert_eq!(r.status, 400);
    for body in [
        r#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"c","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#,
        "\u{0}\u{1}garbage",
        r#"{"model":"c","max_tokens":"many","messages":[]}"#,
    ] {
        let r = ant(
            vec![("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{body}");
        let v = r.json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["request_id"].is_string());
    }
    let r = send(
        addr,
        "GET",
        "/anthropic/v1/messages",
        &[("x-api-key", "k")],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    // Gemini: no key 403, wrong key 400 API_KEY_INVALID, bad body, bad role, unknown method.
    let r = send(
        addr,
        "POST",
        "/gemini/v1beta/models/g:generateContent",
        &[JSON],
        GEM_BODY,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["status"].clone()),
        (403, json!("PERMISSION_DENIED"))
    );
    let r = send(
        addr,
        "POST",
        "/gemini/v1beta/models/g:generateContent?key=wrong",
        &[JSON],
        GEM_BODY,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let gk = ("x-goog-api-key", "good");
    for body in [
        r#"{"contents":[]}"#,
        r#"{"contents":[{"role":"system","parts":[{"text":"x"}]}]}"#,
        "nope",
    ] {
        let r = send(
            addr,
            "POST",
            "/gemini/v1/models/g:generateContent",
            &[gk, JSON],
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{body}");
        let e = &r.json()["error"];
        assert_eq!(e["code"], 400);
        assert_eq!(e["status"], "INVALID_ARGUMENT");
    }
    let r = send(
        addr,
        "POST",
        "/gemini/v1/models/g:explode",
        &[gk, JSON],
        GEM_BODY,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["status"].clone()),
        (404, json!("NOT_FOUND"))
    );
    // The simulator survived all of it.
    assert_eq!(openai(addr, OAI_BODY).await.status, 401);
}

#[tokio::test]
async fn context_window_errors_per_provider() {
    let mut builder = Simulator::builder();
    for p in Provider::ALL {
        builder = builder.configure(p, |s: &mut ProviderSettings| s.context_window = Some(20));
    }
    let sim = builder.start().await.unwrap();
    let long = "word ".repeat(40); // 200 chars = 50 tokens
    let oai = json!({"model": "m", "messages": [{"role": "user", "content": long}]}).to_string();
    let e = openai(sim.addr(), &oai).await.json();
    assert_eq!(e["error"]["code"], "context_length_exceeded");
    assert_eq!(e["error"]["param"], "messages");
    assert_eq!(
        e["error"]["message"],
        "This model's maximum context length is 20 tokens. However, your messages resulted in 56 tokens. Please reduce the length of the messages."
    );
    let ant =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": long}]})
            .to_string();
    let e = anthropic(sim.addr(), &ant).await.json();
    assert_eq!(
        e["error"]["message"],
        "prompt is too long: 56 tokens > 20 maximum"
    );
    // Fits alone, but not with max_tokens.
    let ant =
        json!({"model": "c", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    let e = anthropic(sim.addr(), &ant).await.json();
    assert_eq!(
        e["error"]["message"],
        "input length and `max_tokens` exceed context limit: 7 + 100 > 20, decrease input length or `max_tokens` and try again"
    );
    let gem = json!({"contents": [{"parts": [{"text": long}]}]}).to_string();
    let e = gemini(sim.addr(), "generateContent", &gem).await.json();
    assert_eq!(
        e["error"]["message"],
        "The input token count (56) exceeds the maximum number of tokens allowed (20)."
    );
    let r = send(
        sim.addr(),
        "POST",
        "/llamacpp/v1/chat/completions",
        &[JSON],
        &oai,
    )
    .await;
    assert_eq!(
        r.json()["error"],
        json!({"code": 400, "message": "request (56 tokens) exceeds the available context size (20 tokens), try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 56, "n_ctx": 20})
    );
    let r = send(
        sim.addr(),
        "POST",
        "/vllm/v1/chat/completions",
        &[JSON],
        &oai,
    )
    .await;
    assert_eq!(r.json()["error"]["code"], 400);
    let r = send(
        sim.addr(),
        "POST",
        "/ollama/v1/chat/completions",
        &[JSON],
        &oai,
    )
    .await;
    assert_eq!(r.status, 200, "Ollama truncates instead");
}

#[tokio::test]
async fn generated_garbage_never_crashes_and_always_gets_a_provider_error() {
    let sim = Simulator::builder().start().await.unwrap();
    let addr = sim.addr();
    // Deterministic junk: truncations of valid bodies, wrong types, random bytes.
    let valid = [OAI_BODY, ANT_BODY, GEM_BODY];
    let mut bodies: Vec<String> = Vec::new();
    for v in valid {
        for cut in (0..v.len()).step_by(7) {
            bodies.push(v[..cut].to_owned());
        }
    }
    for junk in [
        r#"{"model":5,"messages":"x"}"#,
        r#"{"model":"m","messages":[null,1,"a",{"role":null}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":{"weird":true}}],"max_tokens":-1}"#,
        r#"{"contents":[{"parts":"no"}],"generationConfig":{"maxOutputTokens":"x"}}"#,
        r#"{"model":"c","max_tokens":1e99,"messages":[{"role":"user","content":[{"type":"image"}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}],"tool_choice":{"function":5}}"#,
        "\u{feff}{}",
        "null",
    ] {
        bodies.push(junk.to_owned());
    }
    let mut state = 7u64;
    for _ in 0..20 {
        let bytes: String = (0..64)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(32 + ((state >> 33) % 95) as u8)
            })
            .collect();
        bodies.push(bytes);
    }
    for body in &bodies {
        let r = openai(addr, body).await;
        assert!(
            r.status == 200 || r.status == 400,
            "openai {body:?}: {}",
            r.status
        );
        if r.status == 400 {
            assert!(r.json()["error"]["message"].is_string());
        }
        let r = anthropic(addr, body).await;
        assert!(
            r.status == 200 || r.status == 400,
            "anthropic {body:?}: {}",
            r.status
        );
        if r.status == 400 {
            assert_eq!(r.json()["type"], "error");
        }
        let r = gemini(addr, "streamGenerateContent?alt=sse", body).await;
        assert!(
            r.status == 200 || r.status == 400,
            "gemini {body:?}: {}",
            r.status
        );
        if r.status == 400 {
            assert_eq!(r.json()["error"]["code"], 400);
        }
        for prefix in ["ollama", "vllm", "llamacpp"] {
            let r = send(
                addr,
                "POST",
                &format!("/{prefix}/v1/chat/completions"),
                &[JSON],
                body,
            )
            .await;
            assert!(
                r.status == 200 || r.status == 400,
                "{prefix} {body:?}: {}",
                r.status
            );
            assert!(r.json().get("error").is_some() || r.status == 200);
        }
    }
}

#[tokio::test]
async fn openai_responses_api() {
    let sim = Simulator::builder().reply_tokens(5).start().await.unwrap();
    let post = |path: &'static str, body: &'static str| {
        let addr = sim.addr();
        async move { send(addr, "POST", path, &[OAI_AUTH, JSON], body).await }
    };
    let body = r#"{"model":"gpt-4.1","instructions":"be brief","input":"hello"}"#;
    let r = post("/openai/v1/responses", body).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-ratelimit-limit-requests").is_some());
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    let text = v["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"],
        u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(u["output_tokens"], 5);

    let r = post(
        "/openai/v1/responses",
        r#"{"model":"gpt-4.1","instructions":"be brief","input":"hello","stream":true}"#,
    )
    .await;
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let body = r.text();
    assert!(!body.contains("[DONE]"));
    let mut seqs = Vec::new();
    let mut names = Vec::new();
    let mut streamed = String::new();
    for frame in body.split("\n\n").filter(|f| !f.is_empty()) {
        let (event, data) = frame.split_once('\n').unwrap();
        let name = event.strip_prefix("event: ").unwrap();
        let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(v["type"], name);
        seqs.push(v["sequence_number"].as_u64().unwrap());
        if name == "response.output_text.delta" {
            streamed.push_str(v["delta"].as_str().unwrap());
        }
        names.push(name.to_owned());
    }
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "increasing sequence numbers"
    );
    assert_eq!(names.first().unwrap(), "response.created");
    assert_eq!(names.last().unwrap(), "response.completed");
    assert_eq!(streamed, text);

    let r = post(
        "/openai/v1/responses",
        r#"{"model":"gpt-4.1","input":"x","max_output_tokens":8}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "integer_below_min_value");
    let r = post(
        "/openai/v1/responses/input_tokens",
        r#"{"model":"gpt-4.1","input":"hello"}"#,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"object": "response.input_tokens", "input_tokens": 8})
    );

    sim.set_faults(
        Provider::OpenAi,
        vec![seawall_sim::FaultRule::always(
            seawall_sim::Fault::ErrorFrameAfter { events: 3 },
        )],
    );
    let r = post(
        "/openai/v1/responses",
        r#"{"model":"gpt-4.1","input":"hello","stream":true}"#,
    )
    .await;
    let text = r.text();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 5);
    assert!(frames[3].starts_with("event: error\ndata: "));
    let err: Value = serde_json::from_str(frames[3].split_once("data: ").unwrap().1).unwrap();
    assert_eq!(err["error"]["code"], "server_error");
    assert_eq!(err["sequence_number"], 3);
    assert!(frames[4].starts_with("event: response.failed\n"));
}

#[tokio::test]
async fn count_endpoints_take_only_their_own_fields() {
    let sim = Simulator::builder().start().await.unwrap();
    // Anthropic refuses the messages request's output fields as extra inputs.
    let count = |body: &'static str| {
        send(
            sim.addr(),
            "POST",
            "/anthropic/v1/messages/count_tokens",
            &[
                ("x-api-key", "k"),
                ("anthropic-version", "2023-06-01"),
                JSON,
            ],
            body,
        )
    };
    let r = count(ANT_BODY).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(
        r.json()["error"]["message"],
        "max_tokens: Extra inputs are not permitted"
    );
    let r = count(r#"{"model":"claude-x","system":"be brief","messages":[{"role":"user","content":"hello"}]}"#).await;
    assert_eq!(r.status, 200);
    // 8 for the message as above, 3 + ceil(8 / 4) for the system prompt.
    assert_eq!(r.json(), json!({"input_tokens": 13}));

    // The Responses API refuses them as unknown parameters.
    let r = send(
        sim.addr(),
        "POST",
        "/openai/v1/responses/input_tokens",
        &[OAI_AUTH, JSON],
        r#"{"model":"gpt-4.1","input":"hello","stream":true}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    let error = &r.json()["error"];
    assert_eq!(error["code"], "unknown_parameter");
    assert_eq!(error["param"], "stream");
    assert_eq!(error["message"], "Unknown parameter: 'stream'.");
}

#[tokio::test]
async fn gemini_counts_a_whole_generate_content_request() {
    let sim = Simulator::builder().start().await.unwrap();
    let whole = r#"{"generateContentRequest":{"model":"models/gemini-x","systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hello"}]}]}}"#;
    let r = gemini(sim.addr(), "countTokens", whole).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["totalTokens"], 13, "the system instruction counts");
    let generated = gemini(
        sim.addr(),
        "generateContent",
        r#"{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hello"}]}]}"#,
    )
    .await;
    assert_eq!(generated.json()["usageMetadata"]["promptTokenCount"], 13);
    // Without its model, or beside `contents`, it is refused.
    let r = gemini(
        sim.addr(),
        "countTokens",
        r#"{"generateContentRequest":{"contents":[{"role":"user","parts":[{"text":"hello"}]}]}}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let r = gemini(
        sim.addr(),
        "countTokens",
        r#"{"contents":[],"generateContentRequest":{"model":"models/gemini-x","contents":[{"role":"user","parts":[{"text":"hello"}]}]}}"#,
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn responses_tools_are_flat_and_results_answer_a_call() {
    let sim = Simulator::builder().start().await.unwrap();
    let post = |body: &'static str| {
        send(
            sim.addr(),
            "POST",
            "/openai/v1/responses",
            &[OAI_AUTH, JSON],
            body,
        )
    };
    // Chat completions' nested tool shape lacks the flat `name`.
    let r = post(r#"{"model":"gpt-4.1","input":"find","tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]}"#).await;
    assert_eq!(r.status, 400);
    let error = &r.json()["error"];
    assert_eq!(
        error["message"],
        "Missing required parameter: 'tools[0].name'."
    );
    assert_eq!(error["param"], "tools[0].name");
    assert_eq!(error["code"], "missing_required_parameter");
    // A result for a call that is not in the input.
    let r = post(r#"{"model":"gpt-4.1","input":[{"role":"user","content":"find"},{"type":"function_call_output","call_id":"call_9","output":"x"}]}"#).await;
    assert_eq!(r.status, 400);
    let error = &r.json()["error"];
    assert_eq!(
        error["message"],
        "No tool call found for function call output with call_id call_9."
    );
    assert_eq!(error["param"], "input");
    // With its call before it, the result is answered.
    let r = post(r#"{"model":"gpt-4.1","input":[{"role":"user","content":"find"},{"type":"function_call","call_id":"call_9","name":"lookup","arguments":"{}"},{"type":"function_call_output","call_id":"call_9","output":"x"}]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
