//! The bodies of the fuzz targets, one function per target, each taking the fuzzer's bytes.
//!
//! `fuzz/` (cargo-fuzz, nightly) calls them from libFuzzer; `tests/corpora.rs` replays the
//! committed corpora through them on stable, so CI checks every input the fuzzers kept. Each
//! target checks a property beyond "does not panic" where one is cheap: a stream decoded in
//! one piece gives the events it gives when cut anywhere.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame};
use seawall_core::{ProviderKind, StreamEvent, hints};
use seawall_providers::sse::SseDecoder;
use seawall_providers::{
    AnthropicConfig, AnthropicDialect, DecodedStream, Dialect, GeminiConfig, GeminiDialect,
    MalformedPolicy, OpenAiConfig, OpenAiDialect, ResponsesConfig, ResponsesDialect, StreamMetrics,
};

/// A target: it takes the fuzzer's bytes and panics on a finding.
pub type Target = fn(&[u8]);

/// The targets, by name: what `fuzz/fuzz_targets/<name>.rs` runs and the corpus directories
/// are called.
pub const TARGETS: &[(&str, Target)] = &[
    ("sse", sse),
    ("hints", hint_headers),
    ("openai_response", |data| response(Provider::OpenAi, data)),
    ("anthropic_response", |data| {
        response(Provider::Anthropic, data)
    }),
    ("gemini_response", |data| response(Provider::Gemini, data)),
    ("openai_stream", |data| stream(Provider::OpenAi, data)),
    ("anthropic_stream", |data| stream(Provider::Anthropic, data)),
    ("gemini_stream", |data| stream(Provider::Gemini, data)),
    ("responses_response", |data| {
        response(Provider::Responses, data)
    }),
    ("responses_stream", |data| stream(Provider::Responses, data)),
    ("gateway_request", gateway_request),
    ("gateway_messages_request", |data| {
        gateway_dialect(seawall_gateway::Dialect::Messages, data)
    }),
    ("gateway_responses_request", |data| {
        gateway_dialect(seawall_gateway::Dialect::Responses, data)
    }),
    ("gateway_config", gateway_config),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The first byte chooses a cut; the rest is the input.
fn cut(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (usize::from(*first) * rest.len() / 256, rest),
        None => (0, data),
    }
}

/// The SSE decoder: fed whole, or in two pieces cut anywhere, it yields the same events.
pub fn sse(data: &[u8]) {
    let (at, input) = cut(data);
    let mut whole = Vec::new();
    let mut decoder = SseDecoder::new();
    decoder.feed(input, &mut whole);
    decoder.finish(&mut whole);
    let mut pieces = Vec::new();
    let mut decoder = SseDecoder::new();
    decoder.feed(&input[..at], &mut pieces);
    decoder.feed(&input[at..], &mut pieces);
    decoder.finish(&mut pieces);
    assert_eq!(whole, pieces, "cut at {at}");
}

/// Retry and quota hints from headers: lines of `name: value`.
pub fn hint_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let retry = hints::retry_hints(&headers, now);
    let _ = hints::quota_snapshot(&headers, now);
    if let Some(wait) = hints::retry_after(&headers, now) {
        // A wait is a wait: never one that overflows a deadline computed from it.
        assert!(now.checked_add(wait).is_some() || wait == Duration::MAX);
    }
    let _ = retry;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hints::parse_go_duration(text);
        let _ = hints::parse_protobuf_duration(text);
        let _ = hints::parse_rfc3339(text);
        let _ = SystemTime::now();
    }
}

/// A provider, for the dialect targets.
#[derive(Clone, Copy)]
enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    Responses,
}

