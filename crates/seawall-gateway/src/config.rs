//! The gateway's TOML configuration, validated at start.
//!
//! See `gateway.example.toml` next to the crate's manifest for a documented example, and
//! the crate README for the full reference.

use seawall::failover::Hedge;
use seawall_core::{ClassifyPolicy, ContentFilterPolicy, ProviderKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

pub use crate::spend::config::{
    AlertConfig, BudgetConfig, KeyBudgetConfig, OverOutputConfig, PriceConfig,
};
use serde::de::{self, Deserializer};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Upstream targets by name.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Model groups: what clients may name in `model`.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// Virtual keys. With none, the gateway accepts calls without a key.
    #[serde(default)]
    pub keys: Vec<VirtualKeyConfig>,
    /// `[cache]`: a response cache in front of every group; off unless present.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// `[semantic_cache]`: answers similar prompts from stored answers (feature
    /// `semantic-cache`); off unless present.
    #[cfg(feature = "semantic-cache")]
    #[serde(default)]
    pub semantic_cache: Option<crate::semantic::SemanticCacheConfig>,
    /// `[idempotency]`: `Idempotency-Key` support; off unless present.
    #[serde(default)]
    pub idempotency: Option<IdempotencyConfig>,
    /// `[prices."model"]`: prices replacing or adding to the built-in table.
    #[serde(default)]
    pub prices: BTreeMap<String, PriceConfig>,
    /// `[budget]`: per-request caps, the downgrade group, the calendar, the alert webhook.
    #[serde(default)]
    pub budget: BudgetConfig,
    /// `[[alerts]]`: spending alerts.
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
    /// `[state]`: limiters and budgets shared by replicas through Redis; in process
    /// without it.
    #[serde(default)]
    pub state: Option<StateConfig>,
    /// `[telemetry]`: OTLP trace export; off unless `otlp_endpoint` is set.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: export of the gateway's request spans and the layers' call and attempt
/// spans (OpenTelemetry GenAI attribute names) over OTLP/HTTP with protobuf. Nothing is
/// built, no thread started, when `otlp_endpoint` is absent.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// `otlp_endpoint`: the collector's OTLP/HTTP traces URL, `http://` or `https://`
    /// (`http://127.0.0.1:4318/v1/traces`); a URL without a path gets `/v1/traces`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service_name`: the `service.name` resource attribute (default `seawall-gateway`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// `sample_ratio`: the share of new traces kept, from 0 to 1 (default 1); a trace the
    /// caller started follows the caller's sampled flag.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// `headers`: headers sent with each export, by name (values never shown).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `headers_env`: headers sent with each export, by name, each value read from the
    /// named environment variable (for a collector's auth header).
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
}

impl fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials: only their names are shown.
        f.debug_struct("TelemetryConfig")
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("headers_env", &self.headers_env)
            .finish()
    }
}

impl TelemetryConfig {
    /// Whether traces are exported.
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
    }
}

/// `[state]`: where the target limiters, the per-key limits and the budgets live when
/// several gateway replicas serve one provider account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `redis_url`: `redis://host:6379/0`. A URL with a password belongs in
    /// `redis_url_env`.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// `redis_url_env`: the environment variable that holds the URL.
    #[serde(default)]
    pub redis_url_env: Option<String>,
    /// `on_redis_down`: `"fail_open"` (default: each replica decides on its own state,
    /// counted and logged) or `"fail_closed"` (calls are refused with a 503).
    #[serde(default)]
    pub on_redis_down: OnRedisDownConfig,
    /// `timeout`: the longest a call waits for Redis (default `"50ms"`).
    #[serde(default = "default_state_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// `key_prefix`: prepended to every key (default `"seawall:"`).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

/// `on_redis_down`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisDownConfig {
    /// Decide on in-process state.
    #[default]
    FailOpen,
    /// Refuse calls that need the shared state.
    FailClosed,
}

