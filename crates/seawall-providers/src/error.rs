//! Helpers shared by the dialects' error mapping: the parts of an [`LlmError`] that every
//! provider fills the same way (status, hints, quota, request id) and the fallbacks for
//! bodies that are not JSON.

use std::time::SystemTime;

use http::HeaderMap;
use seawall_core::{ErrorKind, LlmError, ProviderKind, hints};
use serde_json::Value;

/// An error for a response with `status`, carrying the retry hints and quota snapshot of
/// its headers and the request id header `request_id_header`.
pub(crate) fn from_response(
    provider: ProviderKind,
    kind: ErrorKind,
    status: u16,
    headers: &HeaderMap,
    message: impl Into<String>,
    request_id_header: &str,
) -> LlmError {
    let now = SystemTime::now();
    let mut error = LlmError::new(kind, message)
        .with_provider(provider)
        .with_status(status)
        .with_hints(hints::retry_hints(headers, now));
    let quota = hints::quota_snapshot(headers, now);
    if !quota.is_empty() {
        error = error.with_quota(quota);
    }
    if let Some(id) = headers
        .get(request_id_header)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
    {
        error = error.with_request_id(id);
    }
    error
}

/// [`from_response`] for a JSON error body already read into `parsed`: its kind, message and
/// provider error code.
pub(crate) fn from_parsed_body(
    provider: ProviderKind,
    parsed: &LlmError,
    status: u16,
    headers: &HeaderMap,
    request_id_header: &str,
) -> LlmError {
    let error = from_response(
        provider,
        parsed.kind(),
        status,
        headers,
        parsed.message(),
        request_id_header,
    );
    match parsed.code() {
        Some(code) => error.with_code(code),
        None => error,
    }
}

/// The message for a body that is not a JSON error: an HTML page from a proxy, plain text
/// or nothing at all.
pub(crate) fn non_json_message(status: u16, headers: &HeaderMap, body: &[u8]) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    if body.iter().all(u8::is_ascii_whitespace) {
        return format!("{reason} (empty body)");
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown content type");
    let text = String::from_utf8_lossy(body);
    let looks_html = content_type.contains("html") || text.trim_start().starts_with('<');
    if looks_html {
        let title = text
            .find("<title>")
            .and_then(|start| {
                let rest = &text[start + 7..];
                rest.find("</title>")
                    .map(|end| rest[..end].trim().to_owned())
            })
            .filter(|title| !title.is_empty());
        return match title {
            Some(title) => format!("{reason} (HTML page: {})", truncate(&title, 160)),
            None => format!("{reason} (HTML page)"),
        };
    }
    format!("{reason}: {}", truncate(text.trim(), 300))
}

/// The error for a 2xx body that is not the provider's response.
pub(crate) fn decode_error(
    provider: ProviderKind,
    what: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> LlmError {
    LlmError::new(ErrorKind::Decode, format!("could not decode the {what}"))
        .with_provider(provider)
        .with_source(source)
}

pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A JSON string, or a number or other scalar as text (vLLM sends an integer `code`).
pub(crate) fn scalar_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Whether a message says the prompt does not fit the context window, in the wording of
/// OpenAI, vLLM, DeepSeek, llama.cpp and other OpenAI-compatible servers.
pub(crate) fn mentions_context_length(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("maximum context length")
        || message.contains("context_length_exceeded")
        || message.contains("exceeds the available context size")
        || message.contains("exceeds the context window")
        || message.contains("context window of this model")
        || message.contains("prompt is too long")
        || message.contains("exceed context limit")
        || (message.contains("input token count") && message.contains("exceeds the maximum"))
}