/// A complete response body and an error body, decoded by the provider's dialect.
fn response(provider: Provider, data: &[u8]) {
    let headers = HeaderMap::new();
    let status = 400 + u16::from(data.first().copied().unwrap_or(0) % 200);
    match provider {
        Provider::OpenAi => {
            let dialect = OpenAiDialect::new(OpenAiConfig::new("k"));
            let _ = dialect.decode_response(&headers, data);
            let _ = dialect.decode_error(status, &headers, data);
        }
        Provider::Anthropic => {
            let dialect = AnthropicDialect::new(AnthropicConfig::new("k"));
            let _ = dialect.decode_response(&headers, data);
            let _ = dialect.decode_error(status, &headers, data);
        }
        Provider::Gemini => {
            let dialect = GeminiDialect::new(GeminiConfig::new("k"));
            let _ = dialect.decode_response(&headers, data);
            let _ = dialect.decode_error(status, &headers, data);
        }
        Provider::Responses => {
            let dialect = ResponsesDialect::new(ResponsesConfig::new("k"));
            let _ = dialect.decode_response(&headers, data);
            let _ = dialect.decode_error(status, &headers, data);
            let _ = dialect.decode_count_tokens(data);
        }
    }
}

/// A stream body decoded by the provider's dialect: whole, or in two pieces cut anywhere,
/// it yields the same events.
fn stream(provider: Provider, data: &[u8]) {
    let (at, input) = cut(data);
    let body = Bytes::copy_from_slice(input);
    let whole = decode(provider, vec![body.clone()]);
    let pieces = decode(provider, vec![body.slice(..at), body.slice(at..)]);
    assert_eq!(whole, pieces, "cut at {at}");
}

fn decode(provider: Provider, chunks: Vec<Bytes>) -> Vec<StreamEvent> {
    let body = Chunks(chunks.into());
    let (kind, policy, metrics) = (
        match provider {
            Provider::OpenAi => ProviderKind::OpenAi,
            Provider::Anthropic => ProviderKind::Anthropic,
            Provider::Gemini => ProviderKind::Gemini,
            Provider::Responses => ProviderKind::OpenAiResponses,
        },
        MalformedPolicy::Skip,
        StreamMetrics::new(),
    );
    match provider {
        Provider::OpenAi => drain(DecodedStream::new(
            body,
            OpenAiDialect::new(OpenAiConfig::new("k")).stream_decoder(),
            kind,
            policy,
            metrics,
        )),
        Provider::Anthropic => drain(DecodedStream::new(
            body,
            AnthropicDialect::new(AnthropicConfig::new("k")).stream_decoder(),
            kind,
            policy,
            metrics,
        )),
        Provider::Gemini => drain(DecodedStream::new(
            body,
            GeminiDialect::new(GeminiConfig::new("k")).stream_decoder(),
            kind,
            policy,
            metrics,
        )),
        Provider::Responses => drain(DecodedStream::new(
            body,
            ResponsesDialect::new(ResponsesConfig::new("k")).stream_decoder(),
            kind,
            policy,
            metrics,
        )),
    }
}

/// A body that is always ready, chunk by chunk.
struct Chunks(VecDeque<Bytes>);

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

fn drain<S: Stream<Item = StreamEvent>>(stream: S) -> Vec<StreamEvent> {
    let mut stream = Box::pin(stream);
    let mut cx = Context::from_waker(Waker::noop());
    let mut events = Vec::new();
    while let Poll::Ready(Some(event)) = stream.as_mut().poll_next(&mut cx) {
        events.push(event);
    }
    events
}

/// The gateway's request parsing (OpenAI Chat Completions): a request it accepts is valid.
pub fn gateway_request(data: &[u8]) {
    if let Ok(inbound) = seawall_gateway::wire::decode_request(data) {
        assert!(
            inbound.request.validate().is_ok(),
            "accepted an invalid request: {:?}",
            inbound.request.validate()
        );
    }
}

/// The gateway's request parsing in another dialect (Anthropic Messages, OpenAI
/// Responses): a request it accepts is valid.
fn gateway_dialect(dialect: seawall_gateway::Dialect, data: &[u8]) {
    if let Ok(inbound) = dialect.decode(data) {
        assert!(
            inbound.request.validate().is_ok(),
            "accepted an invalid request: {:?}",
            inbound.request.validate()
        );
    }
}

/// The gateway's config: parsed and checked, never a panic.
pub fn gateway_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = seawall_gateway::Config::from_toml(text)
    {
        let _ = config.validate(&|_| Some("x".to_owned()));
    }
}
