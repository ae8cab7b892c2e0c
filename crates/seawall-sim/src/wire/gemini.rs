//! Gemini `generateContent` / `streamGenerateContent` (REST, `v1` and `v1beta`).

use bytes::Bytes;
use serde_json::{Value, json};

use super::{ApiError, Parsed, ResponseCtx, StreamParts, filler};
use crate::reply::{Finish, Prompt, Reply};

pub(crate) fn default_error(status: u16) -> ApiError {
    let (st, msg) = match status {
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        401 => (
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ),
        403 => ("PERMISSION_DENIED", "The caller does not have permission"),
        404 => ("NOT_FOUND", "Requested entity was not found."),
        409 => ("ABORTED", "The operation was aborted."),
        429 => (
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        ),
        499 => ("CANCELLED", "The operation was cancelled."),
        501 => ("UNIMPLEMENTED", "Method not implemented."),
        503 => (
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ),
        504 => (
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.",
        ),
        s if s >= 500 => (
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        ),
        _ => ("FAILED_PRECONDITION", "Precondition check failed."),
    };
    ApiError::new(status, st, msg)
}

pub(crate) fn error_body(err: &ApiError) -> Bytes {
    let mut inner = serde_json::Map::new();
    inner.insert("code".into(), json!(err.status));
    inner.insert("message".into(), json!(err.message));
    inner.insert("status".into(), json!(err.error_type));
    for (k, v) in &err.extra {
        inner.insert((*k).into(), v.clone());
    }
    Bytes::from(json!({ "error": inner }).to_string())
}

/// The 400 for a key that is not valid.
pub(crate) fn invalid_key() -> ApiError {
    ApiError::new(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.").extra(
        "details",
        json!([
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": "API key not valid. Please pass a valid API key."}
        ]),
    )
}

/// The 403 for a request without any key.
pub(crate) fn missing_key() -> ApiError {
    ApiError::new(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    )
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "INVALID_ARGUMENT", message)
}

/// Gemini fetches `fileData` from a `gs://`, `https://` or uploaded-file URI; bytes in the
/// request go in `inlineData`. A `data:` URL as a file is refused, as the API does.
fn check_files(content: usize, parts: &Value) -> Result<(), ApiError> {
    for (j, part) in parts.as_array().into_iter().flatten().enumerate() {
        let file = part.get("fileData").or_else(|| part.get("file_data"));
        let uri = file
            .and_then(|f| f.get("fileUri").or_else(|| f.get("file_uri")))
            .and_then(Value::as_str);
        if let Some(uri) = uri
            && !(uri.starts_with("https://")
                || uri.starts_with("http://")
                || uri.starts_with("gs://"))
        {
            return Err(invalid(format!(
                "* GenerateContentRequest.contents[{content}].parts[{j}].file_data.file_uri: \
                 Unsupported file uri: {}\n",
                uri.chars().take(32).collect::<String>()
            )));
        }
    }
    Ok(())
}

fn parts_text(parts: &Value) -> String {
    let mut out = String::new();
    for p in parts.as_array().into_iter().flatten() {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            out.push_str(t);
        } else if let Some(fc) = p.get("functionCall").or_else(|| p.get("functionResponse")) {
            out.push_str(&fc.to_string());
        }
    }
    out
}

pub(crate) fn parse(v: &Value, model: &str, stream: bool, sse: bool) -> Result<Parsed, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(invalid(
            "Invalid JSON payload received. Expected an object.",
        ));
    };
    let contents = match obj.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(invalid(
                "* GenerateContentRequest.contents: contents is not specified\n",
            ));
        }
    };
    let mut prompt = Prompt::default();
    if let Some(si) = obj
        .get("systemInstruction")
        .or_else(|| obj.get("system_instruction"))
    {
        prompt.system = Some(parts_text(si.get("parts").unwrap_or(&Value::Null)));
    }
    for (i, c) in contents.iter().enumerate() {
        let parts = c.get("parts").unwrap_or(&Value::Null);
        check_files(i, parts)?;
        let has = |key: &str| {
            parts
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p.get(key).is_some()))
        };
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = parts_text(parts);
        match role {
            "user" if has("functionResponse") => prompt.messages.push(("tool".into(), text)),
            "user" => prompt.messages.push(("user".into(), text)),
            "model" if has("functionCall") => prompt.messages.push(("tool_call".into(), text)),
            "model" => prompt.messages.push(("assistant".into(), text)),
            _ => return Err(invalid("Please use a valid role: user, model.")),
        }
    }
    let max_tokens = v
        .pointer("/generationConfig/maxOutputTokens")
        .and_then(Value::as_u64);
    for tool in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for decl in tool
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = decl.get("name").and_then(Value::as_str) {
                let schema = decl
                    .get("parameters")
                    .or_else(|| decl.get("parametersJsonSchema"))
                    .cloned()
                    .unwrap_or(Value::Null);
                prompt.tools.push((name.to_owned(), schema));
            }
        }
    }
    if let Some(cfg) = v.pointer("/toolConfig/functionCallingConfig") {
        match cfg.get("mode").and_then(Value::as_str) {
            Some("NONE") => prompt.tools_disabled = true,
            Some("ANY") => {
                prompt.forced_tool = Some(
                    cfg.pointer("/allowedFunctionNames/0")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                );
            }
            _ => {}
        }
    }
    Ok(Parsed {
        prompt,
        model: model.to_owned(),
        stream,
        max_tokens,
        include_usage: true,
        include_obfuscation: false,
        sse,
    })
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Length => "MAX_TOKENS",
        Finish::ContentFilter => "SAFETY",
        _ => "STOP",
    }
}

