//! Mid-stream recovery over real loopback HTTP: the provider adapters behind the
//! recommended per-target stack, against the simulator's deterministic replies and
//! stream faults. Real sockets run on the real clock: short durations, generous bounds.

use std::time::Duration;

use seawall::failover::{Failover, Target};
use seawall::stack::TargetStack;
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::{
    ChatRequest, EventStream, LlmError, Message, ProviderKind, RecoveryOutcome, RecoveryPath,
    StreamAccumulator, StreamEvent, Trail,
};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{Anthropic, AnthropicConfig, Gemini, GeminiConfig, OpenAi, OpenAiConfig};
use seawall_sim::{Fault, FaultRule, Provider, Simulator};
use tokio::time::Instant;
use tower::ServiceExt;

/// Reply length in tokens (words); the faults break the stream after a few of them.
const REPLY_TOKENS: u32 = 12;

fn client() -> HttpClient {
    HttpClientConfig::default().build().unwrap()
}

async fn simulator(
    configure: impl FnOnce(seawall_sim::SimulatorBuilder) -> seawall_sim::SimulatorBuilder,
) -> Simulator {
    let builder = Simulator::builder()
        .seed(7)
        .reply_tokens(REPLY_TOKENS)
        .first_token(Duration::from_millis(5))
        .chunk_interval(Duration::from_millis(2));
    configure(builder).start().await.unwrap()
}

fn openai(sim: &Simulator, timeouts: Option<AttemptTimeoutLayer>) -> Target {
    let adapter = OpenAi::new(
        client(),
        OpenAiConfig::new("sk-test").with_base_url(sim.base_url(Provider::OpenAi)),
    );
    let mut stack = TargetStack::new("openai");
    if let Some(timeouts) = timeouts {
        stack = stack.attempt_timeout(timeouts);
    }
    stack
        .build(adapter)
        .target
        .model("gpt-4o-mini")
        .provider(ProviderKind::OpenAi)
}

fn anthropic(sim: &Simulator) -> Target {
    let adapter = Anthropic::new(
        client(),
        AnthropicConfig::new("sk-test").with_base_url(sim.base_url(Provider::Anthropic)),
    );
    TargetStack::new("anthropic")
        .build(adapter)
        .target
        .model("claude-sonnet-4-5")
        .provider(ProviderKind::Anthropic)
}

fn gemini(sim: &Simulator) -> Target {
    let adapter = Gemini::new(
        client(),
        GeminiConfig::new("sk-test").with_base_url(sim.base_url(Provider::Gemini)),
    );
    TargetStack::new("gemini")
        .build(adapter)
        .target
        .model("gemini-2.5-flash")
        .provider(ProviderKind::Gemini)
}

fn request() -> ChatRequest {
    ChatRequest::new(
        "chat",
        [
            Message::system("Be brief."),
            Message::user("Tell me about the sea."),
        ],
    )
    .with_max_output_tokens(64)
    .streaming()
}

async fn collect(stream: EventStream) -> Vec<StreamEvent> {
    stream.collect().await
}

/// The complete reply the simulator gives this conversation, from a clean call.
async fn full_reply(sim: &Simulator) -> String {
    let adapter = OpenAi::new(
        client(),
        OpenAiConfig::new("sk-test").with_base_url(sim.base_url(Provider::OpenAi)),
    );
    let mut response = adapter.oneshot(request()).await.unwrap();
    let (text, complete, error) = fold(&collect(response.stream.take().unwrap()).await);
    assert!(complete && error.is_none());
    sim.clear_log();
    text
}

/// Calls `router`; returns the caller's events and the trail once the stream ended.
async fn run(router: &Failover) -> (Vec<StreamEvent>, Trail) {
    let mut request = request();
    let trail = request.context.trail().clone();
    let mut response = router.clone().oneshot(request).await.unwrap();
    let events = collect(response.stream.take().unwrap()).await;
    (events, trail.snapshot())
}

fn fold(events: &[StreamEvent]) -> (String, bool, Option<LlmError>) {
    let mut accumulator = StreamAccumulator::new();
    let mut error = None;
    for event in events {
        if let Err(e) = accumulator.push(event) {
            error = Some(e);
        }
    }
    (
        accumulator.text().to_owned(),
        accumulator.is_complete(),
        error,
    )
}

