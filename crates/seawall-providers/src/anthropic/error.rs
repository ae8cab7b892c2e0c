//! Error bodies: `{"type":"error","error":{type,message,details},"request_id"}`.

use seawall_core::{ErrorKind, LlmError, ProviderKind};
use serde_json::Value;

use crate::error::mentions_context_length;
use crate::json::{get, str_at};

pub(super) fn anthropic_error(status: Option<u16>, value: &Value) -> LlmError {
    let error = get(value, &["error"]).unwrap_or(value);
    let kind_name = str_at(error, &["type"]).unwrap_or_default();
    let message = str_at(error, &["message"]).unwrap_or_default();
    let detail_code = str_at(error, &["details", "error_code"]).unwrap_or_default();
    let kind = if mentions_context_length(message) {
        ErrorKind::ContextLengthExceeded
    } else if detail_code == "enforced_spend_limit_reached" || kind_name == "billing_error" {
        ErrorKind::QuotaExhausted
    } else {
        match kind_name {
            "invalid_request_error" => ErrorKind::InvalidRequest,
            "authentication_error" => ErrorKind::Auth,
            "permission_error" => ErrorKind::Permission,
            "not_found_error" => ErrorKind::NotFound,
            "request_too_large" => ErrorKind::RequestTooLarge,
            "rate_limit_error" => ErrorKind::RateLimited,
            "api_error" => ErrorKind::Server,
            "overloaded_error" => ErrorKind::Overloaded,
            "timeout_error" => ErrorKind::Timeout,
            "conflict_error" => ErrorKind::Transient,
            _ => status.map_or(ErrorKind::Server, ErrorKind::from_status),
        }
    };
    let mut llm = LlmError::new(kind, message).with_provider(ProviderKind::Anthropic);
    let code = if detail_code.is_empty() {
        kind_name
    } else {
        detail_code
    };
    if !code.is_empty() {
        llm = llm.with_code(code);
    }
    if let Some(id) = str_at(value, &["request_id"]) {
        llm = llm.with_request_id(id);
    }
    llm
}
