//! Responses API errors: the chat completions error body
//! (`{"error":{message,type,param,code}}`), read by the same mapping, plus the shapes only
//! this API has (a failed response's `error`, the stream's `error` event).

use http::HeaderMap;
use seawall_core::{ErrorKind, LlmError, ProviderKind};
use serde_json::{Value, json};

use crate::error::{from_parsed_body, from_response, non_json_message};
use crate::json::str_at;
use crate::openai::openai_error;

const PROVIDER: ProviderKind = ProviderKind::OpenAiResponses;

/// The error an unsuccessful status, its headers and its body stand for.
pub(super) fn from_status(status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => {
            let error = openai_error(PROVIDER, Some(status), &value);
            from_parsed_body(PROVIDER, &error, status, headers, super::REQUEST_ID)
        }
        _ => from_response(
            PROVIDER,
            ErrorKind::from_status(status),
            status,
            headers,
            non_json_message(status, headers, body),
            super::REQUEST_ID,
        ),
    }
}

/// The error of a stream's `error` event: nested (`{"type":"error","error":{...}}`, what
/// the API sends) or flat (`{"type":"error","code","message","param"}`, what its
/// specification documents).
pub(super) fn from_error_event(event: &Value) -> LlmError {
    match event.get("error") {
        Some(Value::Object(_)) => openai_error(PROVIDER, None, event),
        _ => from_error_object(event),
    }
}

/// The error of a failed response: its `error` (`{code, message}`).
pub(super) fn from_failed_response(response: &Value) -> LlmError {
    match response.get("error") {
        Some(error @ Value::Object(_)) => from_error_object(error),
        _ => LlmError::new(ErrorKind::Server, "the response failed without an error")
            .with_provider(PROVIDER),
    }
}

/// An object with `code` and `message` (and perhaps `type`), as in the chat error body.
fn from_error_object(error: &Value) -> LlmError {
    let code = str_at(error, &["code"]);
    let kind = str_at(error, &["type"])
        .filter(|kind| *kind != "error")
        .or_else(|| code.map(code_kind));
    let message = str_at(error, &["message"]).unwrap_or("the response failed");
    openai_error(
        PROVIDER,
        None,
        &json!({"error": {"message": message, "type": kind, "code": code}}),
    )
}

/// The error type a failed response's `code` stands for: its codes name a bad prompt or
/// image, a content policy, or the server's own trouble.
fn code_kind(code: &str) -> &str {
    match code {
        "image_content_policy_violation" => "content_filter",
        "invalid_prompt" | "failed_to_download_image" => "invalid_request_error",
        code if code.starts_with("invalid_")
            || code.starts_with("image_")
            || code.starts_with("unsupported_")
            || code.starts_with("empty_") =>
        {
            "invalid_request_error"
        }
        code => code,
    }
}