fn default_state_timeout() -> Duration {
    Duration::from_millis(50)
}

fn default_key_prefix() -> String {
    "seawall:".to_owned()
}

/// `[cache]`: exact-match response cache (see `seawall::cache`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `ttl`: how long an answer is fresh (e.g. `"10m"`).
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// `stale_if_error`: how long past its TTL an answer may still stand in when every
    /// target of the group failed; unset: never.
    #[serde(default, deserialize_with = "opt_duration")]
    pub stale_if_error: Option<Duration>,
    /// `max_bytes`: the most the store holds (default 64 MiB).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
}

fn default_cache_bytes() -> u64 {
    64 * 1024 * 1024
}

/// `[idempotency]`: calls with the same `Idempotency-Key` header (and the same body) are
/// one call (see `seawall::idempotency`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// `ttl`: how long a finished answer is replayed for its key (default 24 h).
    #[serde(default = "default_idempotency_ttl", deserialize_with = "duration")]
    pub ttl: Duration,
}

fn default_idempotency_ttl() -> Duration {
    Duration::from_secs(24 * 3_600)
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `listen`: the address to bind (port 0 picks one). `--listen` overrides it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `max_body_bytes`: the largest request body accepted (413 above it).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// `shutdown_grace`: how long in-flight requests and streams may run after a shutdown
    /// signal (e.g. `"30s"`).
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// `threads`: how many server threads to run, each with its own single-threaded
    /// runtime and its own upstream connection pool, so that a request, its upstream call
    /// and its response stay on one thread. `0` serves on the caller's runtime instead.
    /// Unset: the caller's runtime for [`Gateway::serve`](crate::Gateway::serve) in a
    /// program of yours; one thread per core for the `seawall-gateway` binary.
    #[serde(default)]
    pub threads: Option<usize>,
    /// `allowed_hosts`: the host names clients reach the gateway by (`Host` header, port
    /// left out). Unset: the loopback names when listening on a loopback address, any host
    /// otherwise.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// `allowed_origins`: browser origins (`https://app.example`) allowed to call the
    /// gateway. Unset: only pages served from an allowed host.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// `admin_key_env`: the environment variable holding the key that `/status` and
    /// `/metrics` require (`Authorization: Bearer <key>`). Unset: they are open when no
    /// virtual keys are configured, and closed when some are (they list every key's name
    /// and usage).
    #[serde(default)]
    pub admin_key_env: Option<String>,
    /// `header_read_timeout`: how long a client may take to send a request's headers
    /// (silent and trickling connections are closed after it).
    #[serde(default = "default_header_read", deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// `body_read_timeout`: how long a client may take to send a request's body (408
    /// after it).
    #[serde(default = "default_body_read", deserialize_with = "duration")]
    pub body_read_timeout: Duration,
    /// `max_connections`: open client connections at most; more wait in the listen
    /// backlog until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// `max_in_flight`: chat calls handled at once; one more is answered 503 with
    /// `retry-after` (with `max_body_bytes`, this bounds the memory request bodies take).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_max_in_flight() -> usize {
    512
}

fn default_header_read() -> Duration {
    Duration::from_secs(10)
}

fn default_body_read() -> Duration {
    Duration::from_secs(30)
}

fn default_max_connections() -> usize {
    4_096
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            shutdown_grace: default_grace(),
            threads: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            admin_key_env: None,
            header_read_timeout: default_header_read(),
            body_read_timeout: default_body_read(),
            max_connections: default_max_connections(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

/// More server threads than this is a typo, not a plan.
const MAX_SERVER_THREADS: usize = 1024;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}

/// `provider_refill` of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRefillConfig {
    /// Nothing comes back before the reported reset.
    #[default]
    UntilReset,
    /// Linear to the limit at the reported reset.
    Continuous,
}