fn response_id(ctx: &ResponseCtx) -> String {
    filler(ctx.seq ^ 0x6e, 22)
}

fn usage(reply: &Reply, candidates: u64) -> Value {
    json!({
        "promptTokenCount": reply.prompt_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": reply.prompt_tokens + candidates,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}]
    })
}

fn candidate(parts: Value, finish: Option<Finish>, is_tool: bool) -> Value {
    let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        c["finishReason"] = json!(finish_reason(f));
        if is_tool {
            c["finishMessage"] = json!("Model generated function call(s).");
        }
    }
    c
}

fn response(ctx: &ResponseCtx, parsed: &Parsed, cand: Value, usage: Value) -> Value {
    json!({
        "candidates": [cand], "usageMetadata": usage,
        "modelVersion": parsed.model, "responseId": response_id(ctx)
    })
}

fn tool_parts(reply: &Reply) -> Option<Value> {
    reply.tool_call.as_ref().map(|(_, name, args)| {
        let args: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        json!([{"functionCall": {"name": name, "args": args}}])
    })
}

pub(crate) fn generate(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> Bytes {
    let parts = tool_parts(reply).unwrap_or_else(|| json!([{"text": reply.text()}]));
    let body = response(
        ctx,
        parsed,
        candidate(parts, Some(reply.finish), reply.tool_call.is_some()),
        usage(reply, reply.completion_tokens),
    );
    Bytes::from(body.to_string())
}

/// Frames one chunk: `data: …\r\n\r\n` with `alt=sse`, else an element of a JSON array.
fn frame(parsed: &Parsed, v: &Value, first: bool) -> Bytes {
    let mut out = Vec::with_capacity(256);
    if parsed.sse {
        out.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut out, v).unwrap_or_default();
        out.extend_from_slice(b"\r\n\r\n");
    } else {
        out.extend_from_slice(if first { b"[" } else { b",\r\n" });
        serde_json::to_writer(&mut out, v).unwrap_or_default();
    }
    Bytes::from(out)
}

pub(crate) fn stream(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> StreamParts {
    let mut parts = StreamParts::default();
    if let Some(tp) = tool_parts(reply) {
        let v = response(
            ctx,
            parsed,
            candidate(tp, Some(reply.finish), true),
            usage(reply, reply.completion_tokens),
        );
        parts.terminal.push(frame(parsed, &v, true));
    } else {
        let n = reply.pieces.len();
        for (i, piece) in reply.pieces.iter().enumerate() {
            let last = i + 1 == n;
            let v = response(
                ctx,
                parsed,
                candidate(
                    json!([{"text": piece}]),
                    last.then_some(reply.finish),
                    false,
                ),
                usage(reply, i as u64 + 1),
            );
            let f = frame(parsed, &v, i == 0);
            if last {
                parts.terminal.push(f);
            } else {
                parts.events.push(f);
            }
        }
    }
    if !parsed.sse {
        parts.terminal.push(Bytes::from_static(b"]"));
    }
    parts
}

pub(crate) fn error_frame(parsed: &Parsed, first: bool) -> Bytes {
    let v = json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}});
    let mut f = frame(parsed, &v, first).to_vec();
    if !parsed.sse {
        f.push(b']');
    }
    Bytes::from(f)
}

/// Parses a `:countTokens` request: `contents` alone, or a whole `generateContentRequest`
/// (which must name its model; the two forms exclude each other).
pub(crate) fn parse_count(v: &Value, model: &str) -> Result<Parsed, ApiError> {
    let Some(request) = v.get("generateContentRequest") else {
        return parse(v, model, false, false);
    };
    if v.get("contents").is_some() {
        return Err(invalid(
            "* CountTokensRequest: contents and generate_content_request are mutually exclusive\n",
        ));
    }
    if request
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(invalid(
            "* GenerateContentRequest.model: unexpected model name format\n",
        ));
    }
    parse(request, model, false, false)
}

/// `:countTokens`.
pub(crate) fn count_tokens(prompt: &Prompt) -> Bytes {
    let n = prompt.prompt_tokens();
    Bytes::from(
        json!({"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]})
            .to_string(),
    )
}
