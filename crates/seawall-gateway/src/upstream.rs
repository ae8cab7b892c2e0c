//! A target's adapter configuration, from its `[[targets]]` entry and key: one place for the
//! call stacks, the embedder of the semantic cache and the token counter.

use seawall_core::{BoxError, ChatRequest};
use seawall_providers::{
    Anthropic, AnthropicConfig, ApiKey, Gemini, GeminiConfig, OpenAiConfig, OpenAiResponses,
    ResponsesConfig, ServerKind,
};

use crate::config::{ProviderConfig, TargetConfig};
use crate::server::UpstreamClient;

/// The configuration of an `openai` or `openai_compatible` target.
pub(crate) fn openai_config(target: &TargetConfig, key: Option<&ApiKey>) -> OpenAiConfig {
    let mut config = match (target.provider, key) {
        (ProviderConfig::Openai, Some(key)) => OpenAiConfig::new(key.clone()),
        (_, key) => {
            let mut config = OpenAiConfig::compatible(
                target.base_url.clone().unwrap_or_default(),
                ServerKind::Other,
            );
            config.api_key = key.cloned();
            config
        }
    };
    if let Some(url) = &target.base_url {
        config = config.with_base_url(url.clone());
    }
    config.with_idempotency_key_forwarding(target.forward_idempotency_key)
}

/// The configuration of an `azure_openai` target.
pub(crate) fn azure_config(target: &TargetConfig, key: Option<&ApiKey>) -> OpenAiConfig {
    let endpoint = target.base_url.as_deref().unwrap_or_default();
    let key = key.cloned().unwrap_or_else(|| ApiKey::new(""));
    match &target.api_version {
        Some(version) => OpenAiConfig::azure(endpoint, &target.model, version.clone(), key),
        None => OpenAiConfig::azure_v1(endpoint, key),
    }
}

/// The configuration of an `anthropic` target.
pub(crate) fn anthropic_config(target: &TargetConfig, key: Option<&ApiKey>) -> AnthropicConfig {
    let mut config = AnthropicConfig::new(key.cloned().unwrap_or_else(|| ApiKey::new("")));
    if let Some(url) = &target.base_url {
        config = config.with_base_url(url.clone());
    }
    config
}

/// The configuration of a `gemini` target.
pub(crate) fn gemini_config(target: &TargetConfig, key: Option<&ApiKey>) -> GeminiConfig {
    let mut config = GeminiConfig::new(key.cloned().unwrap_or_else(|| ApiKey::new("")));
    if let Some(url) = &target.base_url {
        config = config.with_base_url(url.clone());
    }
    config
}

/// The configuration of an `openai_responses` target.
pub(crate) fn responses_config(target: &TargetConfig, key: Option<&ApiKey>) -> ResponsesConfig {
    let mut config = ResponsesConfig::new(key.cloned().unwrap_or_else(|| ApiKey::new("")));
    if let Some(url) = &target.base_url {
        config = config.with_base_url(url.clone());
    }
    config
}

/// A target whose provider counts a request's input tokens exactly (Anthropic's
/// `count_tokens`, Gemini's `countTokens`, the Responses API's `input_tokens`), and the
/// model name to count for.
#[derive(Clone)]
pub(crate) struct TokenCounter {
    via: Counting,
    /// The target's model; `None` for a pattern group's pass-through target, which is sent
    /// the client's own model name.
    model: Option<std::sync::Arc<str>>,
}

#[derive(Clone)]
enum Counting {
    Anthropic(Anthropic<UpstreamClient>),
    Gemini(Gemini<UpstreamClient>),
    Responses(OpenAiResponses<UpstreamClient>),
}

impl TokenCounter {
    /// The counter of `target`, when its provider has a count endpoint.
    pub(crate) fn new(
        target: &TargetConfig,
        key: Option<&ApiKey>,
        http: UpstreamClient,
        pass_through: bool,
    ) -> Option<Self> {
        let via = match target.provider {
            ProviderConfig::Anthropic => {
                Counting::Anthropic(Anthropic::new(http, anthropic_config(target, key)))
            }
            ProviderConfig::Gemini => {
                Counting::Gemini(Gemini::new(http, gemini_config(target, key)))
            }
            ProviderConfig::OpenaiResponses => {
                Counting::Responses(OpenAiResponses::new(http, responses_config(target, key)))
            }
            ProviderConfig::Openai
            | ProviderConfig::OpenaiCompatible
            | ProviderConfig::AzureOpenai => return None,
        };
        Some(Self {
            via,
            model: (!pass_through).then(|| target.model.as_str().into()),
        })
    }

    /// The input tokens of `request`, as the target's provider counts them.
    pub(crate) async fn count(&self, mut request: ChatRequest) -> Result<u64, BoxError> {
        if let Some(model) = &self.model {
            request.model = model.clone();
        }
        match self.via.clone() {
            Counting::Anthropic(mut adapter) => adapter.count_tokens(&request).await,
            Counting::Gemini(mut adapter) => adapter.count_tokens(&request).await,
            Counting::Responses(mut adapter) => adapter.count_tokens(&request).await,
        }
    }
}