/// The provider API a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderConfig {
    /// OpenAI Chat Completions.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
    /// An OpenAI-compatible server (Ollama, vLLM, llama.cpp, ...); the key is optional.
    OpenaiCompatible,
    /// The OpenAI Responses API (`POST /v1/responses`).
    OpenaiResponses,
    /// Azure OpenAI: `base_url` is the resource's endpoint, the key goes in `api-key`.
    AzureOpenai,
}

/// `[[targets]]`: one upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `name`: a unique name, used in groups, headers, metrics and `/status`; at most 128
    /// characters, without control characters or whitespace at either end.
    pub name: String,
    /// `provider`: `openai`, `anthropic`, `gemini`, `openai_compatible`,
    /// `openai_responses` or `azure_openai`.
    pub provider: ProviderConfig,
    /// `model`: the model name sent to this target (an alias group maps to it).
    pub model: String,
    /// `base_url`: the API's base URL; the provider's public API when absent
    /// (required for `openai_compatible`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `api_key_env`: the environment variable holding the key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `weight`: the target's weight in a `weighted` group.
    #[serde(default = "one")]
    pub weight: u32,
    /// `context_window`: the model's context window in tokens; calls that cannot fit skip it.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// `requests_per_minute`: the target's request limit.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// `tokens_per_minute`: the target's token limit.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// `limit_period`: the window `requests_per_minute` and `tokens_per_minute` count over
    /// (default a minute; with `"1s"` they are per second).
    #[serde(default, deserialize_with = "opt_duration")]
    pub limit_period: Option<Duration>,
    /// `follow_provider_headers`: a limiter for this target even with no limit configured,
    /// that holds it to what the provider's rate-limit headers report (default false;
    /// with a limit configured the headers are always followed).
    #[serde(default)]
    pub follow_provider_headers: bool,
    /// `provider_refill`: how the provider's capacity comes back between its reports:
    /// `until_reset` (default, right for every provider) or `continuous` (a token bucket,
    /// as OpenAI and Anthropic document).
    #[serde(default)]
    pub provider_refill: ProviderRefillConfig,
    /// `max_wait`: the longest a call waits for this target's limiter (default 30 s); a
    /// longer wait fails over at once.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_wait: Option<Duration>,
    /// `queue_capacity`: how many calls may wait for this target's limiter (default 1024).
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    /// `default_output_tokens`: the output tokens reserved for a call that sets no
    /// `max_tokens` (default 1024).
    #[serde(default)]
    pub default_output_tokens: Option<u32>,
    /// `max_attempts`: attempts on this target per call, retries included.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// `max_server_wait`: the longest `retry-after` the gateway waits on this target; a
    /// longer one fails over at once.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_server_wait: Option<Duration>,
    /// `attempt_timeout`: the limit on one attempt until its response (for a call that is
    /// not streamed, the whole answer; for a stream, its head), after which the call fails
    /// over. Default 60 s when the file leaves it out; `"off"` (here: `None`) disables it.
    #[serde(
        default = "default_attempt_timeout",
        deserialize_with = "duration_or_off"
    )]
    pub attempt_timeout: Option<Duration>,
    /// `first_token_timeout`: the limit on a stream's first content, after which the
    /// stream fails over. Default 30 s when the file leaves it out; `"off"` (here: `None`)
    /// disables it.
    #[serde(
        default = "default_first_token_timeout",
        deserialize_with = "duration_or_off"
    )]
    pub first_token_timeout: Option<Duration>,
    /// `idle_timeout`: the limit between two stream events, after which the stream is
    /// recovered or ends with an error. Default 30 s when the file leaves it out; `"off"`
    /// (here: `None`) disables it.
    #[serde(default = "default_idle_timeout", deserialize_with = "duration_or_off")]
    pub idle_timeout: Option<Duration>,
    /// `breaker_failures`: consecutive failures that open the breaker.
    #[serde(default)]
    pub breaker_failures: Option<u32>,
    /// `breaker_cooldown`: how long an opened breaker stays open at first.
    #[serde(default, deserialize_with = "opt_duration")]
    pub breaker_cooldown: Option<Duration>,
    /// `input_price_per_mtok`: USD per million input tokens, for the cost metric.
    #[serde(default)]
    pub input_price_per_mtok: Option<f64>,
    /// `output_price_per_mtok`: USD per million output tokens, for the cost metric.
    #[serde(default)]
    pub output_price_per_mtok: Option<f64>,
    /// `accepts_prefill`: whether a stream broken after its first token may be continued on
    /// this target with the delivered text as an assistant prefill. Defaults by provider:
    /// `anthropic` and `openai_compatible` yes, `openai` and `gemini` no (they are restarted
    /// and their text matched against what was delivered instead).
    #[serde(default)]
    pub accepts_prefill: Option<bool>,
    /// `continuation`: how a stream broken elsewhere is finished on this target:
    /// `prefill`, `user_message` or `restart` (overrides `accepts_prefill`). Defaults by
    /// provider and model: a prefill for `anthropic` and `openai_compatible`, a user message
    /// for Claude models from 4.6 on (they refuse a prefill), a restart for `openai` and
    /// `gemini`.
    #[serde(default)]
    pub continuation: Option<ContinuationConfig>,
    /// `forward_idempotency_key`: send the caller's `Idempotency-Key` on to this target
    /// (`openai` and `openai_compatible` only; default off: no provider documents one for
    /// chat completions, but another gateway accepts it).
    #[serde(default)]
    pub forward_idempotency_key: bool,
    /// `api_version`: for `azure_openai`, the API version of the deployment URL
    /// (`{base_url}/openai/deployments/{model}/...?api-version=...`, `model` naming the
    /// deployment); without it, Azure's v1 API (`{base_url}/openai/v1/...`).
    #[serde(default)]
    pub api_version: Option<String>,
}

