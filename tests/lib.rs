//! Scenario and conformance suites for seawall over real loopback HTTP.
//!
//! The suites live in this package's integration-test targets (`scenarios.rs`: what a
//! production user counts on, against `seawall-sim`); this library holds their shared support:
//! a provider adapter for each simulated provider, the recommended per-target stack with
//! short test durations, and helpers that drain a streamed response.
//!
//! Real sockets mean real time: durations are tens to hundreds of milliseconds and every
//! timing assertion has a generous upper tolerance.

use std::time::Duration;

use seawall::breaker::BreakerLayer;
use seawall::retry::{Backoff, RetryLayer};
use seawall::stack::{Guarded, TargetStack};
use seawall_core::{BoxError, ChatRequest, ChatResponse, LlmError, Message, StreamEvent};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{Anthropic, AnthropicConfig, Gemini, GeminiConfig, OpenAi, OpenAiConfig};
use seawall_sim::{Provider, Simulator};
use tower::util::BoxCloneSyncService;

/// A provider adapter, boxed so that targets of different providers share one type.
pub type AdapterService = BoxCloneSyncService<ChatRequest, ChatResponse, BoxError>;

/// The HTTP client every adapter of a test shares.
pub fn http_client() -> HttpClient {
    HttpClientConfig::default()
        .build()
        .expect("the default HTTP client builds")
}

/// The adapter for `provider` of `sim` (OpenAI, Anthropic or Gemini).
pub fn adapter(sim: &Simulator, provider: Provider) -> AdapterService {
    let http = http_client();
    let base = sim.base_url(provider);
    match provider {
        Provider::OpenAi => BoxCloneSyncService::new(OpenAi::new(
            http,
            OpenAiConfig::new("sk-test").with_base_url(base),
        )),
        Provider::Anthropic => BoxCloneSyncService::new(Anthropic::new(
            http,
            AnthropicConfig::new("sk-test").with_base_url(base),
        )),
        Provider::Gemini => BoxCloneSyncService::new(Gemini::new(
            http,
            GeminiConfig::new("sk-test").with_base_url(base),
        )),
        other => panic!("no adapter in this suite for {other:?}"),
    }
}

/// The target id used for `provider` in the scenarios.
pub fn target_id(provider: Provider) -> &'static str {
    provider.name()
}

/// The recommended per-target stack with test-sized defaults: 3 attempts with a backoff
/// from 20 ms capped at 80 ms, server waits up to 5 s waited out, a breaker that trips after
/// 5 consecutive failures. Tests replace what they exercise.
pub fn stack(provider: Provider) -> TargetStack {
    TargetStack::new(target_id(provider))
        .retry(fast_retry(3))
        .breaker(BreakerLayer::builder(target_id(provider)).build())
}

/// A retry layer with a short backoff (20 ms doubling to 80 ms, full jitter).
pub fn fast_retry(max_attempts: u32) -> RetryLayer {
    RetryLayer::new()
        .max_attempts(max_attempts)
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(80),
        ))
}

/// `stack` built around the adapter of `provider`.
pub fn guarded(sim: &Simulator, provider: Provider, stack: TargetStack) -> Guarded {
    stack.build(adapter(sim, provider))
}

/// A one-question request.
pub fn question(text: &str) -> ChatRequest {
    ChatRequest::new("chat", [Message::user(text)]).with_max_output_tokens(64)
}

/// The same, streamed.
pub fn streamed_question(text: &str) -> ChatRequest {
    let mut request = question(text);
    request.stream = true;
    request
}

/// What a drained stream delivered: its events, the text, and the error event if any.
#[derive(Debug, Default)]
pub struct Drained {
    /// Every event, in order.
    pub events: Vec<StreamEvent>,
    /// The concatenated text deltas.
    pub text: String,
    /// The error event that ended the stream, if one did.
    pub error: Option<LlmError>,
    /// Whether a `Finish` event arrived (the provider's end of message).
    pub finished: bool,
}

/// Reads a streamed response to its end.
pub async fn drain(mut response: ChatResponse) -> Drained {
    let mut drained = Drained::default();
    let Some(mut stream) = response.stream.take() else {
        drained.text = response.text().to_owned();
        drained.finished = true;
        return drained;
    };
    while let Some(event) = stream.next().await {
        match &event {
            StreamEvent::TextDelta(text) => drained.text.push_str(text),
            StreamEvent::Finish(_) => drained.finished = true,
            StreamEvent::Error(error) => drained.error = Some(error.clone()),
            _ => {}
        }
        drained.events.push(event);
    }
    drained
}

/// The gaps between consecutive logged requests to `provider`.
pub fn gaps(sim: &Simulator, provider: Provider) -> Vec<Duration> {
    let log = sim.requests_for(provider);
    log.windows(2).map(|pair| pair[1].at - pair[0].at).collect()
}

/// How many requests `provider` received.
pub fn calls(sim: &Simulator, provider: Provider) -> usize {
    sim.requests_for(provider).len()
}
