//! In-process costs of the adapters: SSE decoding (bytes to SSE events, and bytes to typed
//! stream events per provider) and request/response translation.
//!
//! Run with `cargo bench -p seawall-providers --bench decode`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_core::Stream;
use http::HeaderMap;
use http_body::{Body, Frame};
use seawall_core::{
    ChatRequest, Message, ProviderKind, StreamEvent, ToolCall, ToolChoice, ToolDefinition,
};
use seawall_providers::sse::SseDecoder;
use seawall_providers::{
    AnthropicConfig, AnthropicDialect, DecodedStream, Dialect, GeminiConfig, GeminiDialect,
    MalformedPolicy, OpenAiConfig, OpenAiDialect, StreamMetrics,
};
use serde_json::json;

/// A body that is always ready, in fixed-size chunks.
struct Chunks(VecDeque<Bytes>);

impl Chunks {
    fn new(bytes: &Bytes, size: usize) -> Self {
        Self(
            (0..bytes.len())
                .step_by(size)
                .map(|at| bytes.slice(at..(at + size).min(bytes.len())))
                .collect(),
        )
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

fn openai_stream(deltas: usize) -> Bytes {
    let mut body = String::new();
    let head = r#"{"id":"chatcmpl-Dx0XpqH8w09uBXwq1zFGYdETjtnEl","object":"chat.completion.chunk","created":1782955817,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_d0469e1700","choices":[{"index":0,"delta":{"content":"#;
    for i in 0..deltas {
        body.push_str("data: ");
        body.push_str(head);
        body.push_str(&format!(
            "\" token{i}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null,\"obfuscation\":\"qfQVOwfh62\"}}\n\n"
        ));
    }
    body.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
    body.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":200,\"total_tokens\":220}}\n\n");
    body.push_str("data: [DONE]\n\n");
    Bytes::from(body)
}

fn anthropic_stream(deltas: usize) -> Bytes {
    let mut body = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":92,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    for i in 0..deltas {
        body.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" token{i}\"}}    }}\n\n"
        ));
    }
    body.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":200}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    Bytes::from(body)
}

fn gemini_stream(chunks: usize) -> Bytes {
    let mut body = String::new();
    for i in 0..chunks {
        let finish = if i + 1 == chunks {
            ",\"finishReason\":\"STOP\""
        } else {
            ""
        };
        body.push_str(&format!(
            "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\" token{i}\"}}],\"role\":\"model\"}}{finish},\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":18,\"candidatesTokenCount\":{i},\"totalTokenCount\":{}}},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"ru1garvBEoOiqtsP2fznmQw\"}}\r\n\r\n",
            18 + i
        ));
    }
    Bytes::from(body)
}

fn drain<S: Stream<Item = StreamEvent> + Unpin>(mut stream: S) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut count = 0;
    while let Poll::Ready(Some(event)) = Pin::new(&mut stream).poll_next(&mut cx) {
        black_box(&event);
        count += 1;
    }
    count
}

fn sse(c: &mut Criterion) {
    let body = openai_stream(200);
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for size in [64usize, 1024, 16 * 1024] {
        group.bench_function(format!("decoder_{size}b_chunks"), |b| {
            b.iter(|| {
                let mut decoder = SseDecoder::new();
                let mut events = Vec::with_capacity(256);
                for chunk in body.chunks(size) {
                    decoder.feed(chunk, &mut events);
                }
                decoder.finish(&mut events);
                black_box(events.len())
            })
        });
    }
    group.finish();
}

