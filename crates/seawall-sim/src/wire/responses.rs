//! OpenAI Responses API (`POST /v1/responses`, `POST /v1/responses/input_tokens`).

use bytes::Bytes;
use serde_json::{Value, json};

use super::openai::{invalid_json, split_fragments};
use super::{ApiError, Parsed, ResponseCtx, StreamParts, content_text, filler};
use crate::config::Provider;
use crate::reply::{Finish, Prompt, Reply};

fn invalid(message: impl Into<String>, param: &str, code: &str) -> ApiError {
    let mut e = ApiError::new(400, "invalid_request_error", message);
    e.param = Some(param.to_owned());
    e.code = Some(code.to_owned());
    e
}

/// Parses a Responses request (`input` as a string or an item list).
pub(crate) fn parse(v: &Value) -> Result<Parsed, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(invalid_json(Provider::OpenAi));
    };
    let model = match obj.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => {
            return Err(invalid(
                "Missing required parameter: 'model'.",
                "model",
                "missing_required_parameter",
            ));
        }
    };
    let mut prompt = Prompt::default();
    if let Some(instructions) = obj.get("instructions").and_then(Value::as_str) {
        prompt.system = Some(instructions.to_owned());
    }
    match obj.get("input") {
        Some(Value::String(s)) => prompt.messages.push(("user".into(), s.clone())),
        Some(Value::Array(items)) => {
            for item in items {
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                match kind {
                    "function_call_output" => {
                        let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                        let answered = items.iter().any(|other| {
                            other.get("type").and_then(Value::as_str) == Some("function_call")
                                && other.get("call_id").and_then(Value::as_str) == Some(call_id)
                        });
                        if !answered && obj.get("previous_response_id").is_none() {
                            let mut e = ApiError::new(
                                400,
                                "invalid_request_error",
                                format!(
                                    "No tool call found for function call output with call_id {call_id}."
                                ),
                            );
                            e.param = Some("input".to_owned());
                            return Err(e);
                        }
                        let out = item.get("output").map(content_text).unwrap_or_default();
                        prompt.messages.push(("tool".into(), out));
                    }
                    "function_call" => {
                        let args = item.get("arguments").and_then(Value::as_str).unwrap_or("");
                        prompt.messages.push(("tool_call".into(), args.to_owned()));
                    }
                    _ => {
                        let text = item.get("content").map(content_text).unwrap_or_default();
                        match item.get("role").and_then(Value::as_str) {
                            Some("system" | "developer") => {
                                let s = prompt.system.get_or_insert_with(String::new);
                                s.push_str(&text);
                            }
                            Some("assistant") => prompt.messages.push(("assistant".into(), text)),
                            Some("user") | None => prompt.messages.push(("user".into(), text)),
                            Some(other) => {
                                return Err(invalid(
                                    format!(
                                        "Invalid value: '{other}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."
                                    ),
                                    "input[0].role",
                                    "invalid_value",
                                ));
                            }
                        }
                    }
                }
            }
        }
        _ => {
            return Err(invalid(
                "Missing required parameter: 'input'.",
                "input",
                "missing_required_parameter",
            ));
        }
    }
    let max_tokens = obj.get("max_output_tokens").and_then(Value::as_u64);
    if let Some(m) = max_tokens {
        if m < 16 {
            return Err(invalid(
                format!(
                    "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {m} instead."
                ),
                "max_output_tokens",
                "integer_below_min_value",
            ));
        }
    }
    for (i, t) in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            continue;
        }
        // Function tools are flat here; chat completions' nested `function` is refused.
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            let param = format!("tools[{i}].name");
            return Err(invalid(
                format!("Missing required parameter: '{param}'."),
                &param,
                "missing_required_parameter",
            ));
        };
        let params = t.get("parameters").cloned().unwrap_or(Value::Null);
        prompt.tools.push((name.to_owned(), params));
    }
    match obj.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => prompt.tools_disabled = true,
        Some(Value::String(s)) if s == "required" => prompt.forced_tool = Some(None),
        Some(v @ Value::Object(_)) => {
            prompt.forced_tool = Some(v.get("name").and_then(Value::as_str).map(str::to_owned));
        }
        _ => {}
    }
    Ok(Parsed {
        prompt,
        model,
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        max_tokens,
        include_usage: true,
        include_obfuscation: true,
        sse: true,
    })
}

