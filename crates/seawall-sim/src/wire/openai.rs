//! OpenAI Chat Completions and the OpenAI-compatible local servers (Ollama, vLLM, llama.cpp).

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiError, Parsed, ResponseCtx, StreamParts, content_text, filler};
use crate::config::Provider;
use crate::reply::{Finish, Prompt, Reply};

/// Default error for a status, per wire profile.
pub(crate) fn default_error(provider: Provider, status: u16) -> ApiError {
    match provider {
        Provider::Vllm => {
            let ty = match status {
                400 => "BadRequestError",
                404 => "NotFoundError",
                501 => "NotImplementedError",
                503 => "ServiceUnavailableError",
                s if s >= 500 => "InternalServerError",
                _ => "BadRequestError",
            };
            ApiError::new(status, ty, vllm_message(status))
        }
        Provider::LlamaCpp => {
            let (ty, msg) = match status {
                400 => ("invalid_request_error", "Invalid request"),
                401 => ("authentication_error", "Invalid API Key"),
                403 => ("permission_error", "Forbidden"),
                404 => ("not_found_error", "File Not Found"),
                501 => ("not_supported_error", "Not supported"),
                503 => ("unavailable_error", "Loading model"),
                _ => ("server_error", "Internal server error"),
            };
            ApiError::new(status, ty, msg)
        }
        Provider::Ollama => {
            let ty = match status {
                400 => "invalid_request_error",
                404 => "not_found_error",
                _ => "api_error",
            };
            let msg = match status {
                404 => "model not found, try pulling it first",
                503 => "server busy, please try again.  maximum pending requests exceeded",
                _ => "an error occurred",
            };
            ApiError::new(status, ty, msg)
        }
        _ => match status {
            400 => ApiError::new(400, "invalid_request_error", "Invalid request."),
            401 => ApiError::new(
                401,
                "invalid_request_error",
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            )
            .code("invalid_api_key"),
            403 => ApiError::new(
                403,
                "request_forbidden",
                "Country, region, or territory not supported",
            )
            .code("unsupported_country_region_territory"),
            404 => ApiError::new(
                404,
                "invalid_request_error",
                "The model does not exist or you do not have access to it.",
            )
            .code("model_not_found"),
            408 => ApiError::new(408, "timeout_error", "Request timed out."),
            409 => ApiError::new(409, "conflict_error", "Conflict."),
            422 => ApiError::new(422, "invalid_request_error", "Unprocessable entity."),
            429 => ApiError::new(
                429,
                "requests",
                "Rate limit reached for requests. Please try again later.",
            )
            .code("rate_limit_exceeded"),
            503 => ApiError::new(
                503,
                "service_unavailable_error",
                "The server is overloaded or not ready yet.",
            )
            .code("server_is_overloaded"),
            s if s >= 500 => ApiError::new(
                s,
                "server_error",
                "The server had an error while processing your request. Sorry about that!",
            ),
            s => ApiError::new(s, "invalid_request_error", "Request failed."),
        },
    }
}

fn vllm_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        404 => "The model does not exist.",
        503 => "Service is unavailable",
        _ => "Internal server error",
    }
}

/// Serializes `{"error":{…}}` in the profile's shape.
pub(crate) fn error_body(provider: Provider, err: &ApiError) -> Bytes {
    let mut obj = serde_json::Map::new();
    match provider {
        Provider::LlamaCpp => {
            obj.insert("code".into(), json!(err.status));
            obj.insert("message".into(), json!(err.message));
            obj.insert("type".into(), json!(err.error_type));
        }
        Provider::Vllm => {
            obj.insert("message".into(), json!(err.message));
            obj.insert("type".into(), json!(err.error_type));
            obj.insert("param".into(), json!(err.param));
            obj.insert("code".into(), json!(err.status));
        }
        _ => {
            obj.insert("message".into(), json!(err.message));
            obj.insert("type".into(), json!(err.error_type));
            obj.insert("param".into(), json!(err.param));
            obj.insert("code".into(), json!(err.code));
        }
    }
    for (k, v) in &err.extra {
        obj.insert((*k).into(), v.clone());
    }
    Bytes::from(json!({ "error": obj }).to_string())
}

