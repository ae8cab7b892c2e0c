use tower_layer::Layer;

use super::service::ReadErrorBody;
use crate::anthropic::{AnthropicConfig, AnthropicDialect};
use crate::gemini::{GeminiConfig, GeminiDialect};
use crate::openai::{OpenAiConfig, OpenAiDialect, ServerKind};
use crate::{ApiKey, Dialect};

/// Reads error responses' bodies (up to [`max_body`](Self::max_body) bytes) and decodes
/// them with dialect `D`. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct ReadErrorBodyLayer<D> {
    dialect: D,
    max_body: usize,
}

/// The default bound on the bytes read from an error body: provider error bodies are
/// under a few kilobytes; an HTML page from a proxy fits too.
const DEFAULT_MAX_BODY: usize = 64 * 1024;

impl<D: Dialect> ReadErrorBodyLayer<D> {
    /// Decodes error bodies as `dialect` does.
    pub fn new(dialect: D) -> Self {
        Self {
            dialect,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// The most bytes read before decoding (default 64 KiB). A longer body is decoded from
    /// its first `bytes` and still relayed whole.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

impl ReadErrorBodyLayer<OpenAiDialect> {
    /// Errors in OpenAI's format (and that of OpenAI-compatible servers).
    pub fn openai() -> Self {
        Self::new(OpenAiDialect::new(OpenAiConfig::compatible(
            "",
            ServerKind::Other,
        )))
    }
}

impl ReadErrorBodyLayer<AnthropicDialect> {
    /// Errors in Anthropic's format.
    pub fn anthropic() -> Self {
        Self::new(AnthropicDialect::new(AnthropicConfig::new(ApiKey::new(""))))
    }
}

impl ReadErrorBodyLayer<GeminiDialect> {
    /// Errors in Gemini's format.
    pub fn gemini() -> Self {
        Self::new(GeminiDialect::new(GeminiConfig::new(ApiKey::new(""))))
    }
}

impl<S, D: Clone> Layer<S> for ReadErrorBodyLayer<D> {
    type Service = ReadErrorBody<S, D>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadErrorBody::from_parts(inner, self.dialect.clone(), self.max_body)
    }
}
