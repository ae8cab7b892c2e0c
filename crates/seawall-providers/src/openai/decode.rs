//! Complete (non-streamed) responses.

use std::borrow::Cow;

use http::HeaderMap;
use seawall_core::{AssistantMessage, ChatResponse, FinishReason, LlmError, ToolCall, Usage};
use serde_json::Value;

use super::{OpenAiDialect, wire};
use crate::dialect::Dialect;
use crate::error::decode_error;
use crate::json::get;

impl OpenAiDialect {
    /// The response a typed body stands for; `None` when it has no choice (the loose reading
    /// then reports the problem).
    pub(super) fn decode_typed_response(&self, body: wire::Response<'_>) -> Option<ChatResponse> {
        let choice = body.choices?.into_iter().next()?;
        let message = choice.message.unwrap_or_default();
        let tool_calls = message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|call| {
                let function = call.function.unwrap_or_default();
                ToolCall {
                    id: call.id.map(Cow::into_owned).unwrap_or_default(),
                    name: function.name.map(Cow::into_owned).unwrap_or_default(),
                    arguments: function.arguments.map(Cow::into_owned).unwrap_or_default(),
                }
            })
            .collect();
        let mut assistant =
            AssistantMessage::text(message.content.map(|c| c.0).unwrap_or_default());
        assistant.tool_calls = tool_calls;
        assistant.refusal = message.refusal.map(Cow::into_owned);
        let finish = choice
            .finish_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason);
        let mut response = ChatResponse::new(
            self.provider(),
            body.model.unwrap_or_default(),
            assistant,
            finish,
        )
        .with_id(body.id.unwrap_or_default());
        response.usage = body.usage.map(Usage::from);
        Some(response)
    }

    /// The loose reading of a complete body: any JSON shape, the error bodies included.
    pub(super) fn decode_value_response(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<ChatResponse, LlmError> {
        let provider = self.provider();
        let value: Value =
            serde_json::from_slice(body).map_err(|e| decode_error(provider, "response", e))?;
        if get(&value, &["error"]).is_some() {
            return Err(self.error_from_json(Some(200), headers, &value));
        }
        self.decode_typed_response(wire::Response::loose(&value))
            .ok_or_else(|| decode_error(provider, "response", "no `choices` in the body"))
    }
}

/// The reply text: a string, or (some compatible servers) an array of text parts.
pub(super) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

pub(super) fn usage(value: &Value) -> Usage {
    wire::WireUsage::loose(value).into()
}