/// The fields `POST /v1/responses/input_tokens` takes; any other is an unknown parameter.
const INPUT_TOKENS_FIELDS: [&str; 11] = [
    "conversation",
    "input",
    "instructions",
    "model",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "text",
    "tool_choice",
    "tools",
    "truncation",
];

/// Parses a `POST /v1/responses/input_tokens` request: a Responses request without the
/// fields that only shape the output (`stream`, `max_output_tokens`, sampling).
pub(crate) fn parse_input_tokens(v: &Value) -> Result<Parsed, ApiError> {
    if let Some(unknown) = v.as_object().and_then(|obj| {
        obj.keys()
            .find(|k| !INPUT_TOKENS_FIELDS.contains(&k.as_str()))
    }) {
        return Err(invalid(
            format!("Unknown parameter: '{unknown}'."),
            unknown,
            "unknown_parameter",
        ));
    }
    parse(v)
}

fn ids(ctx: &ResponseCtx) -> (String, String) {
    (
        format!("resp_{}", filler(ctx.seq ^ 0x7e5, 48)),
        format!("msg_{}", filler(ctx.seq ^ 0x3a9, 48)),
    )
}

fn usage(reply: &Reply) -> Value {
    json!({
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt_tokens + reply.completion_tokens
    })
}

fn output_item(reply: &Reply, msg_id: &str, done: bool) -> Value {
    let status = if done { "completed" } else { "in_progress" };
    match &reply.tool_call {
        Some((call_id, name, args)) => json!({
            "type": "function_call", "id": format!("fc_{}", &msg_id[4..]), "call_id": call_id,
            "name": name, "arguments": if done { args.as_str() } else { "" }, "status": status
        }),
        None => {
            let content = if done {
                json!([{"type": "output_text", "text": reply.text(), "annotations": [], "logprobs": []}])
            } else {
                json!([])
            };
            json!({"type": "message", "id": msg_id, "status": status, "role": "assistant", "content": content})
        }
    }
}

