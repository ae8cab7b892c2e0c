use std::fmt;

use serde::{Deserialize, Serialize};

use crate::price::Cost;
use crate::provider::ProviderKind;
use crate::quota::QuotaSnapshot;
use crate::request::ToolCall;
use crate::shared_trail::SharedTrail;
use crate::stream::EventStream;

/// A chat response in the provider-neutral model.
///
/// A complete response holds the assistant's message, finish reason and usage. A streamed
/// one (`stream` is `Some`) holds what was known when the headers arrived; its message,
/// finish reason and usage arrive as [`StreamEvent`](crate::StreamEvent)s, and
/// [`StreamAccumulator`](crate::StreamAccumulator) folds them back into this shape.
#[non_exhaustive]
pub struct ChatResponse {
    /// The provider's response id.
    pub id: String,
    /// The protocol of the target that answered.
    pub provider: ProviderKind,
    /// The model that actually answered (after failover, not the one asked for).
    pub model: String,
    /// The assistant's reply.
    pub message: AssistantMessage,
    /// Why generation stopped, once known.
    pub finish_reason: Option<FinishReason>,
    /// Token usage, once known.
    pub usage: Option<Usage>,
    /// What the call cost, when a budget layer priced it (a stream's cost is in the trail
    /// recorder once the stream ends); `None` when not priced or the model has no price.
    pub cost: Option<Cost>,
    /// The provider's rate-limit state, parsed from the response headers.
    ///
    /// Boxed: a snapshot is large (four optional windows) and a response is moved through
    /// every layer of a stack, so it stays small while the snapshot stays put.
    pub quota: Option<Box<QuotaSnapshot>>,
    /// What happened on the way: attempts, waits, breaker states, final target. Read it as
    /// a [`Trail`](crate::Trail); the router hands it over shared with the call's recorder,
    /// not copied.
    pub trail: SharedTrail,
    /// The events of a streamed response, to be consumed by the caller.
    pub stream: Option<EventStream>,
}

impl ChatResponse {
    /// A complete response with an empty trail and no quota snapshot.
    pub fn new(
        provider: ProviderKind,
        model: impl Into<String>,
        message: AssistantMessage,
        finish_reason: FinishReason,
    ) -> Self {
        Self {
            id: String::new(),
            provider,
            model: model.into(),
            message,
            finish_reason: Some(finish_reason),
            usage: None,
            cost: None,
            quota: None,
            trail: SharedTrail::default(),
            stream: None,
        }
    }

    /// A streamed response whose content is still to come on `stream`.
    pub fn streaming(
        provider: ProviderKind,
        model: impl Into<String>,
        stream: EventStream,
    ) -> Self {
        Self {
            id: String::new(),
            provider,
            model: model.into(),
            message: AssistantMessage::default(),
            finish_reason: None,
            usage: None,
            cost: None,
            quota: None,
            trail: SharedTrail::default(),
            stream: Some(stream),
        }
    }

    /// Sets the usage.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Sets the quota snapshot.
    pub fn with_quota(mut self, quota: QuotaSnapshot) -> Self {
        self.quota = Some(Box::new(quota));
        self
    }

    /// Sets the response id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Whether content is still to come on [`stream`](Self::stream).
    pub fn is_streaming(&self) -> bool {
        self.stream.is_some()
    }

    /// The assistant's text.
    pub fn text(&self) -> &str {
        &self.message.text
    }
}

impl fmt::Debug for ChatResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatResponse")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("message", &self.message)
            .field("finish_reason", &self.finish_reason)
            .field("usage", &self.usage)
            .field("cost", &self.cost)
            .field("quota", &self.quota)
            .field("trail", &self.trail)
            .field("streaming", &self.stream.is_some())
            .finish()
    }
}

/// The assistant's reply: text and tool calls.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AssistantMessage {
    /// The text, all parts joined.
    pub text: String,
    /// The tools the model called, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// A refusal the model gave instead of an answer (OpenAI `message.refusal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl AssistantMessage {
    /// A reply holding only text.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// A reply that calls tools.
    pub fn tool_calls(calls: impl IntoIterator<Item = ToolCall>) -> Self {
        Self {
            tool_calls: calls.into_iter().collect(),
            ..Self::default()
        }
    }
}

/// Why generation stopped, unified across providers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural end or a stop sequence (`stop`, `end_turn`, `stop_sequence`, `STOP`).
    Stop,
    /// The output token cap was reached (`length`, `max_tokens`, `MAX_TOKENS`).
    Length,
    /// The model called tools (`tool_calls`, `tool_use`).
    ToolCalls,
    /// A safety system withheld content (`content_filter`, `refusal`, `SAFETY`, ...).
    ContentFilter,
    /// Any other reason, with the provider's raw value.
    Other(String),
}

/// Token usage of one call.
///
/// Providers report different subsets; fields they do not report stay 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Input tokens, including cached ones.
    pub input_tokens: u64,
    /// Output tokens, including reasoning ones.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Output tokens spent on hidden reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Usage with only input and output counts.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    /// Sets the input tokens read from the provider's prompt cache.
    #[must_use]
    pub const fn with_cached_input(mut self, tokens: u64) -> Self {
        self.cached_input_tokens = tokens;
        self
    }

    /// Sets the input tokens written to the provider's prompt cache.
    #[must_use]
    pub const fn with_cache_writes(mut self, tokens: u64) -> Self {
        self.cache_write_tokens = tokens;
        self
    }

    /// Sets the output tokens spent on hidden reasoning.
    #[must_use]
    pub const fn with_reasoning(mut self, tokens: u64) -> Self {
        self.reasoning_tokens = tokens;
        self
    }

    /// Input plus output tokens: what a tokens-per-minute limit counts.
    pub const fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// The sum of two usages, field by field, for calls made of several attempts.
    #[must_use]
    pub const fn plus(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_add(other.cached_input_tokens),
            cache_write_tokens: self
                .cache_write_tokens
                .saturating_add(other.cache_write_tokens),
            reasoning_tokens: self.reasoning_tokens.saturating_add(other.reasoning_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layer of a stack moves the response by value: a field that makes it grow
    /// (an unboxed quota snapshot, a larger trail) slows every call.
    #[test]
    fn a_response_stays_small() {
        let size = std::mem::size_of::<ChatResponse>();
        // 392 bytes before cost accounting; the trail's charges and cost, the boxed
        // downgrade and the response's cost add 64, the boxed list of dropped pass-through
        // fields 8. The trail, shared with the call's recorder since, is a pointer.
        assert!(size <= 464, "ChatResponse is {size} bytes");
    }

    #[test]
    fn with_quota_boxes_the_snapshot() {
        let quota = QuotaSnapshot::default();
        let response = ChatResponse::new(
            ProviderKind::OpenAi,
            "m",
            AssistantMessage::default(),
            FinishReason::Stop,
        )
        .with_quota(quota);
        assert_eq!(response.quota.as_deref(), Some(&quota));
    }
}
