//! Whole bodies: the non-streamed message, the token count and error replies.

use serde::Serialize;
use serde_json::{Map, Value};

use seawall_core::{ChatResponse, Cost, ToolCall};

use super::{Details, ErrorBody, ErrorObject, OutUsage, Seawall, stop_reason};

/// A response body, declared in the order Anthropic writes its fields.
#[derive(Serialize)]
struct OutMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: (),
    usage: OutUsage,
    seawall: Seawall,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
}

/// A tool call's arguments as the `input` object Anthropic's SDKs expect. Empty arguments
/// are `{}`; arguments that are not a JSON object (a model's broken JSON) are kept as text
/// under `_raw_arguments` rather than lost.
pub(super) fn tool_input(call: &ToolCall) -> Value {
    if call.arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => {
            let mut kept = Map::new();
            kept.insert(
                "_raw_arguments".to_owned(),
                Value::String(call.arguments.clone()),
            );
            Value::Object(kept)
        }
    }
}

/// The body of a complete response: text first, then the tool calls, as Claude answers.
/// `model` is the model that answered; Anthropic's body has no creation time.
pub(crate) fn encode_response(
    response: &ChatResponse,
    id: &str,
    model: &str,
    _created: u64,
) -> Vec<u8> {
    let message = &response.message;
    let mut content = Vec::with_capacity(1 + message.tool_calls.len());
    // A refusal (OpenAI's field) is what the model said instead of an answer.
    let text = match (&message.refusal, message.text.is_empty()) {
        (Some(refusal), true) => refusal.as_str(),
        _ => message.text.as_str(),
    };
    if !text.is_empty() {
        content.push(Block::Text { text });
    }
    content.extend(message.tool_calls.iter().map(|call| Block::ToolUse {
        id: &call.id,
        name: &call.name,
        input: tool_input(call),
    }));
    let body = OutMessage {
        id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: stop_reason(
            response.finish_reason.as_ref(),
            !message.tool_calls.is_empty(),
        ),
        stop_sequence: (),
        usage: response
            .usage
            .as_ref()
            .map_or(OutUsage::zero(), OutUsage::from),
        seawall: Seawall {
            cost_usd: response.cost.map(Cost::usd),
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The `count_tokens` body: `{"input_tokens": N}`.
pub(crate) fn encode_count(input_tokens: u64) -> Vec<u8> {
    format!("{{\"input_tokens\":{input_tokens}}}").into_bytes()
}

/// Anthropic's error `type` for an HTTP status, which the SDKs map to exception classes.
fn status_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The body of an HTTP error reply, typed by `status` as Anthropic types it. Anthropic has
/// no `param` field: its messages start with the parameter's name, so `param` is put in
/// front of `message` unless it already starts with it. `_kind` (the OpenAI-style type) is
/// implied by the status.
pub(crate) fn error_body(
    status: u16,
    _kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Vec<u8> {
    let named;
    let message = match param {
        Some(param) if !param.is_empty() && !message.starts_with(param) => {
            named = format!("{param}: {message}");
            named.as_str()
        }
        _ => message,
    };
    let body = ErrorBody {
        kind: "error",
        error: ErrorObject {
            kind: status_type(status),
            message,
            details: code.map(|error_code| Details { error_code }),
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
