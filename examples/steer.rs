//! The four layers by name in one `ServiceBuilder` per provider, and `tower::steer::Steer`
//! picking the provider's stack by model name:
//!
//! ```text
//! Steer (by model) ─┬─ FailoverLayer ─ Retry ─ Breaker ─ RateLimit ─ OpenAI adapter
//!                   │        └── fallback: the Anthropic stack
//!                   └─ FailoverLayer ─ Retry ─ Breaker ─ RateLimit ─ Anthropic adapter
//!                            └── fallback: the OpenAI stack
//! ```
//!
//! `gpt-*` calls go to OpenAI first, `claude-*` calls to Anthropic first; each falls back to
//! the other provider under that provider's model name. The embedded simulator serves both
//! on a loopback port; Anthropic answers 529 overloaded to its requests 2 to 4, so the
//! Claude calls in that stretch are answered by OpenAI, until Anthropic's breaker opens and
//! its stack is skipped without a request.
//!
//! Run with `cargo run --example steer`.

use std::sync::Arc;
use std::time::Duration;

use seawall::ServiceBuilderExt;
use seawall::breaker::BreakerLayer;
use seawall::failover::{Failover, FailoverLayer, Target};
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
use seawall::retry::RetryLayer;
use seawall_core::{BoxError, ChatRequest, Message};
use seawall_providers::http::HttpClientConfig;
use seawall_providers::{Anthropic, AnthropicConfig, OpenAi, OpenAiConfig};
use seawall_sim::{Fault, FaultRule, Provider, Simulator};
use tower::steer::Steer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::builder()
        .first_token(Duration::from_millis(10))
        .faults(
            Provider::Anthropic,
            vec![FaultRule::requests(2, 4, Fault::overloaded())],
        )
        .start()
        .await?;
    let http = HttpClientConfig::default().build()?;

    // Each provider's own stack: retry, breaker and rate limit, by their layer names.
    let openai_breaker = BreakerLayer::builder("openai")
        .consecutive_failures(2)
        .build();
    let openai = ServiceBuilder::new()
        .retry_target(RetryLayer::new().max_attempts(2))
        .layer(openai_breaker.clone())
        .rate_limit_target(RateLimiter::new(
            "openai",
            RateLimitConfig::new().requests(Rate::per_minute(600)),
        ))
        .service(OpenAi::new(
            http.clone(),
            OpenAiConfig::new("sk-sim").with_base_url(sim.base_url(Provider::OpenAi)),
        ));
    let anthropic_breaker = BreakerLayer::builder("anthropic")
        .consecutive_failures(2)
        .build();
    let anthropic = ServiceBuilder::new()
        .retry_target(RetryLayer::new().max_attempts(1))
        .layer(anthropic_breaker.clone())
        .rate_limit_target(RateLimiter::new(
            "anthropic",
            RateLimitConfig::new().requests(Rate::per_minute(600)),
        ))
        .service(Anthropic::new(
            http,
            AnthropicConfig::new("sk-sim").with_base_url(sim.base_url(Provider::Anthropic)),
        ));

    // One router per provider: its stack first, the other provider as the fallback. The
    // breakers are gates, so an open one is skipped without a request.
    let gpt: Failover = FailoverLayer::new("openai")
        .primary_gate(Arc::new(openai_breaker.handle()))
        .fallback(
            Target::new("anthropic", anthropic.clone())
                .model("claude-sonnet-4-5")
                .gate(Arc::new(anthropic_breaker.handle())),
        )
        .layer(openai.clone());
    let claude: Failover = FailoverLayer::new("anthropic")
        .primary_gate(Arc::new(anthropic_breaker.handle()))
        .fallback(
            Target::new("openai", openai)
                .model("gpt-4o-mini")
                .gate(Arc::new(openai_breaker.handle())),
        )
        .layer(anthropic);
    let mut by_model = Steer::new(
        vec![gpt, claude],
        |request: &ChatRequest, _: &[Failover]| usize::from(request.model.starts_with("claude")),
    );

    println!("seawall steer: a stack per provider, picked by model\n");
    for (i, model) in [
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "gpt-4o-mini",
    ]
    .into_iter()
    .enumerate()
    {
        let request = ChatRequest::new(model, [Message::user("Say hello to the harbor.")]);
        let response = by_model.ready().await?.call(request).await?;
        let tried: Vec<String> = response
            .trail
            .attempts
            .iter()
            .map(|attempt| attempt.to_string())
            .collect();
        println!(
            "call {}: asked {model:<18} answered by {:<18} ({})",
            i + 1,
            response.model,
            tried.join(", ")
        );
    }
    println!(
        "\nanthropic's breaker: {:?}; openai's: {:?}",
        anthropic_breaker.handle().state(),
        openai_breaker.handle().state()
    );
    Ok(())
}
