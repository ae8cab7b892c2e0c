use serde_json::Value;
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

use super::{HeuristicEstimator, TokenEstimator};
use crate::request::{ChatRequest, ContentPart, Message, ToolDefinition};

/// The OpenAI encodings the exact estimator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenAiEncoding {
    /// `o200k_base`: GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o1, o3, o4-mini (and `o200k_harmony`
    /// for gpt-oss, which shares its ranks).
    O200kBase,
    /// `cl100k_base`: GPT-4, GPT-3.5 Turbo.
    Cl100kBase,
}

impl OpenAiEncoding {
    /// The encoding of an OpenAI chat model by name (a leading `openai/` is ignored), or
    /// `None` for a model that is not an OpenAI chat model.
    pub fn for_model(model: &str) -> Option<Self> {
        let model = model.strip_prefix("openai/").unwrap_or(model);
        match get_tokenizer(model)? {
            Tokenizer::O200kBase | Tokenizer::O200kHarmony => Some(Self::O200kBase),
            Tokenizer::Cl100kBase => Some(Self::Cl100kBase),
            _ => None,
        }
    }

    fn bpe(self) -> &'static CoreBPE {
        match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }
}

pub(super) fn warm_up() {
    let _ = OpenAiEncoding::O200kBase.bpe();
    let _ = OpenAiEncoding::Cl100kBase.bpe();
}

/// Exact token counts for OpenAI chat models; the heuristic for every other model.
///
/// Counts follow the OpenAI cookbook ("How to count tokens with tiktoken"): 3 tokens per
/// message plus its role, content and name (1 more for a name), 3 to prime the reply
/// (`gpt-3.5-turbo-0301`: 4 per message, −1 for a name); tool definitions with the
/// cookbook's `num_tokens_for_tools` constants. Images are charged the heuristic's
/// per-image cost; tool calls in the history count their name and arguments plus 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TiktokenEstimator {
    /// The estimator for models without a known OpenAI encoding.
    pub fallback: HeuristicEstimator,
}

impl TiktokenEstimator {
    /// An exact estimator with the default heuristic as fallback.
    pub fn new() -> Self {
        Self::default()
    }

    /// The exact token count of `text` in `encoding`.
    pub fn text_tokens(encoding: OpenAiEncoding, text: &str) -> u64 {
        encoding.bpe().count_ordinary(text) as u64
    }

    fn message_tokens(&self, bpe: &CoreBPE, message: &Message, legacy: bool) -> i64 {
        let (per_message, per_name) = if legacy { (4, -1) } else { (3, 1) };
        let count = |text: &str| bpe.count_ordinary(text) as i64;
        let mut tokens = per_message + count(message.role.as_str());
        for part in &message.content {
            tokens += match part {
                ContentPart::Text { text, .. } => count(text),
                ContentPart::Image { .. } => self.fallback.per_image as i64,
            };
        }
        if let Some(name) = &message.name {
            tokens += count(name) + per_name;
        }
        for call in &message.tool_calls {
            tokens += count(&call.name) + count(&call.arguments) + 3;
        }
        if let Some(id) = &message.tool_call_id {
            tokens += count(id);
        }
        tokens
    }
}

/// The cookbook's `num_tokens_for_tools` for one function.
fn tool_tokens(bpe: &CoreBPE, tool: &ToolDefinition, func_init: i64) -> i64 {
    const PROP_INIT: i64 = 3;
    const PROP_KEY: i64 = 3;
    const ENUM_INIT: i64 = -3;
    const ENUM_ITEM: i64 = 3;
    let count = |text: &str| bpe.count_ordinary(text) as i64;
    let description = tool.description.as_deref().unwrap_or("");
    let description = description.strip_suffix('.').unwrap_or(description);
    let mut tokens = func_init + count(&format!("{}:{}", tool.name, description));
    let properties = tool.parameters.get("properties").and_then(Value::as_object);
    if let Some(properties) = properties.filter(|p| !p.is_empty()) {
        tokens += PROP_INIT;
        for (key, property) in properties {
            tokens += PROP_KEY;
            if let Some(items) = property.get("enum").and_then(Value::as_array) {
                tokens += ENUM_INIT;
                for item in items {
                    let item = item
                        .as_str()
                        .map_or_else(|| item.to_string(), str::to_owned);
                    tokens += ENUM_ITEM + count(&item);
                }
            }
            let kind = property.get("type").map_or_else(String::new, |t| match t {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let text = property
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let text = text.strip_suffix('.').unwrap_or(text);
            tokens += count(&format!("{key}:{kind}:{text}"));
        }
    }
    tokens
}

impl TokenEstimator for TiktokenEstimator {
    fn weighs_alike(&self) -> Option<[u64; 3]> {
        Some([2, self.fallback.per_message, self.fallback.per_image])
    }

    fn prompt_tokens(&self, request: &ChatRequest) -> u64 {
        let Some(encoding) = OpenAiEncoding::for_model(&request.model) else {
            return self.fallback.prompt_tokens(request);
        };
        let bpe = encoding.bpe();
        let legacy = request.model.ends_with("gpt-3.5-turbo-0301");
        let messages: i64 = request
            .messages
            .iter()
            .map(|message| self.message_tokens(bpe, message, legacy))
            .sum();
        let tools: i64 = if request.tools.is_empty() {
            0
        } else {
            const FUNC_END: i64 = 12;
            let func_init = match encoding {
                OpenAiEncoding::O200kBase => 7,
                OpenAiEncoding::Cl100kBase => 10,
            };
            request
                .tools
                .iter()
                .map(|tool| tool_tokens(bpe, tool, func_init))
                .sum::<i64>()
                + FUNC_END
        };
        u64::try_from(messages + tools + 3).unwrap_or(0)
    }
}
