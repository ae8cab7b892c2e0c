//! Providers, per-provider behaviour and the TOML configuration file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fault::FaultRule;

/// A wire format the simulator serves, each under its own path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI Chat Completions and models, under `/openai/v1`.
    OpenAi,
    /// Anthropic Messages, under `/anthropic` (the SDK appends `/v1/messages`).
    Anthropic,
    /// Gemini `generateContent` / `streamGenerateContent`, under `/gemini` (`/v1` and `/v1beta`).
    Gemini,
    /// Ollama's OpenAI-compatible server, under `/ollama/v1`.
    Ollama,
    /// vLLM's OpenAI-compatible server, under `/vllm/v1`.
    Vllm,
    /// llama.cpp `llama-server`, under `/llamacpp/v1` (and `/llamacpp/health`).
    LlamaCpp,
}

impl Provider {
    /// Every provider, in the order the binary prints them.
    pub const ALL: [Provider; 6] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::Ollama,
        Provider::Vllm,
        Provider::LlamaCpp,
    ];

    /// The lowercase name used in paths, config and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Ollama => "ollama",
            Provider::Vllm => "vllm",
            Provider::LlamaCpp => "llamacpp",
        }
    }

    /// Parses [`Provider::name`].
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The base URL path an SDK is given for this provider.
    pub fn base_path(self) -> &'static str {
        match self {
            Provider::OpenAi => "/openai/v1",
            Provider::Anthropic => "/anthropic",
            Provider::Gemini => "/gemini",
            Provider::Ollama => "/ollama/v1",
            Provider::Vllm => "/vllm/v1",
            Provider::LlamaCpp => "/llamacpp/v1",
        }
    }

    /// Whether this is one of the OpenAI-compatible wire formats.
    pub fn is_openai_compatible(self) -> bool {
        matches!(
            self,
            Provider::OpenAi | Provider::Ollama | Provider::Vllm | Provider::LlamaCpp
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Requests and tokens allowed per key per window.
///
/// The defaults (10 million requests and 10 billion tokens per minute) never refuse a
/// benchmark; set small limits to test rate limiting.
///
/// Token cost of a request = its prompt tokens + its completion tokens (both under the
/// documented rule in the crate docs). By default the window is fixed: it starts at a key's
/// first request and resets `window` later. With `refill = "bucket"` each limit is a token
/// bucket instead, as OpenAI and Anthropic document theirs: it refills continuously at
/// `limit / window`, and the reset headers give the time until it is full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Requests per window per key.
    pub requests: u64,
    /// Tokens (prompt + completion) per window per key.
    pub tokens: u64,
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// How capacity comes back (default [`QuotaRefill::Window`]).
    pub refill: QuotaRefill,
}

/// How a quota's capacity comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaRefill {
    /// A fixed window from a key's first request; everything comes back at its end.
    #[default]
    Window,
    /// A token bucket, refilled continuously at `limit / window`.
    Bucket,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            requests: 10_000_000,
            tokens: 10_000_000_000,
            window_ms: 60_000,
            refill: QuotaRefill::Window,
        }
    }
}

impl QuotaConfig {
    /// The window as a [`Duration`].
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms.max(1))
    }
}

/// How one provider behaves when no fault applies.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// Seed of the deterministic replies.
    pub seed: u64,
    /// Reply length in tokens (pieces) before any `max_tokens` cap (1 to 100,000).
    pub reply_tokens: u32,
    /// Delay before the first byte of a response (time to first token), in milliseconds.
    pub first_token_ms: u64,
    /// Delay between stream chunks, in milliseconds (non-streaming replies wait
    /// `first_token_ms + chunk_interval_ms × pieces`).
    pub chunk_interval_ms: u64,
    /// Reject a request whose last message is an assistant message (a prefill) with the
    /// provider's 400 instead of continuing it.
    pub reject_prefill: bool,
    /// Split every stream event across two writes, so that clients must reassemble frames.
    pub split_events: bool,
    /// Insert a keep-alive after every this many stream events: an Anthropic `ping` event, or
    /// an SSE comment line (`: ping`) on OpenAI-style streams. Gemini streams have none.
    pub ping_every: Option<u32>,
    /// When set, only these API keys are valid; otherwise any non-empty key is.
    pub valid_keys: Option<Vec<String>>,
    /// Context window in tokens: longer prompts get the provider's context-length 400
    /// (Anthropic also refuses prompt + `max_tokens` beyond it; Ollama truncates silently, so
    /// it never refuses).
    pub context_window: Option<u64>,
    /// Per-key quotas.
    pub quota: QuotaConfig,
    /// Faults installed at start.
    pub faults: Vec<FaultRule>,
    /// Scripted replies: the first whose `when_prompt_contains` occurs in the last user
    /// message replaces the generated text (still deterministic: same request, same reply).
    pub replies: Vec<ScriptedReply>,
}

