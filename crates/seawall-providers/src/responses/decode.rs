//! A Responses API `response` object as a [`ChatResponse`], and the pieces of it a stream's
//! terminal event carries too (usage, finish reason).

use http::HeaderMap;
use seawall_core::{
    AssistantMessage, ChatResponse, ErrorKind, FinishReason, LlmError, ProviderKind, ToolCall,
    Usage,
};
use serde_json::Value;

use crate::error::decode_error;
use crate::json::{get, str_at, u64_at};

const PROVIDER: ProviderKind = ProviderKind::OpenAiResponses;

/// The response of a successful (2xx) non-streamed call.
pub(super) fn response(headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse, LlmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| decode_error(PROVIDER, "response", e))?;
    if !value.is_object() {
        return Err(decode_error(
            PROVIDER,
            "response",
            "the body is not an object",
        ));
    }
    if get(&value, &["error"]).is_some() && get(&value, &["output"]).is_none() {
        // An error body with a success status (some proxies).
        return Err(super::error::from_status(200, headers, body));
    }
    if str_at(&value, &["status"]) == Some("failed") {
        return Err(super::error::from_failed_response(&value));
    }
    let Some(output) = get(&value, &["output"]).and_then(Value::as_array) else {
        return Err(decode_error(
            PROVIDER,
            "response",
            "no `output` in the body",
        ));
    };
    let mut text = String::new();
    let mut refusal: Option<String> = None;
    let mut tool_calls = Vec::new();
    for item in output {
        match str_at(item, &["type"]) {
            Some("message") => {
                for part in get(item, &["content"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match str_at(part, &["type"]) {
                        Some("output_text") => {
                            text.push_str(str_at(part, &["text"]).unwrap_or_default());
                        }
                        Some("refusal") => {
                            let more = str_at(part, &["refusal"]).unwrap_or_default();
                            refusal.get_or_insert_with(String::new).push_str(more);
                        }
                        _ => {}
                    }
                }
            }
            Some("function_call") => tool_calls.push(tool_call(item)),
            // Reasoning summaries and the server's own tools' calls are not the reply.
            _ => {}
        }
    }
    let finish = finish_reason(&value, !tool_calls.is_empty());
    let mut message = AssistantMessage::text(text);
    message.tool_calls = tool_calls;
    message.refusal = refusal;
    let mut response = ChatResponse::new(
        PROVIDER,
        str_at(&value, &["model"]).unwrap_or_default(),
        message,
        finish,
    )
    .with_id(str_at(&value, &["id"]).unwrap_or_default());
    response.usage = get(&value, &["usage"]).map(usage);
    Ok(response)
}

/// A `function_call` output item as a [`ToolCall`]: its `call_id` is the id a tool result
/// answers (the item's own `id` is not).
pub(super) fn tool_call(item: &Value) -> ToolCall {
    ToolCall {
        id: str_at(item, &["call_id"])
            .or_else(|| str_at(item, &["id"]))
            .unwrap_or_default()
            .to_owned(),
        name: str_at(item, &["name"]).unwrap_or_default().to_owned(),
        arguments: str_at(item, &["arguments"]).unwrap_or_default().to_owned(),
    }
}

/// Why a `response` object ended: `incomplete_details.reason` for an incomplete one, tool
/// calls or a natural stop for a completed one.
pub(super) fn finish_reason(response: &Value, called_tools: bool) -> FinishReason {
    match str_at(response, &["status"]) {
        Some("incomplete") => match str_at(response, &["incomplete_details", "reason"]) {
            Some("max_output_tokens") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_owned()),
            None => FinishReason::Other("incomplete".to_owned()),
        },
        Some("completed") | None if called_tools => FinishReason::ToolCalls,
        Some("completed") | None => FinishReason::Stop,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

/// A `usage` object (`input_tokens`, `output_tokens` and their details).
pub(super) fn usage(value: &Value) -> Usage {
    Usage::new(
        u64_at(value, &["input_tokens"]).unwrap_or(0),
        u64_at(value, &["output_tokens"]).unwrap_or(0),
    )
    .with_cached_input(u64_at(value, &["input_tokens_details", "cached_tokens"]).unwrap_or(0))
    .with_cache_writes(u64_at(value, &["input_tokens_details", "cache_write_tokens"]).unwrap_or(0))
    .with_reasoning(u64_at(value, &["output_tokens_details", "reasoning_tokens"]).unwrap_or(0))
}

/// The answer of `POST /responses/input_tokens`: `{"object":"response.input_tokens",
/// "input_tokens":N}`.
pub(super) fn input_tokens(body: &[u8]) -> Result<u64, LlmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| decode_error(PROVIDER, "token count", e))?;
    u64_at(&value, &["input_tokens"]).ok_or_else(|| {
        LlmError::new(ErrorKind::Decode, "no `input_tokens` in the token count")
            .with_provider(PROVIDER)
    })
}
