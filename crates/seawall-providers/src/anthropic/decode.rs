//! Complete messages, and the usage and stop reasons streams share.

use std::borrow::Cow;

use seawall_core::{AssistantMessage, ChatResponse, FinishReason, ProviderKind, ToolCall, Usage};

use super::wire;

pub(super) fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// The response a message stands for; `None` when it has no `content`.
pub(super) fn message_response(body: wire::Message<'_>) -> Option<ChatResponse> {
    let mut message = AssistantMessage::default();
    for block in body.content? {
        match block.kind.as_deref() {
            Some("text") => message.text.push_str(block.text.as_deref().unwrap_or("")),
            Some("tool_use") => message.tool_calls.push(ToolCall {
                id: block.id.map(Cow::into_owned).unwrap_or_default(),
                name: block.name.map(Cow::into_owned).unwrap_or_default(),
                arguments: block
                    .input
                    .map_or_else(|| "{}".to_owned(), |input| input.to_string()),
            }),
            _ => {}
        }
    }
    let finish = body
        .stop_reason
        .as_deref()
        .map_or(FinishReason::Stop, stop_reason);
    if finish == FinishReason::ContentFilter {
        // A refusal: an empty content with the reason Anthropic gives, not an empty answer.
        message.refusal = body
            .stop_details
            .and_then(|details| details.explanation)
            .map(Cow::into_owned);
    }
    let mut response = ChatResponse::new(
        ProviderKind::Anthropic,
        body.model.unwrap_or_default(),
        message,
        finish,
    )
    .with_id(body.id.unwrap_or_default());
    if let Some(usage) = body.usage {
        let mut totals = UsageTotals::default();
        totals.merge(&usage);
        response.usage = Some(totals.usage());
    }
    Some(response)
}

/// Anthropic's usage, cumulative: later values overwrite earlier ones field by field.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct UsageTotals {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
    thinking: u64,
}

impl UsageTotals {
    pub(super) fn merge(&mut self, usage: &wire::Usage) {
        let set = |field: &mut u64, value: Option<u64>| {
            if let Some(n) = value {
                *field = n;
            }
        };
        set(&mut self.input, usage.input_tokens);
        set(&mut self.cache_read, usage.cache_read_input_tokens);
        set(&mut self.cache_creation, usage.cache_creation_input_tokens);
        set(&mut self.output, usage.output_tokens);
        set(
            &mut self.thinking,
            usage
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens),
        );
    }

    /// `input_tokens` excludes cached tokens; the unified model counts them in.
    pub(super) fn usage(&self) -> Usage {
        Usage::new(
            self.input + self.cache_read + self.cache_creation,
            self.output,
        )
        .with_cached_input(self.cache_read)
        .with_cache_writes(self.cache_creation)
        .with_reasoning(self.thinking)
    }
}