/// A fixed reply text for requests whose last user message contains a phrase, so that a demo
/// or a test can show a meaningful answer ("Paris") instead of the generated words.
///
/// The text is split into pieces at spaces (one completion token each, the space leading);
/// `max_tokens`, prefill continuation, faults and quotas apply to it as to a generated reply.
/// Tool calls still take precedence when tools are offered.
///
/// ```toml
/// [[openai.replies]]
/// when_prompt_contains = "capital of France"
/// text = "Paris."
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedReply {
    /// A phrase to look for in the last user message (case-sensitive).
    pub when_prompt_contains: String,
    /// The reply text.
    pub text: String,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: show how many there are, never their values.
        f.debug_struct("ProviderSettings")
            .field("seed", &self.seed)
            .field("reply_tokens", &self.reply_tokens)
            .field("first_token_ms", &self.first_token_ms)
            .field("chunk_interval_ms", &self.chunk_interval_ms)
            .field("reject_prefill", &self.reject_prefill)
            .field("split_events", &self.split_events)
            .field("ping_every", &self.ping_every)
            .field(
                "valid_keys",
                &self
                    .valid_keys
                    .as_ref()
                    .map(|k| format!("{} keys", k.len())),
            )
            .field("context_window", &self.context_window)
            .field("quota", &self.quota)
            .field("faults", &self.faults)
            .field("replies", &self.replies)
            .finish()
    }
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            seed: 0,
            reply_tokens: 12,
            first_token_ms: 0,
            chunk_interval_ms: 0,
            reject_prefill: false,
            split_events: false,
            ping_every: None,
            valid_keys: None,
            context_window: None,
            quota: QuotaConfig::default(),
            faults: Vec::new(),
            replies: Vec::new(),
        }
    }
}

/// The configuration file: one optional table per provider, plus request-log capacity.
///
/// ```toml
/// log_capacity = 10000
///
/// [openai]
/// seed = 7
/// reply_tokens = 20
/// quota = { requests = 3, tokens = 100000, window_ms = 2000 }
///
/// [[anthropic.faults]]
/// from_request = 1
/// to_request = 2
/// fault = { kind = "overloaded" }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Request-log capacity; the oldest entries are dropped beyond it.
    pub log_capacity: Option<usize>,
    /// OpenAI settings.
    pub openai: Option<ProviderSettings>,
    /// Anthropic settings.
    pub anthropic: Option<ProviderSettings>,
    /// Gemini settings.
    pub gemini: Option<ProviderSettings>,
    /// Ollama profile settings.
    pub ollama: Option<ProviderSettings>,
    /// vLLM profile settings.
    pub vllm: Option<ProviderSettings>,
    /// llama.cpp profile settings.
    pub llamacpp: Option<ProviderSettings>,
}

impl SimConfig {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<SimConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The settings of one provider (defaults when absent).
    pub fn settings(&self, provider: Provider) -> ProviderSettings {
        let slot = match provider {
            Provider::OpenAi => &self.openai,
            Provider::Anthropic => &self.anthropic,
            Provider::Gemini => &self.gemini,
            Provider::Ollama => &self.ollama,
            Provider::Vllm => &self.vllm,
            Provider::LlamaCpp => &self.llamacpp,
        };
        slot.clone().unwrap_or_default()
    }
}
