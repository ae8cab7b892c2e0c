//! Token estimation: how much a request will weigh against a tokens-per-minute limit
//! before it is sent.
//!
//! Two estimators implement [`TokenEstimator`]:
//! - [`HeuristicEstimator`]: fast and allocation-free, meant as an **upper bound** for any
//!   model (about three ASCII bytes per token, one token per other character, per-message
//!   and per-image overheads), so a limiter that charges it is never surprised by a larger
//!   bill.
//! - `TiktokenEstimator` (feature `tiktoken`): exact counts for OpenAI model families with
//!   the o200k_base or cl100k_base encoding chosen by model name, the Chat Completions
//!   per-message overhead and the tool-definition overhead of the OpenAI cookbook; any other
//!   model falls back to the heuristic. Call [`warm_up`] at start-up so the first request
//!   does not pay the rank-table build (0.1–0.4 s).
//!
//! ```
//! use seawall_core::{ChatRequest, Message};
//! use seawall_core::tokens::{HeuristicEstimator, TokenEstimator};
//!
//! let request = ChatRequest::new("claude-sonnet-4-5", [Message::user("Capital of France?")])
//!     .with_max_output_tokens(100);
//! let estimate = HeuristicEstimator::default().estimate(&request, 1024);
//! assert_eq!(estimate.reserved_output, 100);
//! assert!(estimate.prompt > 0 && estimate.total() == estimate.prompt + 100);
//! ```

use std::fmt;
use std::sync::Arc;

use crate::request::{ChatRequest, ContentPart, Message, ToolDefinition};

#[cfg(feature = "tiktoken")]
mod tiktoken;
#[cfg(feature = "tiktoken")]
#[cfg_attr(docsrs, doc(cfg(feature = "tiktoken")))]
pub use self::tiktoken::{OpenAiEncoding, TiktokenEstimator};

/// What a request is expected to weigh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenEstimate {
    /// The prompt's tokens.
    pub prompt: u64,
    /// The output tokens reserved: the request's cap, or a default.
    pub reserved_output: u64,
}

impl TokenEstimate {
    /// Prompt plus reserved output: the weight a tokens-per-minute limit charges.
    pub const fn total(&self) -> u64 {
        self.prompt.saturating_add(self.reserved_output)
    }
}

/// Estimates the tokens of a request's prompt.
pub trait TokenEstimator: Send + Sync + fmt::Debug {
    /// The prompt's tokens: messages, tool definitions and framing overhead.
    fn prompt_tokens(&self, request: &ChatRequest) -> u64;

    /// The prompt's tokens plus the reserved output: the request's `max_output_tokens`,
    /// or `default_output` when it has none.
    fn estimate(&self, request: &ChatRequest, default_output: u32) -> TokenEstimate {
        TokenEstimate {
            prompt: self.prompt_tokens(request),
            reserved_output: u64::from(request.max_output_tokens.unwrap_or(default_output)),
        }
    }

    /// Says how this estimator counts, when two estimators that say the same count every
    /// prompt alike: the layers of one call that weigh with such estimators then count its
    /// prompt once ([`LlmRequest::estimate_once`](crate::LlmRequest::estimate_once)).
    /// `None`, the default, never shares a count. The first word names the estimator's
    /// kind (0 to 15 are this crate's), the others its settings.
    fn weighs_alike(&self) -> Option<[u64; 3]> {
        None
    }
}

/// The prompt tokens of one call's request, kept with what they were counted from: the
/// request's model, messages and tools (held, so that a request whose fields were replaced
/// never matches them by address) and how they were counted.
#[derive(Debug)]
pub(crate) struct PromptWeight {
    alike: [u64; 3],
    model: Arc<str>,
    messages: Arc<[Message]>,
    tools: Arc<[ToolDefinition]>,
    tokens: u64,
}

impl PromptWeight {
    pub(crate) fn new(request: &ChatRequest, alike: [u64; 3], tokens: u64) -> Self {
        Self {
            alike,
            model: Arc::clone(&request.model),
            messages: Arc::clone(&request.messages),
            tools: Arc::clone(&request.tools),
            tokens,
        }
    }