/// The error for a body that is not JSON.
pub(crate) fn invalid_json(provider: Provider) -> ApiError {
    match provider {
        Provider::OpenAi => ApiError::new(
            400,
            "invalid_request_error",
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
        ),
        _ => {
            let mut e = default_error(provider, 400);
            e.message = "invalid JSON body".into();
            e
        }
    }
}

fn is_reasoning_model(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| model.starts_with(p))
}

fn bad_request(provider: Provider, message: String, param: Option<&str>, code: &str) -> ApiError {
    let mut e = default_error(provider, 400);
    e.message = message;
    e.param = param.map(str::to_owned);
    if provider == Provider::OpenAi {
        e.code = Some(code.to_owned());
    }
    e
}

/// Parses and validates a Chat Completions request.
pub(crate) fn parse(provider: Provider, v: &Value) -> Result<Parsed, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(invalid_json(provider));
    };
    let model = match obj.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => {
            return Err(bad_request(
                provider,
                "you must provide a model parameter".into(),
                None,
                "missing_required_parameter",
            ));
        }
    };
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return Err(bad_request(
            provider,
            "Missing required parameter: 'messages'.".into(),
            Some("messages"),
            "missing_required_parameter",
        ));
    };
    if messages.is_empty() {
        let msg = if provider == Provider::Ollama {
            "[] is too short - 'messages'".to_owned()
        } else {
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".to_owned()
        };
        return Err(bad_request(provider, msg, Some("messages"), "empty_array"));
    }
    let mut prompt = Prompt::default();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let text = m.get("content").map(content_text).unwrap_or_default();
        match role {
            "system" | "developer" => {
                let system = prompt.system.get_or_insert_with(String::new);
                if !system.is_empty() {
                    system.push('\n');
                }
                system.push_str(&text);
            }
            "user" => prompt.messages.push(("user".into(), text)),
            "assistant" => {
                let calls = m.get("tool_calls").and_then(Value::as_array);
                if calls.is_some_and(|c| !c.is_empty()) {
                    let names: String = calls
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str))
                        .collect();
                    prompt
                        .messages
                        .push(("tool_call".into(), format!("{text}{names}")));
                } else {
                    prompt.messages.push(("assistant".into(), text));
                }
            }
            "tool" | "function" => prompt.messages.push(("tool".into(), text)),
            other => {
                return Err(bad_request(
                    provider,
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
                    ),
                    Some(&format!("messages[{i}].role")),
                    "invalid_value",
                ));
            }
        }
    }
    if let Some(t) = obj.get("temperature").and_then(Value::as_f64) {
        if t < 0.0 {
            return Err(bad_request(
                provider,
                format!(
                    "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got {t} instead."
                ),
                Some("temperature"),
                "decimal_below_min_value",
            ));
        }
        if t > 2.0 {
            return Err(bad_request(
                provider,
                format!(
                    "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {t} instead."
                ),
                Some("temperature"),
                "decimal_above_max_value",
            ));
        }
    }
    let max_tokens_field = obj.get("max_tokens").and_then(Value::as_u64);
    let max_completion = obj.get("max_completion_tokens").and_then(Value::as_u64);
    if provider == Provider::OpenAi && max_tokens_field.is_some() && is_reasoning_model(&model) {
        return Err(bad_request(
            provider,
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.".into(),
            Some("max_tokens"),
            "unsupported_parameter",
        ));
    }
    let max_tokens = match provider {
        // Ollama has no `max_completion_tokens` field: Go's decoder drops it silently.
        Provider::Ollama => max_tokens_field,
        Provider::LlamaCpp => max_tokens_field
            .or(max_completion)
            .or_else(|| obj.get("n_predict").and_then(Value::as_u64)),
        _ => max_completion.or(max_tokens_field),
    };
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let options = obj.get("stream_options");
    let include_usage = match options.and_then(|o| o.get("include_usage")) {
        Some(v) => v.as_bool().unwrap_or(false),
        // vLLM defaults `include_usage` to true once `stream_options` is present.
        None => provider == Provider::Vllm && options.is_some_and(Value::is_object),
    };
    let include_obfuscation = provider == Provider::OpenAi
        && options
            .and_then(|o| o.get("include_obfuscation"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        for t in tools {
            if let Some(name) = t.pointer("/function/name").and_then(Value::as_str) {
                let params = t
                    .pointer("/function/parameters")
                    .cloned()
                    .unwrap_or(Value::Null);
                prompt.tools.push((name.to_owned(), params));
            }
        }
    }
    match obj.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => prompt.tools_disabled = true,
        Some(Value::String(s)) if s == "required" => prompt.forced_tool = Some(None),
        Some(v @ Value::Object(_)) => {
            prompt.forced_tool = Some(
                v.pointer("/function/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
        }
        _ => {}
    }
    Ok(Parsed {
        prompt,
        model,
        stream,
        max_tokens,
        include_usage,
        include_obfuscation,
        sse: true,
    })
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCall => "tool_calls",
        Finish::ContentFilter => "content_filter",
    }
}

