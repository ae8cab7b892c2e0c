//! An OpenAI-compatible gateway built from the seawall layers.
//!
//! Any program that speaks the OpenAI Chat Completions API (the official SDKs, curl) points
//! its base URL at the gateway and gets the seawall stack behind it: per target
//! `Retry → Breaker → RateLimit → AttemptTimeout → adapter`
//! ([`TargetStack`](seawall::stack::TargetStack)), per model group a
//! [`Failover`](seawall::failover::Failover) router over its targets, and an overall
//! [`DeadlineLayer`](seawall::timeout::DeadlineLayer) outermost.
//!
//! Routes: `POST /v1/chat/completions` (streaming and not), `GET /v1/models`,
//! `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text), `GET /status` (JSON),
//! `GET /admin/usage` (spend by key, model and target).
//!
//! Every call passes one [`BudgetLayer`](seawall::budget::BudgetLayer) in front of the group
//! router: each call is priced, per-key budgets are reserved before sending and settled with
//! real usage, and a call a budget refuses may be sent to a cheaper group.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use seawall_gateway::{Config, Gateway};
//!
//! let config = Config::from_toml(r#"
//!     [[targets]]
//!     name = "openai"
//!     provider = "openai"
//!     model = "gpt-4o-mini"
//!     api_key_env = "OPENAI_API_KEY"
//!
//!     [[groups]]
//!     name = "chat"
//!     targets = ["openai"]
//! "#)?;
//! let gateway = Gateway::builder(config).build()?;
//! let handle = gateway.listen("127.0.0.1:0".parse()?).serve().await?;
//! println!("listening on http://{}", handle.local_addr());
//! handle.shutdown().await; // drains in-flight streams
//! # Ok(())
//! # }
//! ```
//!
//! See the crate README for the configuration reference and the metrics, and
//! [`telemetry`] for OTLP trace export.

pub mod access;
mod config;
#[cfg(feature = "demo")]
mod demo;
mod dialect;
mod jsonl;
mod log_writer;
mod metrics;
mod origin;
mod redact;
mod router;
#[cfg(feature = "semantic-cache")]
mod semantic;
mod server;
mod spend;
mod state;
mod status;
pub mod telemetry;
mod upstream;
pub mod wire;

pub use config::{
    AlertConfig, BudgetConfig, CacheConfig, Config, ConfigError, ContentFilterConfig,
    ContinuationConfig, GroupConfig, HedgeConfig, IdempotencyConfig, KeyBudgetConfig,
    OverOutputConfig, PriceConfig, ProviderConfig, ServerConfig, StrategyConfig, TargetConfig,
    TelemetryConfig, VirtualKeyConfig, parse_duration,
};
#[cfg(feature = "demo")]
#[cfg_attr(docsrs, doc(cfg(feature = "demo")))]
pub use demo::{Demo, demo_config};
pub use dialect::Dialect;
#[cfg(feature = "semantic-cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "semantic-cache")))]
pub use semantic::{SemanticCacheConfig, SemanticScopeConfig};
pub use server::{Gateway, GatewayBody, GatewayBuilder, GatewayHandle, Reloaded};