    /// The tokens, if `request` is what they were counted from, counted alike.
    pub(crate) fn of(&self, request: &ChatRequest, alike: [u64; 3]) -> Option<u64> {
        let same = self.alike == alike
            && Arc::ptr_eq(&self.messages, &request.messages)
            && Arc::ptr_eq(&self.tools, &request.tools)
            && (Arc::ptr_eq(&self.model, &request.model) || self.model == request.model);
        same.then_some(self.tokens)
    }
}

/// Builds the rank tables of the exact estimator now, so the first request does not pay
/// for them. Cheap after the first call; does nothing without the `tiktoken` feature.
pub fn warm_up() {
    #[cfg(feature = "tiktoken")]
    tiktoken::warm_up();
}

/// A fast upper-bound estimate for any model.
///
/// Text counts one token per three ASCII bytes (rounded up) plus one per non-ASCII
/// character: real tokenizers average about four bytes per token on English and code and
/// at most one token per CJK character, so this overestimates by a margin. Each message
/// adds [`per_message`](Self::per_message) tokens of framing, each image
/// [`per_image`](Self::per_image), and tool definitions count their JSON schema as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeuristicEstimator {
    /// Framing tokens per message (role markers and separators).
    pub per_message: u64,
    /// Tokens charged per image: the most a provider bills for one image at its default
    /// detail (Anthropic bills about 1,600 for a 1.15-megapixel image).
    pub per_image: u64,
}

impl Default for HeuristicEstimator {
    fn default() -> Self {
        Self {
            per_message: 5,
            per_image: 1_600,
        }
    }
}

impl HeuristicEstimator {
    /// The upper-bound token count of `text`.
    pub fn text_tokens(text: &str) -> u64 {
        // Counts ASCII bytes and the first byte of each multi-byte character (continuation
        // bytes are 0b10xx_xxxx), in byte-wide counters per 255-byte chunk so that the inner
        // loop compiles to SIMD.
        let (mut ascii, mut other) = (0u64, 0u64);
        for chunk in text.as_bytes().chunks(255) {
            let (mut chunk_ascii, mut chunk_other) = (0u8, 0u8);
            for &byte in chunk {
                chunk_ascii += u8::from(byte < 0x80);
                chunk_other += u8::from(byte >= 0xC0);
            }
            ascii += u64::from(chunk_ascii);
            other += u64::from(chunk_other);
        }
        ascii.div_ceil(3) + other
    }

    fn message_tokens(&self, message: &Message) -> u64 {
        let mut tokens = self.per_message;
        for part in &message.content {
            tokens += match part {
                ContentPart::Text { text, .. } => Self::text_tokens(text),
                ContentPart::Image { .. } => self.per_image,
            };
        }
        if let Some(name) = &message.name {
            tokens += Self::text_tokens(name) + 1;
        }
        for call in &message.tool_calls {
            tokens += Self::text_tokens(&call.name) + Self::text_tokens(&call.arguments) + 3;
        }
        if let Some(id) = &message.tool_call_id {
            tokens += Self::text_tokens(id);
        }
        tokens
    }

    fn tool_tokens(tool: &ToolDefinition) -> u64 {
        let description = tool.description.as_deref().map_or(0, Self::text_tokens);
        // The schema's JSON text is an upper bound of what providers render from it.
        let schema = serde_json::to_string(&tool.parameters).map_or(0, |s| Self::text_tokens(&s));
        10 + Self::text_tokens(&tool.name) + description + schema
    }
}

impl TokenEstimator for HeuristicEstimator {
    fn weighs_alike(&self) -> Option<[u64; 3]> {
        Some([1, self.per_message, self.per_image])
    }

    fn prompt_tokens(&self, request: &ChatRequest) -> u64 {
        let messages: u64 = request
            .messages
            .iter()
            .map(|message| self.message_tokens(message))
            .sum();
        let tools: u64 = request.tools.iter().map(Self::tool_tokens).sum();
        // The reply's priming tokens.
        messages + tools + 3
    }
}
