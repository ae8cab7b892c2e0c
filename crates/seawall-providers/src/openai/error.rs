//! Error bodies: OpenAI's, and the shapes compatible servers and Azure send.

use http::HeaderMap;
use seawall_core::{ErrorKind, LlmError, ProviderKind};
use serde_json::Value;

use super::OpenAiDialect;
use crate::dialect::Dialect;
use crate::error::{from_parsed_body, mentions_context_length, scalar_text};
use crate::json::{get, str_at};

impl OpenAiDialect {
    pub(super) fn error_from_json(
        &self,
        status: Option<u16>,
        headers: &HeaderMap,
        value: &Value,
    ) -> LlmError {
        let error = openai_error(self.provider(), status, value);
        match status {
            Some(status) if status >= 400 => {
                from_parsed_body(self.provider(), &error, status, headers, "x-request-id")
            }
            _ => error,
        }
    }
}

/// The error an OpenAI-shaped error body stands for, with the status when there was one
/// (`None` for an in-band stream error frame). The Responses API shares the shape.
pub(crate) fn openai_error(provider: ProviderKind, status: Option<u16>, value: &Value) -> LlmError {
    // `{"error": {...}}`, `{"error": "text"}`, or vLLM's legacy flat `{"object": "error", ...}`.
    let (object, message) = match value.get("error") {
        Some(Value::String(text)) => (&Value::Null, text.clone()),
        Some(object @ Value::Object(_)) => (
            object,
            str_at(object, &["message"]).unwrap_or_default().to_owned(),
        ),
        _ => (
            value,
            str_at(value, &["message"]).unwrap_or_default().to_owned(),
        ),
    };
    let kind_name = str_at(object, &["type"]).unwrap_or_default();
    let code = scalar_text(object.get("code"));
    // vLLM and llama.cpp put the HTTP status in `code`; use it for an in-band frame.
    let status = status.or_else(|| {
        object
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
    });
    let kind = openai_kind(status, kind_name, code.as_deref().unwrap_or(""), &message);
    let message = with_filtered_categories(message, object);
    let mut error = LlmError::new(kind, message).with_provider(provider);
    if let Some(code) = code.filter(|c| c.parse::<u16>().is_err()) {
        error = error.with_code(code);
    } else if !kind_name.is_empty() {
        error = error.with_code(kind_name);
    }
    if let Some(status) = status
        && status >= 400
    {
        error = error.with_status(status);
    }
    error
}

/// `message`, followed by the categories Azure's content filter flagged (its
/// `innererror.content_filter_result`), so the caller sees why without the body.
fn with_filtered_categories(message: String, error: &Value) -> String {
    let Some(results) =
        get(error, &["innererror", "content_filter_result"]).and_then(Value::as_object)
    else {
        return message;
    };
    let flagged: Vec<String> = results
        .iter()
        .filter(|(_, result)| get(result, &["filtered"]).and_then(Value::as_bool) == Some(true))
        .map(|(category, result)| match str_at(result, &["severity"]) {
            Some(severity) => format!("{category} ({severity})"),
            None => category.clone(),
        })
        .collect();
    if flagged.is_empty() {
        message
    } else {
        format!("{message} [filtered: {}]", flagged.join(", "))
    }
}

fn openai_kind(status: Option<u16>, kind: &str, code: &str, message: &str) -> ErrorKind {
    if code == "context_length_exceeded"
        || kind == "exceed_context_size_error"
        || mentions_context_length(message)
    {
        return ErrorKind::ContextLengthExceeded;
    }
    if code == "insufficient_quota" || kind == "insufficient_quota" {
        return ErrorKind::QuotaExhausted;
    }
    if code == "content_filter" || kind == "content_filter" {
        return ErrorKind::ContentFiltered;
    }
    if code == "invalid_api_key" {
        return ErrorKind::Auth;
    }
    let rate_limited =
        status == Some(429) || code == "rate_limit_exceeded" || kind == "rate_limit_exceeded";
    if rate_limited {
        // "Request too large for gpt-4o ... on tokens per min": it can never fit the limit.
        return if message.trim_start().starts_with("Request too large") {
            ErrorKind::RequestTooLarge
        } else {
            ErrorKind::RateLimited
        };
    }
    if let Some(status) = status {
        return ErrorKind::from_status(status);
    }
    match kind {
        "invalid_request_error" | "BadRequestError" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Auth,
        "permission_error" => ErrorKind::Permission,
        "not_found_error" | "NotFoundError" => ErrorKind::NotFound,
        "service_unavailable_error" | "unavailable_error" | "overloaded_error" => {
            ErrorKind::Overloaded
        }
        "tokens" | "requests" => ErrorKind::RateLimited,
        _ => ErrorKind::Server,
    }
}
