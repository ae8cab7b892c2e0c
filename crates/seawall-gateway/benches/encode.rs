//! The gateway's per-request JSON writing: a complete response body, and the SSE chunks of
//! a streamed one.
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

criterion_group!(benches, encode);
criterion_main!(benches);