fn response_object(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply, done: bool) -> Value {
    let (resp_id, msg_id) = ids(ctx);
    let (status, incomplete) = match (done, reply.finish) {
        (false, _) => ("in_progress", Value::Null),
        (true, Finish::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        (true, Finish::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        (true, _) => ("completed", Value::Null),
    };
    json!({
        "id": resp_id, "object": "response", "created_at": ctx.created,
        "status": status, "completed_at": if done { json!(ctx.created) } else { Value::Null },
        "error": null, "incomplete_details": incomplete,
        "instructions": parsed.prompt.system, "max_output_tokens": parsed.max_tokens,
        "model": parsed.model,
        "output": if done { json!([output_item(reply, &msg_id, true)]) } else { json!([]) },
        "parallel_tool_calls": true, "previous_response_id": null, "store": true,
        "temperature": 1.0, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "usage": if done { usage(reply) } else { Value::Null }
    })
}

/// A non-streaming `response` object.
pub(crate) fn response(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> Bytes {
    Bytes::from(response_object(ctx, parsed, reply, true).to_string())
}

/// `event: <type>\ndata: {…,"sequence_number":n}\n\n`.
fn event(mut data: Value, seq: &mut u64) -> Bytes {
    data["sequence_number"] = json!(*seq);
    *seq += 1;
    let name = data["type"].as_str().unwrap_or("unknown").to_owned();
    let mut out = format!("event: {name}\ndata: ").into_bytes();
    serde_json::to_writer(&mut out, &data).unwrap_or_default();
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The typed events of a streamed response; the terminal part is `response.completed`.
pub(crate) fn stream(ctx: &ResponseCtx, parsed: &Parsed, reply: &Reply) -> StreamParts {
    let (_, msg_id) = ids(ctx);
    let mut n = 0;
    let mut parts = StreamParts::default();
    let pending = response_object(ctx, parsed, reply, false);
    parts.events.push(event(
        json!({"type": "response.created", "response": pending.clone()}),
        &mut n,
    ));
    parts.events.push(event(
        json!({"type": "response.in_progress", "response": pending}),
        &mut n,
    ));
    parts.events.push(event(
        json!({"type": "response.output_item.added", "output_index": 0, "item": output_item(reply, &msg_id, false)}),
        &mut n,
    ));
    match &reply.tool_call {
        Some((_, _, args)) => {
            let item_id = format!("fc_{}", &msg_id[4..]);
            for fragment in split_fragments(args, 4) {
                parts.events.push(event(
                    json!({
                        "type": "response.function_call_arguments.delta", "item_id": item_id,
                        "output_index": 0, "delta": fragment
                    }),
                    &mut n,
                ));
            }
            parts.events.push(event(
                json!({
                    "type": "response.function_call_arguments.done", "item_id": item_id,
                    "output_index": 0, "arguments": args
                }),
                &mut n,
            ));
        }
        None => {
            parts.events.push(event(json!({
                "type": "response.content_part.added", "item_id": msg_id, "output_index": 0,
                "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}
            }), &mut n));
            for (i, piece) in reply.pieces.iter().enumerate() {
                parts.events.push(event(
                    json!({
                        "type": "response.output_text.delta", "item_id": msg_id, "output_index": 0,
                        "content_index": 0, "delta": piece, "logprobs": [],
                        "obfuscation": filler(ctx.seq.wrapping_add(i as u64), 6)
                    }),
                    &mut n,
                ));
            }
            let text = reply.text();
            parts.events.push(event(
                json!({
                    "type": "response.output_text.done", "item_id": msg_id, "output_index": 0,
                    "content_index": 0, "text": text, "logprobs": []
                }),
                &mut n,
            ));
            parts.events.push(event(json!({
                "type": "response.content_part.done", "item_id": msg_id, "output_index": 0,
                "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}
            }), &mut n));
        }
    }
    parts.events.push(event(
        json!({"type": "response.output_item.done", "output_index": 0, "item": output_item(reply, &msg_id, true)}),
        &mut n,
    ));
    let kind = match reply.finish {
        Finish::Length | Finish::ContentFilter => "response.incomplete",
        _ => "response.completed",
    };
    parts.terminal.push(event(
        json!({"type": kind, "response": response_object(ctx, parsed, reply, true)}),
        &mut n,
    ));
    parts
}

/// The mid-stream failure as real traffic nests it: `error`, then `response.failed`.
pub(crate) fn error_frames(
    ctx: &ResponseCtx,
    parsed: &Parsed,
    reply: &Reply,
    after: usize,
) -> Bytes {
    let mut n = after as u64;
    let mut out = event(
        json!({"type": "error", "error": {
            "type": "server_error", "code": "server_error",
            "message": "The server had an error processing your request. Sorry about that!",
            "param": null
        }}),
        &mut n,
    )
    .to_vec();
    let mut failed = response_object(ctx, parsed, reply, false);
    failed["status"] = json!("failed");
    failed["error"] = json!({"code": "server_error", "message": "The server had an error processing your request. Sorry about that!"});
    out.extend_from_slice(&event(
        json!({"type": "response.failed", "response": failed}),
        &mut n,
    ));
    Bytes::from(out)
}

/// `POST /v1/responses/input_tokens`.
pub(crate) fn input_tokens(prompt: &Prompt) -> Bytes {
    Bytes::from(
        json!({"object": "response.input_tokens", "input_tokens": prompt.prompt_tokens()})
            .to_string(),
    )
}