fn recovered(trail: &Trail) -> Option<(RecoveryPath, String)> {
    match &trail.recoveries.first()?.outcome {
        RecoveryOutcome::Recovered { path, target } => Some((*path, target.to_string())),
        _ => None,
    }
}

/// The trailing assistant text of each request a provider got.
fn prefills(sim: &Simulator, provider: Provider) -> Vec<Option<String>> {
    sim.requests_for(provider)
        .iter()
        .map(|logged| {
            let body = logged.body_json().unwrap();
            let last = body["messages"].as_array().unwrap().last().unwrap().clone();
            (last["role"] == "assistant").then(|| match &last["content"] {
                serde_json::Value::String(text) => text.clone(),
                blocks => blocks
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|block| block["text"].as_str())
                    .collect(),
            })
        })
        .collect()
}

#[tokio::test]
async fn a_cut_stream_is_finished_by_a_prefill_continuation_exactly_once() {
    let sim = simulator(|b| b).await;
    let full = full_reply(&sim).await;
    // The role chunk and four words, then the connection closes.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::CutAfter { events: 5 })],
    );
    let router = Failover::builder()
        .target(openai(&sim, None))
        .target(anthropic(&sim))
        .build();

    let (events, trail) = run(&router).await;

    let (text, complete, error) = fold(&events);
    assert_eq!(error, None);
    assert!(complete);
    assert_eq!(text, full, "the whole answer, once");
    assert_eq!(
        recovered(&trail),
        Some((RecoveryPath::Continuation, "anthropic".into()))
    );
    let delivered = trail.recoveries[0].delivered_chars as usize;
    assert!(
        delivered > 0 && delivered < full.len(),
        "{:?}",
        trail.recoveries
    );
    assert_eq!(
        prefills(&sim, Provider::Anthropic),
        vec![Some(full[..delivered].to_owned())],
        "the continuation carried exactly the delivered text"
    );
}

#[tokio::test]
async fn a_fallback_that_refuses_prefill_finishes_the_answer_by_user_message() {
    let sim = simulator(|b| b.reject_prefill(Provider::Anthropic, true)).await;
    let full = full_reply(&sim).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::CutAfter { events: 5 })],
    );
    let router = Failover::builder()
        .target(openai(&sim, None))
        .target(anthropic(&sim))
        .build();

    let (events, trail) = run(&router).await;

    let (text, complete, error) = fold(&events);
    assert_eq!(
        error, None,
        "the prefill rejection is not the caller's error"
    );
    assert!(complete);
    assert_eq!(text, full, "the whole answer, once");
    assert_eq!(
        recovered(&trail),
        Some((RecoveryPath::UserMessage, "anthropic".into()))
    );
    let sent = prefills(&sim, Provider::Anthropic);
    assert_eq!(
        sent.len(),
        2,
        "a continuation, refused, then the user message asking to continue"
    );
    assert!(sent[0].is_some());
    assert_eq!(
        sent[1], None,
        "the second ends with the user's request to continue"
    );
    assert_eq!(router.accepts_prefill("anthropic"), Some(false));
    assert_eq!(
        router.continuation("anthropic"),
        Some(seawall::failover::Continuation::UserMessage)
    );
}

#[tokio::test]
async fn a_restart_that_diverges_ends_with_an_error_never_a_success() {
    // Gemini continues no prefill, and its seed makes it say something else.
    let sim = simulator(|b| b.configure(Provider::Gemini, |gemini| gemini.seed = 99)).await;
    let full = full_reply(&sim).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::CutAfter { events: 5 })],
    );
    let router = Failover::builder()
        .target(openai(&sim, None))
        .target(gemini(&sim))
        .build();

    let (events, trail) = run(&router).await;

    let (text, complete, error) = fold(&events);
    assert!(!complete, "never a success");
    let error = error.expect("an explicit error event");
    assert!(error.message().contains("diverged"), "{error}");
    assert!(full.starts_with(&text) && text.len() < full.len());
    assert!(matches!(events.last(), Some(StreamEvent::Error(_))));
    assert_eq!(sim.requests_for(Provider::Gemini).len(), 1);
    assert!(matches!(
        trail.recoveries[0].outcome,
        RecoveryOutcome::Failed { .. }
    ));
}

