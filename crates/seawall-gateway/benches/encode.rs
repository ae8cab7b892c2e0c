//! The gateway's per-request JSON writing: a complete response body, and the SSE chunks of
//! a streamed one.
//!
//! And one access-log line, written by the gateway's log (its own JSON line format) and, for
//! comparison, by `tracing-subscriber`'s JSON formatter set up as the gateway's used to be.
//!
//! Run with `cargo bench -p seawall-gateway --bench encode`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_core::{AssistantMessage, ChatResponse, FinishReason, ProviderKind, ToolCall, Usage};
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

criterion_group!(benches, encode, access_log);
criterion_main!(benches);