fn completion_id(ctx: &ResponseCtx) -> String {
    match ctx.provider {
        Provider::Ollama => format!("chatcmpl-{}", ctx.seq % 999),
        _ => format!("chatcmpl-{}", filler(ctx.seq ^ 0x5eed, 29)),
    }
}

fn usage(provider: Provider, reply: &Reply) -> Value {
    let total = reply.prompt_tokens + reply.completion_tokens;
    match provider {
        Provider::OpenAi => json!({
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
            }
        }),
        _ => json!({
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": total
        }),
    }
}

fn fingerprint(provider: Provider) -> Value {
    match provider {
        Provider::OpenAi => json!("fp_5e1ad7c3b2"),
        Provider::Ollama => json!("fp_ollama"),
        _ => Value::Null,
    }
}

fn timings(reply: &Reply) -> Value {
    json!({
        "prompt_n": reply.prompt_tokens, "prompt_ms": 1.0, "prompt_per_token_ms": 1.0,
        "prompt_per_second": 1000.0, "predicted_n": reply.completion_tokens,
        "predicted_ms": 1.0, "predicted_per_token_ms": 1.0, "predicted_per_second": 1000.0,
        "cache_n": 0
    })
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
    system_fingerprint: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timings: Option<Value>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: (),
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

fn typed_usage(provider: Provider, reply: &Reply) -> Usage {
    let full = provider == Provider::OpenAi;
    Usage {
        prompt_tokens: reply.prompt_tokens,
        completion_tokens: reply.completion_tokens,
        total_tokens: reply.prompt_tokens + reply.completion_tokens,
        prompt_tokens_details: full.then_some(PromptDetails {
            cached_tokens: 0,
            audio_tokens: 0,
        }),
        completion_tokens_details: full.then_some(CompletionDetails {
            reasoning_tokens: 0,
            audio_tokens: 0,
            accepted_prediction_tokens: 0,
            rejected_prediction_tokens: 0,
        }),
    }
}

/// A non-streaming `chat.completion` body (serialized from borrowed structs: this is the
/// simulator's hottest path).
pub(crate) fn completion(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> Bytes {
    let id = completion_id(ctx);
    let text = reply.text();
    let (content, tool_calls) = match &reply.tool_call {
        Some((call_id, name, args)) => (
            None,
            Some([ToolCall {
                id: call_id,
                kind: "function",
                function: FunctionCall {
                    name,
                    arguments: args,
                },
            }]),
        ),
        None => (Some(text.as_str()), None),
    };
    let body = Completion {
        id: &id,
        object: "chat.completion",
        created: ctx.created,
        model: &parsed.model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content,
                refusal: (),
                annotations: [],
                tool_calls,
            },
            logprobs: (),
            finish_reason: finish_reason(reply.finish),
        }],
        usage: typed_usage(ctx.provider, reply),
        system_fingerprint: fingerprint(ctx.provider)
            .as_str()
            .map(|_| match ctx.provider {
                Provider::OpenAi => "fp_5e1ad7c3b2",
                _ => "fp_ollama",
            }),
        service_tier: (ctx.provider == Provider::OpenAi).then_some("default"),
        timings: (ctx.provider == Provider::LlamaCpp).then(|| timings(reply)),
    };
    let mut out = Vec::with_capacity(640);
    serde_json::to_writer(&mut out, &body).unwrap_or_default();
    Bytes::from(out)
}