/// `continuation` of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContinuationConfig {
    /// The delivered text as a trailing assistant message.
    Prefill,
    /// The delivered text as the assistant's turn and a user message asking to continue.
    UserMessage,
    /// The request again, its output matched against what was delivered.
    Restart,
}

fn one() -> u32 {
    1
}

/// One attempt until its response. A call that is not streamed waits this long for its
/// whole answer: about 3,000 to 6,000 output tokens at common speeds, and the 120 s
/// default group timeout still has room for a failover after it.
fn default_attempt_timeout() -> Option<Duration> {
    Some(Duration::from_secs(60))
}

/// A stream's first content: usually a few seconds, more for long prompts or a busy
/// provider; 30 s leaves most of the group timeout to fail over a silent stream.
fn default_first_token_timeout() -> Option<Duration> {
    Some(Duration::from_secs(30))
}

/// Between two stream events: usually well under a second; 30 s tolerates long pauses
/// and still catches a stalled connection.
fn default_idle_timeout() -> Option<Duration> {
    Some(Duration::from_secs(30))
}

/// How a group orders its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyConfig {
    /// In the listed order.
    #[default]
    Priority,
    /// Drawn by the targets' weights.
    Weighted,
    /// Fastest first.
    LeastLatency,
}

impl ProviderConfig {
    /// The wire protocol of the provider.
    pub fn kind(self) -> ProviderKind {
        match self {
            Self::Openai => ProviderKind::OpenAi,
            Self::Anthropic => ProviderKind::Anthropic,
            Self::Gemini => ProviderKind::Gemini,
            Self::OpenaiCompatible => ProviderKind::OpenAiCompatible,
            Self::OpenaiResponses => ProviderKind::OpenAiResponses,
            Self::AzureOpenai => ProviderKind::AzureOpenAi,
        }
    }
}

