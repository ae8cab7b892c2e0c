//! `google.rpc.Status` error bodies, and prompts blocked before any candidate.

use seawall_core::{ErrorKind, LlmError, ProviderKind, hints};
use serde_json::Value;

use crate::error::mentions_context_length;
use crate::json::{get, str_at};

pub(super) fn gemini_error(status: Option<u16>, value: &Value) -> LlmError {
    let error = get(value, &["error"]).unwrap_or(value);
    let message = str_at(error, &["message"]).unwrap_or_default();
    let canonical = str_at(error, &["status"]).unwrap_or_default();
    let status = status.or_else(|| {
        get(error, &["code"])
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
    });
    let details = get(error, &["details"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let reason = details
        .iter()
        .find_map(|detail| str_at(detail, &["reason"]))
        .unwrap_or_default();
    let daily_quota = details.iter().any(|detail| {
        get(detail, &["violations"])
            .and_then(Value::as_array)
            .is_some_and(|violations| {
                violations
                    .iter()
                    .any(|v| str_at(v, &["quotaId"]).is_some_and(|id| id.contains("PerDay")))
            })
    });
    let kind = if reason == "API_KEY_INVALID" {
        ErrorKind::Auth
    } else if mentions_context_length(message) {
        ErrorKind::ContextLengthExceeded
    } else {
        match canonical {
            "RESOURCE_EXHAUSTED" if daily_quota => ErrorKind::QuotaExhausted,
            "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
            "INVALID_ARGUMENT" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
            "FAILED_PRECONDITION" | "PERMISSION_DENIED" => ErrorKind::Permission,
            "UNAUTHENTICATED" => ErrorKind::Auth,
            "NOT_FOUND" => ErrorKind::NotFound,
            "UNAVAILABLE" => ErrorKind::Overloaded,
            "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
            "ABORTED" | "CANCELLED" => ErrorKind::Transient,
            "INTERNAL" | "UNKNOWN" => ErrorKind::Server,
            _ => status.map_or(ErrorKind::Server, ErrorKind::from_status),
        }
    };
    let mut llm = LlmError::new(kind, message).with_provider(ProviderKind::Gemini);
    if !canonical.is_empty() {
        llm = llm.with_code(canonical);
    }
    if let Some(status) = status
        && status >= 400
    {
        llm = llm.with_status(status);
    }
    if let Some(delay) = hints::gemini_retry_delay(value) {
        llm = llm.with_retry_after(delay);
    }
    llm
}

pub(super) fn prompt_block(value: &Value) -> Option<LlmError> {
    let has_candidates = get(value, &["candidates"])
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    let reason = str_at(value, &["promptFeedback", "blockReason"])?;
    if has_candidates {
        return None;
    }
    Some(
        LlmError::new(
            ErrorKind::ContentFiltered,
            format!("the prompt was blocked: {reason}"),
        )
        .with_provider(ProviderKind::Gemini)
        .with_code(reason),
    )
}
