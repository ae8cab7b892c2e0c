//! The embedded default: the simulator in-process as the upstream of a demo model group.

use std::time::Duration;

use seawall_sim::{Provider, Simulator};

use crate::config::{
    Config, ContentFilterConfig, GroupConfig, ProviderConfig, ProviderRefillConfig, StrategyConfig,
    TargetConfig,
};
use crate::server::{Gateway, GatewayBuilder};

/// The environment variable name the demo targets read their (simulated) key from; the
/// demo supplies its value itself.
const DEMO_KEY_ENV: &str = "SEAWALL_DEMO_KEY";

/// A config with one group, `demo`, over the simulator's OpenAI, Anthropic and Gemini
/// APIs in that priority order, at `simulator`'s base URLs.
pub fn demo_config(simulator: &Simulator) -> Config {
    let target = |name: &str, provider, sim: Provider, model: &str| TargetConfig {
        name: name.to_owned(),
        provider,
        model: model.to_owned(),
        base_url: Some(simulator.base_url(sim)),
        api_key_env: Some(DEMO_KEY_ENV.to_owned()),
        weight: 1,
        context_window: None,
        requests_per_minute: None,
        tokens_per_minute: None,
        limit_period: None,
        follow_provider_headers: false,
        provider_refill: ProviderRefillConfig::UntilReset,
        max_wait: None,
        queue_capacity: None,
        default_output_tokens: None,
        max_attempts: Some(2),
        max_server_wait: Some(Duration::from_secs(2)),
        attempt_timeout: Some(Duration::from_secs(30)),
        first_token_timeout: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(10)),
        breaker_failures: None,
        breaker_cooldown: None,
        input_price_per_mtok: None,
        output_price_per_mtok: None,
        accepts_prefill: None,
        continuation: None,
        forward_idempotency_key: false,
        api_version: None,
    };
    Config {
        targets: vec![
            target(
                "sim-openai",
                ProviderConfig::Openai,
                Provider::OpenAi,
                "gpt-4o-mini",
            ),
            target(
                "sim-anthropic",
                ProviderConfig::Anthropic,
                Provider::Anthropic,
                "claude-3-5-haiku-latest",
            ),
            target(
                "sim-gemini",
                ProviderConfig::Gemini,
                Provider::Gemini,
                "gemini-2.0-flash",
            ),
        ],
        groups: vec![GroupConfig {
            name: "demo".to_owned(),
            targets: vec![
                "sim-openai".to_owned(),
                "sim-anthropic".to_owned(),
                "sim-gemini".to_owned(),
            ],
            strategy: StrategyConfig::Priority,
            timeout: Duration::from_secs(60),
            content_filter: ContentFilterConfig::default(),
            hedge: None,
        }],
        ..Config::default()
    }
}

/// A gateway in front of an in-process simulator.
#[derive(Debug)]
pub struct Demo {
    /// The simulator behind the gateway; script faults on it.
    pub simulator: Simulator,
    /// The gateway, not yet serving.
    pub gateway: Gateway,
}

impl Demo {
    /// Starts a simulator on 127.0.0.1 (an ephemeral port) and builds the demo gateway
    /// over it; `adjust` may change the config first (add targets, groups, keys).
    pub async fn start(
        adjust: impl FnOnce(&mut Config),
        builder: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let simulator = Simulator::builder()
            .listen("127.0.0.1:0".parse()?)
            .start()
            .await?;
        let mut config = demo_config(&simulator);
        adjust(&mut config);
        let gateway = builder(Gateway::builder(config).env(DEMO_KEY_ENV, "sk-sim")).build()?;
        Ok(Self { simulator, gateway })
    }
}