/// `[[groups]]`: what a client names in `model`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// `name`: an alias (`chat`), or a pattern with one `*` at the end (`openai/*`,
    /// `team-*`): the requested model then passes through unchanged to the first target,
    /// with the other targets (and their own models) behind it. At most 128 characters,
    /// without control characters or whitespace at either end.
    pub name: String,
    /// `targets`: target names, in priority order.
    pub targets: Vec<String>,
    /// `strategy`: `priority` (default), `weighted` or `least_latency`.
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// `timeout`: the overall deadline of a call, retries and failovers included.
    #[serde(default = "default_overall", deserialize_with = "duration")]
    pub timeout: Duration,
    /// `content_filter`: what a content-filter refusal leads to: `return` it to the client
    /// (default) or `failover` to the next target. The group's one classifier applies it
    /// to the router, the retry layers and the breakers alike.
    #[serde(default)]
    pub content_filter: ContentFilterConfig,
    /// `hedge`: hedged requests (off when absent): a call with no content after the delay
    /// is sent to the group's next target too, and the first to answer wins.
    #[serde(default)]
    pub hedge: Option<HedgeConfig>,
}

/// `hedge = { after = "300ms" }`, or `{ quantile = 0.95, min = "50ms", max = "2s" }`: when
/// a group's call is sent its next target too. Each hedge spends from the slow target's
/// retry budget (20 % of its calls, plus 10 per second), so hedges cannot storm.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    /// `after`: the delay with no content before a hedge; with `quantile`, the delay used
    /// until a target has 20 samples (default: `max`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub after: Option<Duration>,
    /// `quantile`: hedge after this quantile (`0.95` for p95) of the target's recent times
    /// to first content (its last 64 answers).
    #[serde(default)]
    pub quantile: Option<f64>,
    /// `min`: the shortest delay a quantile gives (default zero).
    #[serde(default, deserialize_with = "opt_duration")]
    pub min: Option<Duration>,
    /// `max`: the longest delay a quantile gives (default none).
    #[serde(default, deserialize_with = "opt_duration")]
    pub max: Option<Duration>,
    /// `max_extra`: the most hedges in flight beside the first attempt (default 1).
    #[serde(default = "one_hedge")]
    pub max_extra: u32,
}

fn one_hedge() -> u32 {
    1
}

/// The most hedges a group may have in flight beside the first attempt.
const MAX_EXTRA_HEDGES: u32 = 4;

impl HedgeConfig {
    /// The router's hedge policy.
    pub fn policy(&self) -> Hedge {
        let fallback = self.after.or(self.max).unwrap_or(Duration::from_secs(1));
        let mut hedge = Hedge::after(fallback).max_extra(self.max_extra);
        if let Some(q) = self.quantile {
            hedge = hedge.quantile(q);
        }
        if let Some(min) = self.min {
            hedge = hedge.floor(min);
        }
        if let Some(max) = self.max {
            hedge = hedge.ceiling(max);
        }
        hedge
    }

    fn validate(&self, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        match (self.after, self.quantile) {
            (None, None) => return Err(problem(key("hedge"), "set `after` or `quantile`")),
            (None, Some(_)) if self.max.is_none() => {
                return Err(problem(
                    key("hedge"),
                    "with `quantile`, set `after` or `max` (the delay until enough samples)",
                ));
            }
            _ => {}
        }
        if let Some(q) = self.quantile
            && !(q > 0.0 && q <= 1.0)
        {
            return Err(problem(
                key("hedge.quantile"),
                "must be in (0, 1], such as 0.95",
            ));
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err(problem(key("hedge.min"), "must not be more than `max`"));
        }
        if self.max_extra == 0 || self.max_extra > MAX_EXTRA_HEDGES {
            return Err(problem(
                key("hedge.max_extra"),
                format!("must be 1 to {MAX_EXTRA_HEDGES}"),
            ));
        }
        Ok(())
    }
}

/// What a content-filter refusal leads to in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentFilterConfig {
    /// Return the refusal to the client.
    #[default]
    Return,
    /// Try the next target.
    Failover,
}

impl ContentFilterConfig {
    /// The classification policy for this choice.
    pub fn policy(self) -> ClassifyPolicy {
        ClassifyPolicy::default().content_filter(match self {
            Self::Return => ContentFilterPolicy::Return,
            Self::Failover => ContentFilterPolicy::Failover,
        })
    }
}

