use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The wire protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI Chat Completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
    /// A server that speaks the OpenAI Chat Completions dialect (Ollama, vLLM, llama.cpp,
    /// OpenRouter, Groq, ...).
    OpenAiCompatible,
    /// Azure OpenAI: the OpenAI Chat Completions dialect at a deployment URL, with Azure's
    /// key header and content filters.
    AzureOpenAi,
    /// The OpenAI Responses API (`POST /v1/responses`).
    OpenAiResponses,
}

impl ProviderKind {
    /// The lower-case name used in logs, metrics and target ids.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::OpenAiCompatible => "openai_compatible",
            Self::AzureOpenAi => "azure_openai",
            Self::OpenAiResponses => "openai_responses",
        }
    }
}

impl ProviderKind {
    /// Whether a body written for `self` is read the same way by `other`: the OpenAI Chat
    /// Completions dialect is one wire format whoever serves it.
    pub const fn same_wire(self, other: Self) -> bool {
        const fn family(kind: ProviderKind) -> ProviderKind {
            match kind {
                ProviderKind::OpenAiCompatible | ProviderKind::AzureOpenAi => ProviderKind::OpenAi,
                other => other,
            }
        }
        family(self) as u8 == family(other) as u8
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of one upstream target (a provider, a model and a key), such as
/// `"openai/gpt-4o"` or `"anthropic-eu/claude-sonnet-4-5"`.
///
/// Cheap to clone. It names the target in errors, trails, logs and metrics, so it must
/// never contain an API key: build it from names chosen in configuration.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(Arc<str>);

impl TargetId {
    /// A target id from its name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TargetId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for TargetId {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}