#[tokio::test]
async fn a_stall_mid_stream_is_recovered_within_the_idle_timeout_and_one_attempt() {
    let sim = simulator(|b| b).await;
    let full = full_reply(&sim).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(
            1,
            Fault::StallAfter {
                events: 4,
                ms: 10_000,
            },
        )],
    );
    let idle = Duration::from_millis(300);
    let router = Failover::builder()
        .target(openai(
            &sim,
            Some(AttemptTimeoutLayer::streams_only().idle(idle)),
        ))
        .target(anthropic(&sim))
        .build();

    let started = Instant::now();
    let (events, trail) = run(&router).await;
    let elapsed = started.elapsed();

    let (text, complete, error) = fold(&events);
    assert_eq!(error, None);
    assert!(complete);
    assert_eq!(text, full);
    assert!(elapsed >= idle, "{elapsed:?}");
    // The idle timeout plus one short attempt (about 30 ms here), with room for a busy
    // machine; far below the 10 s stall.
    assert!(elapsed < idle + Duration::from_secs(2), "{elapsed:?}");
    assert!(
        trail.recoveries[0].cause.contains("idle"),
        "{:?}",
        trail.recoveries
    );
    assert_eq!(
        recovered(&trail),
        Some((RecoveryPath::Continuation, "anthropic".into()))
    );
}

#[tokio::test]
async fn an_error_frame_mid_stream_is_recovered() {
    let sim = simulator(|b| b).await;
    let full = full_reply(&sim).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::ErrorFrameAfter { events: 6 })],
    );
    let router = Failover::builder()
        .target(openai(&sim, None))
        .target(anthropic(&sim))
        .build();

    let (events, trail) = run(&router).await;

    let (text, complete, error) = fold(&events);
    assert_eq!(error, None);
    assert!(complete);
    assert_eq!(text, full);
    assert_eq!(
        recovered(&trail),
        Some((RecoveryPath::Continuation, "anthropic".into()))
    );
}

#[tokio::test]
async fn a_stream_cut_inside_tool_call_arguments_is_restarted_with_prefix_match() {
    let sim = simulator(|b| b).await;
    let tools = [seawall_core::ToolDefinition::new(
        "get_weather",
        "The weather in a city.",
        serde_json::json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"enum": ["celsius", "fahrenheit"]}
            }
        }),
    )];
    let with_tools = || request().with_tools(tools.clone());
    // The reference call, clean.
    let adapter = OpenAi::new(
        client(),
        OpenAiConfig::new("sk-test").with_base_url(sim.base_url(Provider::OpenAi)),
    );
    let mut clean = adapter.oneshot(with_tools()).await.unwrap();
    let mut reference = StreamAccumulator::new();
    for event in collect(clean.stream.take().unwrap()).await {
        reference.push(&event).unwrap();
    }
    let expected = reference.tool_calls()[0].clone();
    sim.clear_log();

    // The role chunk, the call's head and a fragment of its arguments, then the cut.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::CutAfter { events: 3 })],
    );
    let router = Failover::builder()
        .target(openai(&sim, None))
        .target(anthropic(&sim))
        .build();
    let mut request = with_tools();
    let trail = request.context.trail().clone();
    let mut response = router.clone().oneshot(request).await.unwrap();
    let events = collect(response.stream.take().unwrap()).await;
    let trail = trail.snapshot();

    let mut answer = StreamAccumulator::new();
    for event in &events {
        answer.push(event).unwrap();
    }
    assert!(answer.is_complete());
    assert_eq!(answer.tool_calls().len(), 1);
    let call = &answer.tool_calls()[0];
    assert_eq!(call.name, expected.name);
    assert_eq!(
        call.arguments, expected.arguments,
        "the arguments whole, once"
    );
    // The call's head and at least one fragment of its arguments reached the caller.
    assert!(
        trail.recoveries[0].delivered_deltas >= 2,
        "{:?}",
        trail.recoveries
    );
    assert_eq!(
        recovered(&trail),
        Some((RecoveryPath::Restart, "anthropic".into()))
    );
    assert_eq!(prefills(&sim, Provider::Anthropic), vec![None]);
}