fn default_overall() -> Duration {
    Duration::from_secs(120)
}

impl GroupConfig {
    /// The pattern's prefix when the name ends with `*`.
    pub fn prefix(&self) -> Option<&str> {
        self.name.strip_suffix('*')
    }
}

/// `[[keys]]`: a virtual key clients send as `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualKeyConfig {
    /// `name`: shown in metrics and logs (never the key itself); at most 128 characters,
    /// without control characters or whitespace at either end.
    pub name: String,
    /// `key_env`: the environment variable holding the key.
    pub key_env: String,
    /// `requests_per_minute`: the key's inbound request limit.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// `token_budget`: total tokens (in + out) the key may use; 429 once spent (the same as
    /// a `lifetime` budget in tokens).
    #[serde(default)]
    pub token_budget: Option<u64>,
    /// `budgets`: the key's limits per window, in tokens or dollars.
    #[serde(default)]
    pub budgets: Vec<KeyBudgetConfig>,
}

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, such as `targets[1].api_key_env`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// `[defaults]` names target settings only, and not a target's `name`.
fn check_defaults(defaults: &toml::Table) -> Result<(), ConfigError> {
    if defaults.contains_key("name") {
        return Err(problem("defaults.name", "each target names itself"));
    }
    // A target made of the defaults and placeholders for what they lack: an unknown key
    // or a value of the wrong type is an error of `defaults`, not of some target.
    let mut probe = defaults.clone();
    probe.insert("name".into(), "defaults".into());
    probe.entry("provider").or_insert_with(|| "openai".into());
    probe.entry("model").or_insert_with(|| "defaults".into());
    toml::Value::Table(probe)
        .try_into::<TargetConfig>()
        .map(drop)
        .map_err(|e| problem("defaults", e.message().to_owned()))
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config: {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn problem(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Parses `text` and checks its structure (keys are checked when the gateway is built,
    /// see [`Config::validate`]).
    ///
    /// A `[defaults]` table holds target settings every `[[targets]]` entry takes unless it
    /// sets its own (any target key but `name`).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        if !text.contains("defaults") {
            // The common case keeps the parser's line and column in its errors.
            return toml::from_str(text).map_err(|e| problem("(file)", e.to_string()));
        }
        let mut document: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| problem("(file)", e.to_string()))?;
        if let Some(defaults) = document.remove("defaults") {
            let toml::Value::Table(defaults) = defaults else {
                return Err(problem("defaults", "must be a table of target settings"));
            };
            check_defaults(&defaults)?;
            if let Some(toml::Value::Array(targets)) = document.get_mut("targets") {
                for target in targets.iter_mut() {
                    if let toml::Value::Table(target) = target {
                        for (key, value) in &defaults {
                            target.entry(key.clone()).or_insert_with(|| value.clone());
                        }
                    }
                }
            }
        }
        toml::Value::Table(document)
            .try_into()
            .map_err(|e: toml::de::Error| problem("(file)", e.to_string()))
    }

    /// Checks names, references and limits, and that every key's environment variable is
    /// set, looking variables up with `env`.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(variable) = &self.server.admin_key_env
            && env(variable).is_none_or(|key| key.is_empty())
        {
            return Err(problem(
                "server.admin_key_env",
                format!("the environment variable {variable:?} is not set"),
            ));
        }
        if let Some(state) = &self.state {
            match (&state.redis_url, &state.redis_url_env) {
                (Some(_), None) => {}
                (None, Some(variable)) if env(variable).is_some_and(|url| !url.is_empty()) => {}
                (None, Some(variable)) => {
                    return Err(problem(
                        "state.redis_url_env",
                        format!("the environment variable {variable:?} is not set"),
                    ));
                }
                _ => {
                    return Err(problem("state", "set one of redis_url and redis_url_env"));
                }
            }
            if state.timeout.is_zero() {
                return Err(problem("state.timeout", "must be more than zero"));
            }
        }
        crate::telemetry::validate(&self.telemetry, env)?;
        if self.server.threads.is_some_and(|n| n > MAX_SERVER_THREADS) {
            return Err(problem(
                "server.threads",
                format!("at most {MAX_SERVER_THREADS}"),
            ));
        }
        let mut names = HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let key = |field: &str| format!("targets[{i}].{field}");
            check_name(&key("name"), &t.name)?;
            if !names.insert(t.name.as_str()) {
                return Err(problem(
                    key("name"),
                    format!("duplicate target {:?}", t.name),
                ));
            }
            if t.model.is_empty() {
                return Err(problem(key("model"), "must not be empty"));
            }
            if let Some(url) = &t.base_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(problem(
                    key("base_url"),
                    "must start with http:// or https://",
                ));
            }
            if t.forward_idempotency_key
                && !matches!(
                    t.provider,
                    ProviderConfig::Openai | ProviderConfig::OpenaiCompatible
                )
            {
                return Err(problem(
                    key("forward_idempotency_key"),
                    "only for openai and openai_compatible targets",
                ));
            }
            if matches!(
                t.provider,
                ProviderConfig::OpenaiCompatible | ProviderConfig::AzureOpenai
            ) && t.base_url.is_none()
            {
                return Err(problem(
                    key("base_url"),
                    "required for openai_compatible and azure_openai",
                ));
            }
            if t.api_version.is_some() && t.provider != ProviderConfig::AzureOpenai {
                return Err(problem(key("api_version"), "only for azure_openai targets"));
            }
            match (&t.api_key_env, t.provider) {
                (None, ProviderConfig::OpenaiCompatible) => {}
                (None, _) => return Err(problem(key("api_key_env"), "required for this provider")),
                (Some(var), _) => {
                    if env(var).is_none_or(|v| v.is_empty()) {
                        return Err(problem(
                            key("api_key_env"),
                            format!("environment variable {var} is not set"),
                        ));
                    }
                }
            }
            if t.weight == 0 {
                return Err(problem(key("weight"), "must be at least 1"));
            }
            if t.max_attempts == Some(0) {
                return Err(problem(key("max_attempts"), "must be at least 1"));
            }
            if t.requests_per_minute == Some(0) {
                return Err(problem(key("requests_per_minute"), "must be at least 1"));
            }
            if t.limit_period.is_some_and(|p| p.is_zero()) {
                return Err(problem(key("limit_period"), "must be longer than zero"));
            }
            if t.tokens_per_minute == Some(0) {
                return Err(problem(key("tokens_per_minute"), "must be at least 1"));
            }
            for (field, timeout) in [
                ("attempt_timeout", t.attempt_timeout),
                ("first_token_timeout", t.first_token_timeout),
                ("idle_timeout", t.idle_timeout),
            ] {
                if timeout.is_some_and(|t| t.is_zero()) {
                    return Err(problem(
                        key(field),
                        "must be more than zero (\"off\" disables it)",
                    ));
                }
            }
            if t.breaker_failures == Some(0) {
                return Err(problem(key("breaker_failures"), "must be at least 1"));
            }
            for (field, price) in [
                ("input_price_per_mtok", t.input_price_per_mtok),
                ("output_price_per_mtok", t.output_price_per_mtok),
            ] {
                if price.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
                    return Err(problem(key(field), "must be a non-negative number"));
                }
            }
        }
        if self.groups.is_empty() {
            return Err(problem("groups", "at least one group is required"));
        }
        let mut groups = HashSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            let key = |field: &str| format!("groups[{i}].{field}");
            check_name(&key("name"), &g.name)?;
            if g.name == "*" {
                return Err(problem(
                    key("name"),
                    "must name an alias or a prefix pattern",
                ));
            }
            if g.name.matches('*').count() > 1 || (g.name.contains('*') && g.prefix().is_none()) {
                return Err(problem(key("name"), "a pattern has one `*`, at the end"));
            }
            if !groups.insert(g.name.as_str()) {
                return Err(problem(
                    key("name"),
                    format!("duplicate group {:?}", g.name),
                ));
            }
            if g.targets.is_empty() {
                return Err(problem(key("targets"), "at least one target is required"));
            }
            for (j, t) in g.targets.iter().enumerate() {
                if !names.contains(t.as_str()) {
                    return Err(problem(
                        format!("groups[{i}].targets[{j}]"),
                        format!("unknown target {t:?}"),
                    ));
                }
            }
            if g.timeout.is_zero() {
                return Err(problem(key("timeout"), "must be more than zero"));
            }
            if let Some(hedge) = &g.hedge {
                hedge.validate(&key)?;
            }
        }
        let mut keys = HashMap::new();
        for (i, k) in self.keys.iter().enumerate() {
            let key = |field: &str| format!("keys[{i}].{field}");
            check_name(&key("name"), &k.name)?;
            match env(&k.key_env) {
                Some(v) if !v.is_empty() => {
                    if let Some(other) = keys.insert(v, i) {
                        return Err(problem(
                            key("key_env"),
                            format!("same key as keys[{other}]"),
                        ));
                    }
                }
                _ => {
                    return Err(problem(
                        key("key_env"),
                        format!("environment variable {} is not set", k.key_env),
                    ));
                }
            }
            if k.requests_per_minute == Some(0) {
                return Err(problem(key("requests_per_minute"), "must be at least 1"));
            }
        }
        #[cfg(feature = "semantic-cache")]
        crate::semantic::validate(self)?;
        if self.server.max_body_bytes == 0 {
            return Err(problem("server.max_body_bytes", "must be at least 1"));
        }
        let key_budgets: Vec<_> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i, k.budgets.as_slice()))
            .collect();
        let exact_groups = self
            .groups
            .iter()
            .filter(|g| g.prefix().is_none())
            .map(|g| g.name.as_str())
            .collect();
        crate::spend::config::validate(
            &self.prices,
            &self.budget,
            &self.alerts,
            &key_budgets,
            &exact_groups,
        )
    }
}

