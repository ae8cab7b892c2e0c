//! The Anthropic Messages API, server side: `POST /v1/messages` and
//! `POST /v1/messages/count_tokens` bodies to [`ChatRequest`](seawall_core::ChatRequest), and
//! responses, SSE streams and errors written as Anthropic writes them, so that the official
//! SDKs (`anthropic`, `@anthropic-ai/sdk`) work against the gateway unchanged.
//!
//! What the unified model cannot carry, and what happens to it:
//! - `thinking` and `redacted_thinking` blocks of assistant turns are dropped (an assistant
//!   turn made only of them is dropped whole). A provider that thinks again gets the
//!   conversation without them; Anthropic itself refuses a tool-use continuation with
//!   thinking enabled that lacks them, so such a call fails upstream.
//! - `tool_result.is_error` is checked and dropped: the result's content still reaches the
//!   model, the flag does not.
//! - `tool_choice.disable_parallel_tool_use` is checked and dropped.
//! - `document`, `search_result`, `file` sources and Anthropic-defined tools (`bash_…`,
//!   `web_search_…`) are refused with a 400 naming the block: sent elsewhere they would be
//!   lost without a word.
//! - Other top-level fields (`thinking`, `top_k`, `service_tier`, `output_config`, ...) pass
//!   through unchanged in [`ChatRequest::extra`](seawall_core::ChatRequest::extra).
//!
//! Usage follows Anthropic's accounting: `input_tokens` excludes the cache reads and writes,
//! which have fields of their own; the unified [`Usage`] counts them in.

mod decode;
mod encode;
mod stream;

pub(crate) use decode::{decode_count_request, decode_request};
pub(crate) use encode::{encode_count, encode_response, error_body};
pub(crate) use stream::StreamWriter;

use serde::Serialize;

use seawall_core::{ErrorKind, FinishReason, Usage};

/// `{"type":"error","error":{...}}`: an error reply's body, and the in-band `error` event.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
    /// The gateway's own code (`model_not_found`, `budget_exceeded`, ...) where Anthropic
    /// puts its codes; an SDK that knows no class for it falls back to the status's class.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
}

#[derive(Serialize)]
struct Details<'a> {
    error_code: &'a str,
}

/// Anthropic's `stop_reason` for a finish reason; `called_tools` says whether the answer
/// holds tool calls (some providers end a tool-calling turn with a plain stop, and SDK loops
/// wait for `tool_use`).
fn stop_reason(reason: Option<&FinishReason>, called_tools: bool) -> &'static str {
    match reason {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        Some(FinishReason::Other(raw)) => match raw.as_str() {
            // Anthropic's own reasons, passed through by its adapter.
            "pause_turn" => "pause_turn",
            "stop_sequence" => "stop_sequence",
            "model_context_window_exceeded" => "model_context_window_exceeded",
            _ if called_tools => "tool_use",
            _ => "end_turn",
        },
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

/// Anthropic's error `type` for a failure class, for in-band stream errors.
fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::RateLimited | ErrorKind::QuotaExhausted => "rate_limit_error",
        ErrorKind::Auth => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::InvalidRequest
        | ErrorKind::ContextLengthExceeded
        | ErrorKind::ContentFiltered => "invalid_request_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::Timeout => "timeout_error",
        _ => "api_error",
    }
}

/// Anthropic's usage object (in its field order): `input_tokens` without the cached
/// tokens.
#[derive(Debug, Serialize)]
struct OutUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

impl OutUsage {
    /// Unknown usage: the SDKs' types require the counts, so they are zero.
    const fn zero() -> Self {
        Self {
            input_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: 0,
        }
    }
}

impl From<&Usage> for OutUsage {
    fn from(usage: &Usage) -> Self {
        Self {
            input_tokens: usage
                .input_tokens
                .saturating_sub(usage.cached_input_tokens)
                .saturating_sub(usage.cache_write_tokens),
            cache_creation_input_tokens: usage.cache_write_tokens,
            cache_read_input_tokens: usage.cached_input_tokens,
            output_tokens: usage.output_tokens,
        }
    }
}

/// `"seawall": {"cost_usd": ...}`: what the call cost, `null` when its model has no price.
/// The SDKs' models keep unknown fields aside.
#[derive(Debug, Serialize)]
struct Seawall {
    cost_usd: Option<f64>,
}