/// The SSE events of a streamed completion.
pub(crate) fn stream(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> StreamParts {
    let id = completion_id(ctx);
    let mut n = 0u64;
    let chunk = |delta: Value, finish: Value, n: &mut u64| -> Bytes {
        *n += 1;
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": ctx.created,
            "model": parsed.model,
            "system_fingerprint": fingerprint(ctx.provider),
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if ctx.provider == Provider::OpenAi {
            c["service_tier"] = json!("default");
        }
        if ctx.azure {
            c["choices"][0]["content_filter_results"] = json!({});
        }
        if parsed.include_usage {
            c["usage"] = Value::Null;
        }
        if parsed.include_obfuscation {
            c["obfuscation"] = json!(filler(ctx.seq.wrapping_mul(31).wrapping_add(*n), 8));
        }
        sse_data(&c)
    };
    let mut parts = StreamParts::default();
    if ctx.azure {
        parts.events.push(azure_prompt_filter_chunk());
    }
    match &reply.tool_call {
        Some((call_id, name, args)) => {
            parts.events.push(chunk(
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                ]}),
                Value::Null,
                &mut n,
            ));
            for fragment in split_fragments(args, 4) {
                parts.events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}),
                    Value::Null,
                    &mut n,
                ));
            }
        }
        None => {
            parts.events.push(chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
                &mut n,
            ));
            for piece in &reply.pieces {
                parts
                    .events
                    .push(chunk(json!({"content": piece}), Value::Null, &mut n));
            }
        }
    }
    let mut finish = chunk(json!({}), json!(finish_reason(reply.finish)), &mut n);
    if ctx.provider == Provider::LlamaCpp {
        let mut v: Value = serde_json::from_slice(&finish[6..finish.len() - 2]).unwrap_or_default();
        v["timings"] = timings(reply);
        finish = sse_data(&v);
    }
    parts.terminal.push(finish);
    if parsed.include_usage {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": ctx.created,
            "model": parsed.model, "system_fingerprint": fingerprint(ctx.provider),
            "choices": [], "usage": usage(ctx.provider, reply),
        });
        if ctx.provider == Provider::OpenAi {
            c["service_tier"] = json!("default");
        }
        if parsed.include_obfuscation {
            c["obfuscation"] = json!(filler(ctx.seq ^ 0xfeed, 8));
        }
        parts.terminal.push(sse_data(&c));
    }
    parts.terminal.push(Bytes::from_static(b"data: [DONE]\n\n"));
    parts
}

/// Azure OpenAI's first stream chunk: the prompt filter's verdict, with an empty `id`,
/// `model` and `choices`.
fn azure_prompt_filter_chunk() -> Bytes {
    let safe = json!({"filtered": false, "severity": "safe"});
    sse_data(&json!({
        "choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
            "hate": safe, "jailbreak": {"filtered": false, "detected": false},
            "self_harm": safe, "sexual": safe, "violence": safe,
        }}],
    }))
}

/// Splits a string into about `n` fragments on char boundaries.
pub(crate) fn split_fragments(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// `data: <json>\n\n`.
pub(crate) fn sse_data(v: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut out, v).unwrap_or_default();
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The mid-stream error frame.
pub(crate) fn error_frame(provider: Provider) -> Bytes {
    let err = ApiError::new(
        500,
        "server_error",
        "The server had an error processing your request. Sorry about that! You can retry your request, or contact us through our help center at help.openai.com if you keep seeing this error.",
    );
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&error_body(provider, &err));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `GET /v1/models`.
pub(crate) fn models(provider: Provider) -> Bytes {
    let ids: &[&str] = match provider {
        Provider::OpenAi => &["gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini", "gpt-5"],
        Provider::Ollama => &["llama3.2:latest"],
        Provider::Vllm => &["meta-llama/Llama-3.1-8B-Instruct"],
        _ => &["default"],
    };
    let owner = match provider {
        Provider::OpenAi => "system",
        Provider::Ollama => "library",
        Provider::Vllm => "vllm",
        _ => "llamacpp",
    };
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_686_935_002, "owned_by": owner}))
        .collect();
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}