/// The longest target, group or key name, in characters.
const MAX_NAME_CHARS: usize = 128;

/// Checks a target, group or key name, which appears in metrics labels, response headers,
/// `/status` and logs: not empty, at most [`MAX_NAME_CHARS`] characters, no control
/// characters (line feeds, tabs, escapes), no whitespace at either end.
fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(problem(key, "must not be empty"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(problem(
            key,
            format!(
                "must not contain control characters (found U+{:04X} in {name:?})",
                u32::from(c)
            ),
        ));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(problem(
            key,
            format!("must not start or end with whitespace ({name:?})"),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(problem(
            key,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Parses `"250ms"`, `"30s"`, `"2m"` or a number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Text(String),
    Seconds(f64),
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let parsed = match RawDuration::deserialize(deserializer)? {
        RawDuration::Text(text) => parse_duration(&text),
        RawDuration::Seconds(s) => Duration::try_from_secs_f64(s).ok(),
    };
    parsed
        .ok_or_else(|| de::Error::custom("expected a duration such as \"250ms\", \"30s\", \"2m\""))
}

fn opt_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// A duration, or `"off"` for none.
fn duration_or_off<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let parsed = match RawDuration::deserialize(deserializer)? {
        RawDuration::Text(text) if text.trim().eq_ignore_ascii_case("off") => return Ok(None),
        RawDuration::Text(text) => parse_duration(&text),
        RawDuration::Seconds(s) => Duration::try_from_secs_f64(s).ok(),
    };
    parsed.map(Some).ok_or_else(|| {
        de::Error::custom("expected a duration such as \"250ms\", \"30s\", \"2m\", or \"off\"")
    })
}
