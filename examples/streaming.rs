//! Streaming through the failover router's commit point, on the embedded simulator.
//!
//! The first target's stream is cut after its first event (before any text): the router
//! fails over transparently and the caller sees only the second target's complete stream.
//! Then a single-target router whose stream is cut after some text: the caller gets the text
//! delivered so far and then an explicit error event, never a stream passed off as complete.
//!
//! Run with `cargo run --example streaming`.

use std::time::Duration;

use seawall::failover::Failover;
use seawall::stack::TargetStack;
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::{BoxError, ChatRequest, ChatResponse, Message, StreamEvent};
use seawall_providers::http::HttpClientConfig;
use seawall_providers::{Anthropic, AnthropicConfig, OpenAi, OpenAiConfig};
use seawall_sim::{Fault, FaultRule, Provider, Simulator};
use tower::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::builder()
        .reply_tokens(12)
        .chunk_interval(Duration::from_millis(15))
        .start()
        .await?;
    let http = HttpClientConfig::default().build()?;
    let openai = OpenAi::new(
        http.clone(),
        OpenAiConfig::new("sk-sim").with_base_url(sim.base_url(Provider::OpenAi)),
    );
    let anthropic = Anthropic::new(
        http,
        AnthropicConfig::new("sk-sim").with_base_url(sim.base_url(Provider::Anthropic)),
    );
    // First token within 2 s, no more than 1 s of silence between events.
    let timeouts = AttemptTimeoutLayer::new(Duration::from_secs(10))
        .first_token(Duration::from_secs(2))
        .idle(Duration::from_secs(1));
    let openai_target = TargetStack::new("openai")
        .attempt_timeout(timeouts)
        .build(openai.clone());
    let anthropic_target = TargetStack::new("anthropic")
        .attempt_timeout(timeouts)
        .build(anthropic);

    let mut request = ChatRequest::new("chat", [Message::user("Tell me about the harbor.")]);
    request.stream = true;

    println!("1. OpenAI's stream is cut before its first token:");
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::CutAfter { events: 1 })],
    );
    let router = Failover::builder()
        .target(openai_target.target.model("gpt-4o-mini"))
        .target(anthropic_target.target.model("claude-haiku-4-5"))
        .build();
    let response = router.oneshot(request.clone()).await?;
    for attempt in &response.trail.attempts {
        println!("   trail: {attempt}");
    }
    print_stream(response).await;

    println!("\n2. One target, its stream cut after four events (text already delivered):");
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::CutAfter { events: 4 })],
    );
    let single = Failover::builder()
        .target(
            TargetStack::new("openai-only")
                .attempt_timeout(timeouts)
                .build(openai)
                .target
                .model("gpt-4o-mini"),
        )
        .build();
    let response = single.oneshot(request).await?;
    print_stream(response).await;

    sim.shutdown().await;
    Ok(())
}

/// Prints the text as it arrives, then how the stream ended.
async fn print_stream(mut response: ChatResponse) {
    let model = response.trail.final_model.clone().unwrap_or_default();
    print!("   {} ({model}): ", response.provider.as_str());
    let Some(mut stream) = response.stream.take() else {
        println!("{}", response.text());
        return;
    };
    let mut usage = None;
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::TextDelta(text) => print!("{text}"),
            StreamEvent::Finish(reason) => println!("\n   finished: {reason:?}"),
            StreamEvent::Usage(reported) => usage = Some(reported),
            StreamEvent::Error(error) => println!("\n   error event: {error}"),
            _ => {}
        }
    }
    if let Some(usage) = usage {
        println!("   usage: {} tokens", usage.total());
    }
}