fn streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream_200_deltas");
    let cases: [(&str, Bytes, ProviderKind); 3] = [
        ("openai", openai_stream(200), ProviderKind::OpenAi),
        ("anthropic", anthropic_stream(200), ProviderKind::Anthropic),
        ("gemini", gemini_stream(200), ProviderKind::Gemini),
    ];
    for (name, body, provider) in cases {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| match provider {
                ProviderKind::OpenAi => drain(Box::pin(DecodedStream::new(
                    Chunks::new(&body, 1024),
                    OpenAiDialect::new(OpenAiConfig::new("k")).stream_decoder(),
                    provider,
                    MalformedPolicy::Skip,
                    StreamMetrics::new(),
                ))),
                ProviderKind::Anthropic => drain(Box::pin(DecodedStream::new(
                    Chunks::new(&body, 1024),
                    AnthropicDialect::new(AnthropicConfig::new("k")).stream_decoder(),
                    provider,
                    MalformedPolicy::Skip,
                    StreamMetrics::new(),
                ))),
                _ => drain(Box::pin(DecodedStream::new(
                    Chunks::new(&body, 1024),
                    GeminiDialect::new(GeminiConfig::new("k")).stream_decoder(),
                    provider,
                    MalformedPolicy::Skip,
                    StreamMetrics::new(),
                ))),
            })
        });
    }
    group.finish();
}

fn conversation() -> ChatRequest {
    let mut messages = vec![Message::system("You are a concise assistant.")];
    for i in 0..4 {
        messages.push(Message::user(format!(
            "Question {i}: what is the weather like in city number {i}, and should I bring an umbrella?"
        )));
        messages.push(Message::assistant_tool_calls([ToolCall {
            id: format!("call_{i}"),
            name: "weather".into(),
            arguments: format!("{{\"city\":\"city {i}\"}}"),
        }]));
        messages.push(Message::tool_result(
            format!("call_{i}"),
            "{\"temp_c\":21,\"rain\":false}",
        ));
        messages.push(Message::assistant(
            "It is sunny and 21 °C; no umbrella needed.",
        ));
    }
    messages.push(Message::user("Thanks! And tomorrow?"));
    ChatRequest::new("model", messages)
        .with_tools([ToolDefinition::new(
            "weather",
            "Current weather for a city",
            json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        )])
        .with_tool_choice(ToolChoice::Auto)
        .with_max_output_tokens(512)
}

fn translation(c: &mut Criterion) {
    let request = conversation();
    let openai = OpenAiDialect::new(OpenAiConfig::new("sk"));
    let anthropic = AnthropicDialect::new(AnthropicConfig::new("sk"));
    let gemini = GeminiDialect::new(GeminiConfig::new("sk"));
    let mut group = c.benchmark_group("encode_17_messages");
    group.bench_function("openai", |b| {
        b.iter(|| openai.encode(black_box(&request)).unwrap())
    });
    group.bench_function("anthropic", |b| {
        b.iter(|| anthropic.encode(black_box(&request)).unwrap())
    });
    group.bench_function("gemini", |b| {
        b.iter(|| gemini.encode(black_box(&request)).unwrap())
    });
    group.finish();

    let headers = HeaderMap::new();
    let openai_body = br#"{"id":"chatcmpl-CcWj9dBmozYrIh53F5tkednY14t4r","object":"chat.completion","created":1763298303,"model":"gpt-5.1-chat-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today? I can answer questions, write text, or call tools.","refusal":null,"annotations":[]},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":18,"total_tokens":38,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":null}"#;
    let anthropic_body = br#"{"id":"msg_01ATtd6A2FAsaFDNqzGKiy5c","type":"message","role":"assistant","model":"claude-3-5-sonnet-20240620","content":[{"type":"text","text":"Hello! It's nice to meet you. How can I assist you today?"},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":30}}"#;
    let gemini_body = br#"{"candidates":[{"content":{"parts":[{"text":"Hello! How can I help you today? I can answer questions, write text, or call tools."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":18,"candidatesTokenCount":31,"totalTokenCount":84,"thoughtsTokenCount":35},"modelVersion":"gemini-2.5-flash","responseId":"ru1garvBEoOiqtsP2fznmQw"}"#;
    let mut group = c.benchmark_group("decode_response");
    group.bench_function("openai", |b| {
        b.iter(|| {
            openai
                .decode_response(&headers, black_box(openai_body))
                .unwrap()
        })
    });
    group.bench_function("anthropic", |b| {
        b.iter(|| {
            anthropic
                .decode_response(&headers, black_box(anthropic_body))
                .unwrap()
        })
    });
    group.bench_function("gemini", |b| {
        b.iter(|| {
            gemini
                .decode_response(&headers, black_box(gemini_body))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, sse, streams, translation);
criterion_main!(benches);
