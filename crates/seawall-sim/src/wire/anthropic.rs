//! Anthropic Messages.

use bytes::Bytes;
use serde_json::{Value, json};

use super::openai::split_fragments;
use super::{ApiError, Parsed, ResponseCtx, StreamParts, content_text, filler};
use crate::reply::{Finish, Prompt, Reply};

/// API versions the SDKs send: `2023-06-01` (anthropic ≤ 1.17) and `2026-10-21` (≥ 2.0).
pub(crate) const VERSIONS: [&str; 2] = ["2023-06-01", "2026-10-21"];

/// The 400 that models without prefill support return.
pub(crate) const PREFILL_REJECTED: &str = "This model does not support assistant message prefill. The conversation must end with a user message.";

pub(crate) fn default_error(status: u16) -> ApiError {
    let (ty, msg) = match status {
        400 => ("invalid_request_error", "Invalid request."),
        401 => ("authentication_error", "invalid x-api-key"),
        402 => (
            "billing_error",
            "Your credit balance is too low to access the Anthropic API.",
        ),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "Not found"),
        409 => ("conflict_error", "Conflict"),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
        ),
        504 => ("timeout_error", "Request timed out"),
        529 => ("overloaded_error", "Overloaded"),
        s if s >= 500 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Invalid request."),
    };
    ApiError::new(status, ty, msg)
}

pub(crate) fn request_id(seq: u64) -> String {
    format!("req_011C{}", filler(seq ^ 0xa1, 22))
}

pub(crate) fn error_body(err: &ApiError, seq: u64) -> Bytes {
    let mut inner = serde_json::Map::new();
    inner.insert("type".into(), json!(err.error_type));
    inner.insert("message".into(), json!(err.message));
    for (k, v) in &err.extra {
        inner.insert((*k).into(), v.clone());
    }
    Bytes::from(json!({"type": "error", "error": inner, "request_id": request_id(seq)}).to_string())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "invalid_request_error", message)
}

/// An image block's source is `base64` (with a supported media type), or a `url` Anthropic
/// fetches over HTTP(S), or a `file`; a `data:` URL in a `url` source is refused, as the API
/// does.
fn check_images(message: usize, content: &Value) -> Result<(), ApiError> {
    const MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];
    for (j, block) in content.as_array().into_iter().flatten().enumerate() {
        if block.get("type").and_then(Value::as_str) != Some("image") {
            continue;
        }
        let source = block.get("source").unwrap_or(&Value::Null);
        let at = format!("messages.{message}.content.{j}.image.source");
        match source.get("type").and_then(Value::as_str) {
            Some("base64") => {
                let media_type = source.get("media_type").and_then(Value::as_str);
                if !media_type.is_some_and(|t| MEDIA_TYPES.contains(&t)) {
                    return Err(invalid(format!(
                        "{at}.base64.media_type: Input should be 'image/jpeg', 'image/png', \
                         'image/gif' or 'image/webp'"
                    )));
                }
                if source.get("data").and_then(Value::as_str).is_none() {
                    return Err(invalid(format!("{at}.base64.data: Field required")));
                }
            }
            Some("url") => {
                let url = source.get("url").and_then(Value::as_str).unwrap_or("");
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid(format!(
                        "{at}.url.url: Only HTTP and HTTPS URLs are supported"
                    )));
                }
            }
            Some("file") => {}
            _ => {
                return Err(invalid(format!(
                    "{at}: Input tag does not match any of the expected tags: 'base64', 'url', 'file'"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn parse(v: &Value) -> Result<Parsed, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(invalid("Request body must be a JSON object"));
    };
    let model = match obj.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => return Err(invalid("model: Field required")),
    };
    let Some(max_tokens) = obj.get("max_tokens") else {
        return Err(invalid("max_tokens: Field required"));
    };
    let Some(max_tokens) = max_tokens.as_u64() else {
        return Err(invalid("max_tokens: Input should be a valid integer"));
    };
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return Err(invalid("messages: Field required"));
    };
    let mut prompt = Prompt::default();
    if let Some(system) = obj.get("system") {
        prompt.system = Some(content_text(system));
    }
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").cloned().unwrap_or(Value::Null);
        check_images(i, &content)?;
        let blocks_of = |ty: &str| {
            content.as_array().is_some_and(|b| {
                b.iter()
                    .any(|x| x.get("type").and_then(Value::as_str) == Some(ty))
            })
        };
        match role {
            "user" if blocks_of("tool_result") => {
                prompt
                    .messages
                    .push(("tool".into(), content_text(&content)));
            }
            "user" => prompt
                .messages
                .push(("user".into(), content_text(&content))),
            "assistant" if blocks_of("tool_use") => {
                prompt
                    .messages
                    .push(("tool_call".into(), content.to_string()));
            }
            "assistant" => prompt
                .messages
                .push(("assistant".into(), content_text(&content))),
            _ => {
                return Err(invalid(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                )));
            }
        }
    }
    if messages.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        for t in tools {
            if let Some(name) = t.get("name").and_then(Value::as_str) {
                let schema = t.get("input_schema").cloned().unwrap_or(Value::Null);
                prompt.tools.push((name.to_owned(), schema));
            }
        }
    }
    if let Some(choice) = obj.get("tool_choice") {
        match choice.get("type").and_then(Value::as_str) {
            Some("none") => prompt.tools_disabled = true,
            Some("any") => prompt.forced_tool = Some(None),
            Some("tool") => {
                prompt.forced_tool = Some(
                    choice
                        .get("name")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                );
            }
            _ => {}
        }
    }
    Ok(Parsed {
        prompt,
        model,
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        max_tokens: Some(max_tokens),
        include_usage: true,
        include_obfuscation: false,
        sse: true,
    })
}

fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCall => "tool_use",
        Finish::ContentFilter => "refusal",
    }
}

fn message_id(ctx: &ResponseCtx) -> String {
    format!("msg_01{}", filler(ctx.seq ^ 0x3e5, 22))
}

fn tool_id(call_id: &str) -> String {
    format!("toolu_{}", call_id.trim_start_matches("call_"))
}

fn usage(reply: &Reply, output: u64) -> Value {
    json!({
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output,
        "service_tier": "standard"
    })
}

/// Refusals carry `stop_details` (as in the recorded `anthropic-refusal` stream).
fn with_stop_details(mut v: Value, finish: Finish) -> Value {
    if finish == Finish::ContentFilter {
        v["stop_details"] = json!({
            "type": "refusal", "category": "cyber",
            "explanation": "The request was declined by a safety classifier.",
            "recommended_model": null
        });
    }
    v
}

pub(crate) fn message(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> Bytes {
    let content = match &reply.tool_call {
        Some((id, name, args)) => {
            let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
            json!([{"type": "tool_use", "id": tool_id(id), "name": name, "input": input}])
        }
        None => json!([{"type": "text", "text": reply.text()}]),
    };
    Bytes::from(
        with_stop_details(json!({
            "id": message_id(ctx), "type": "message", "role": "assistant", "model": parsed.model,
            "content": content, "stop_reason": stop_reason(reply.finish), "stop_sequence": null,
            "usage": usage(reply, reply.completion_tokens),
        }), reply.finish)
        .to_string(),
    )
}

/// `event: <name>\ndata: <json>\n\n`.
pub(crate) fn event(name: &str, data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut out, data).unwrap_or_default();
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub(crate) fn stream(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> StreamParts {
    let mut parts = StreamParts::default();
    parts.events.push(event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": message_id(ctx), "type": "message", "role": "assistant", "model": parsed.model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(reply, 1)
        }}),
    ));
    match &reply.tool_call {
        Some((id, name, args)) => {
            parts.events.push(event("content_block_start", &json!({
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": tool_id(id), "name": name, "input": {}}
            })));
            // Real streams serialize `ping` with a space after the colon.
            parts.events.push(Bytes::from_static(
                b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
            ));
            for fragment in split_fragments(args, 4) {
                parts.events.push(event(
                    "content_block_delta",
                    &json!({
                        "type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": fragment}
                    }),
                ));
            }
        }
        None => {
            parts.events.push(event("content_block_start", &json!({
                "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}
            })));
            parts.events.push(Bytes::from_static(
                b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
            ));
            for piece in &reply.pieces {
                parts.events.push(event(
                    "content_block_delta",
                    &json!({
                        "type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": piece}
                    }),
                ));
            }
        }
    }
    parts.events.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    parts.terminal.push(event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": with_stop_details(json!({"stop_reason": stop_reason(reply.finish), "stop_sequence": null}), reply.finish),
            "usage": {"input_tokens": reply.prompt_tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": reply.completion_tokens}
        }),
    ));
    parts
        .terminal
        .push(event("message_stop", &json!({"type": "message_stop"})));
    parts
}

pub(crate) fn error_frame() -> Bytes {
    event(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
}

/// The fields `POST /v1/messages/count_tokens` takes; any other is refused.
const COUNT_FIELDS: [&str; 7] = [
    "messages",
    "model",
    "system",
    "thinking",
    "tool_choice",
    "tools",
    "mcp_servers",
];

/// Parses a `count_tokens` request: a messages request without the output fields
/// (`max_tokens`, `stream`, sampling), which the endpoint refuses as extra inputs.
pub(crate) fn parse_count(v: &Value) -> Result<Parsed, ApiError> {
    let Some(obj) = v.as_object() else {
        return parse(v);
    };
    if let Some(extra) = obj.keys().find(|k| !COUNT_FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!("{extra}: Extra inputs are not permitted")));
    }
    let mut with_cap = obj.clone();
    with_cap.insert("max_tokens".into(), json!(1));
    parse(&Value::Object(with_cap))
}

/// `POST /v1/messages/count_tokens`.
pub(crate) fn count_tokens(prompt: &Prompt) -> Bytes {
    Bytes::from(json!({"input_tokens": prompt.prompt_tokens()}).to_string())
}
