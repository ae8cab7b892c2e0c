//! The gateway's per-request JSON writing: a complete response body, and the SSE chunks of
//! a streamed one.
//!
//! And one access-log line, written by the gateway's log (its own JSON line format) and, for
//! comparison, by `tracing-subscriber`'s JSON formatter set up as the gateway's used to be.
//!
//! And the decoding of a request body in each dialect the gateway speaks.
//!
//! Run with `cargo bench -p seawall-gateway --bench encode`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_core::{AssistantMessage, ChatResponse, FinishReason, ProviderKind, ToolCall, Usage};
use seawall_gateway::Dialect;
use seawall_gateway::wire::{self, ChunkHead};

fn encode(c: &mut Criterion) {
    let usage = Usage::new(20, 18).with_cached_input(4);
    let mut response = ChatResponse::new(
        ProviderKind::OpenAi,
        "gpt-4o-mini-2024-07-18",
        AssistantMessage::text(
            "Hello! How can I help you today? I can answer questions, write text, or call tools.",
        ),
        FinishReason::Stop,
    );
    response.usage = Some(usage);
    let calls = AssistantMessage::tool_calls((0..2).map(|i| ToolCall {
        id: format!("call_{i}"),
        name: "weather".into(),
        arguments: format!("{{\"city\":\"city {i}\"}}"),
    }));
    let mut with_tools = ChatResponse::new(
        ProviderKind::OpenAi,
        "gpt-4o-mini-2024-07-18",
        calls,
        FinishReason::ToolCalls,
    );
    with_tools.usage = Some(usage);
    let id = "chatcmpl-Dx0XpqH8w09uBXwq1zFGYdETjtnEl";
    let model = "gpt-4o-mini-2024-07-18";
    let mut group = c.benchmark_group("encode_response");
    group.bench_function("text", |b| {
        b.iter(|| wire::encode_response(black_box(&response), id, model, 1_782_955_817))
    });
    group.bench_function("tool_calls", |b| {
        b.iter(|| wire::encode_response(black_box(&with_tools), id, model, 1_782_955_817))
    });
    group.finish();

    let head = ChunkHead {
        id: id.into(),
        model: model.into(),
        created: 1_782_955_817,
    };
    let usage = Usage::new(20, 200);
    let mut group = c.benchmark_group("sse_chunks");
    // A streamed reply as the relay writes it: role, 200 text deltas, finish, usage.
    group.bench_function("reply_200_deltas", |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            head.role(&mut out);
            for i in 0..200 {
                head.text(
                    &mut out,
                    black_box(if i % 2 == 0 { " token" } else { " word" }),
                );
            }
            head.finish(&mut out, &FinishReason::Stop);
            head.usage(&mut out, &usage, None);
            wire::done(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("tool_call_delta", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            head.tool_call(
                &mut out,
                0,
                Some("call_0"),
                Some("weather"),
                black_box("{\"city\""),
            );
            black_box(out.len())
        })
    });
    group.finish();
}

/// One access line's worth of fields, as `Access::log` writes them.
fn access_line() {
    tracing::info!(
        target: seawall_gateway::access::ACCESS_TARGET,
        method = "POST",
        path = "/v1/chat/completions",
        status = 200u16,
        request_id = Some("3f9c2a7d5e81b046-17"),
        key = Some("team-a"),
        model = Some("demo"),
        answered_by = Some("gpt-4o-mini"),
        targets = "sim-openai",
        attempts = 1u32,
        stream = false,
        latency_ms = 3.473f64,
        ttft_ms = None::<f64>,
        input_tokens = Some(8u64),
        output_tokens = Some(12u64),
        cost_usd = Some(8.4e-6f64),
        error = None::<&str>,
        "access"
    );
}

fn access_log(c: &mut Criterion) {
    let gateway = seawall_gateway::access::subscriber("info", std::io::sink);
    tracing::subscriber::with_default(gateway, || {
        c.bench_function("access_line/gateway", |b| b.iter(access_line));
    });
    let before = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter("info")
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(before, || {
        c.bench_function("access_line/tracing_subscriber_json", |b| {
            b.iter(access_line)
        });
    });
}

/// One small conversation (a system prompt, a user turn, an assistant tool call, its result
/// and a follow-up) with one tool, in each dialect's request shape.
fn decode(c: &mut Criterion) {
    let chat = br#"{"model":"gpt-4o-mini","max_tokens":256,"temperature":0.5,"stream":true,
        "stream_options":{"include_usage":true},"seed":7,
        "tools":[{"type":"function","function":{"name":"weather","description":"Current weather",
          "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
        "messages":[{"role":"system","content":"Be brief."},
          {"role":"user","content":"Weather in Paris?"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
            "function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
          {"role":"tool","tool_call_id":"call_1","content":"21C"},
          {"role":"user","content":"And tomorrow?"}]}"#;
    let messages =
        br#"{"model":"claude-sonnet-4-5","max_tokens":256,"temperature":0.5,"stream":true,
        "system":"Be brief.","top_k":5,
        "tools":[{"name":"weather","description":"Current weather",
          "input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
        "messages":[{"role":"user","content":"Weather in Paris?"},
          {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"weather",
            "input":{"city":"Paris"}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"21C"},
            {"type":"text","text":"And tomorrow?"}]}]}"#;
    let responses = br#"{"model":"gpt-5","max_output_tokens":256,"temperature":0.5,"stream":true,
        "instructions":"Be brief.","store":false,
        "tools":[{"type":"function","name":"weather","description":"Current weather",
          "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],
        "input":[{"role":"user","content":"Weather in Paris?"},
          {"type":"function_call","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}"},
          {"type":"function_call_output","call_id":"call_1","output":"21C"},
          {"role":"user","content":[{"type":"input_text","text":"And tomorrow?"}]}]}"#;
    let mut group = c.benchmark_group("decode_request");
    for (name, dialect, body) in [
        ("chat", Dialect::Chat, &chat[..]),
        ("messages", Dialect::Messages, &messages[..]),
        ("responses", Dialect::Responses, &responses[..]),
    ] {
        assert!(dialect.decode(body).is_ok(), "{name}");
        group.bench_function(name, |b| b.iter(|| dialect.decode(black_box(body))));
    }
    group.finish();
}

criterion_group!(benches, encode, decode, access_log);
criterion_main!(benches);
