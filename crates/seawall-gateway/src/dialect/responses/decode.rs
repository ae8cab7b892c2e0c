//! Responses API request bodies to the unified request.
//!
//! The body is read as a JSON value and each field checked by hand, so that every error
//! names the parameter and reads as the real API's do (`Invalid type for 'temperature': …`,
//! `Missing required parameter: 'input[2].call_id'.`).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use seawall_core::{
    ChatRequest, ContentPart, ImageDetail, ImageSource, Message, ResponseFormat, Role, ToolCall,
    ToolChoice, ToolDefinition,
};

use crate::wire::{BadRequest, Inbound};

/// The top-level fields decoded here; every other field passes through in `request.extra`.
const MODELLED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    // Only `include_obfuscation`, which the gateway's own events never need.
    "stream_options",
    // Only `text.format` is modelled; `text.verbosity` has no place in the unified request.
    "text",
    "user",
];

/// The smallest `max_output_tokens` the real API accepts.
const MIN_OUTPUT_TOKENS: u64 = 16;

fn bad(param: impl Into<String>, message: impl Into<String>) -> BadRequest {
    BadRequest {
        param: Some(param.into()),
        message: message.into(),
    }
}

fn missing(param: &str) -> BadRequest {
    bad(param, format!("Missing required parameter: '{param}'."))
}

fn a_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> BadRequest {
    bad(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            a_type(got)
        ),
    )
}

fn unsupported_value(param: &str, value: &str, supported: &str) -> BadRequest {
    bad(
        param,
        format!("Invalid value: '{value}'. Supported values are: {supported}."),
    )
}

/// `fields[name]` as a string: `None` when absent or `null`.
fn opt_str<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
    param: &str,
) -> Result<Option<&'a str>, BadRequest> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(param, "a string", other)),
    }
}

fn req_str<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
    param: &str,
) -> Result<&'a str, BadRequest> {
    opt_str(fields, name, param)?.ok_or_else(|| missing(param))
}

fn opt_bool(
    fields: &Map<String, Value>,
    name: &str,
    param: &str,
) -> Result<Option<bool>, BadRequest> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(param, "a boolean", other)),
    }
}

fn object<'a>(value: &'a Value, param: &str) -> Result<&'a Map<String, Value>, BadRequest> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(param, "an object", value))
}

/// A sampling parameter in `[0, max]`.
fn decimal(fields: &Map<String, Value>, name: &str, max: f64) -> Result<Option<f32>, BadRequest> {
    let value = match fields.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value,
    };
    let Some(number) = value.as_f64() else {
        return Err(wrong_type(name, "a decimal", value));
    };
    if number < 0.0 {
        return Err(bad(
            name,
            format!(
                "Invalid '{name}': decimal below minimum value. Expected a value >= 0, but got {value} instead."
            ),
        ));
    }
    if number > max {
        return Err(bad(
            name,
            format!(
                "Invalid '{name}': decimal above maximum value. Expected a value <= {max}, but got {value} instead."
            ),
        ));
    }
    // In range, so the narrowing keeps the value to within f32 precision.
    #[allow(clippy::cast_possible_truncation)]
    Ok(Some(number as f32))
}

fn max_output_tokens(fields: &Map<String, Value>) -> Result<Option<u32>, BadRequest> {
    const NAME: &str = "max_output_tokens";
    let value = match fields.get(NAME) {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value,
    };
    let below = || {
        bad(
            NAME,
            format!(
                "Invalid '{NAME}': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, but got {value} instead."
            ),
        )
    };
    match (value.as_u64(), value.as_i64()) {
        (Some(n), _) if n < MIN_OUTPUT_TOKENS => Err(below()),
        (Some(n), _) => u32::try_from(n).map(Some).map_err(|_| {
            bad(
                NAME,
                format!("Invalid '{NAME}': integer above maximum value. Expected a value <= {}, but got {value} instead.", u32::MAX),
            )
        }),
        (None, Some(_)) => Err(below()),
        (None, None) => Err(wrong_type(NAME, "an integer", value)),
    }
}

/// Decodes and validates a Responses API request body.
///
/// `include_usage` is always true: a Responses stream always ends with its usage.
pub(crate) fn decode_request(body: &[u8]) -> Result<Inbound, BadRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|e| BadRequest {
        param: None,
        message: format!("We could not parse the JSON body of your request: {e}"),
    })?;
    let Value::Object(fields) = value else {
        return Err(BadRequest {
            param: None,
            message: format!(
                "Invalid body: expected a JSON object, but got {} instead.",
                a_type(&value)
            ),
        });
    };
    let model = req_str(&fields, "model", "model")?;
    let mut messages = Vec::new();
    // For each message, the parameter it came from, so that a problem found later names it.
    let mut origins = Vec::new();
    // Empty instructions say nothing, and some providers refuse an empty system text.
    if let Some(instructions) = opt_str(&fields, "instructions", "instructions")?
        && !instructions.is_empty()
    {
        messages.push(Message::system(instructions));
        origins.push("instructions".to_owned());
    }
    match fields.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(text)) => {
            messages.push(Message::user(text.as_str()));
            origins.push("input".to_owned());
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                decode_item(i, item, &mut messages, &mut origins)?;
            }
        }
        Some(other) => {
            return Err(wrong_type(
                "input",
                "a string or an array of input items",
                other,
            ));
        }
    }
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(bad(
            "input",
            "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }

    let mut request = ChatRequest::new(model, messages);
    request.max_output_tokens = max_output_tokens(&fields)?;
    request.temperature = decimal(&fields, "temperature", 2.0)?;
    request.top_p = decimal(&fields, "top_p", 1.0)?;
    request.stream = opt_bool(&fields, "stream", "stream")?.unwrap_or(false);
    match fields.get("stream_options") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(other) => return Err(wrong_type("stream_options", "an object", other)),
    }
    request.user = opt_str(&fields, "user", "user")?.map(Arc::from);
    request.tools = match fields.get("tools") {
        None | Some(Value::Null) => Arc::new([]),
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, tool)| decode_tool(i, tool))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    };
    request.tool_choice = decode_tool_choice(fields.get("tool_choice"))?;
    request.response_format = match fields.get("text") {
        None | Some(Value::Null) => ResponseFormat::Text,
        Some(text) => match object(text, "text")?.get("format") {
            None | Some(Value::Null) => ResponseFormat::Text,
            Some(format) => decode_format(format)?,
        },
    };
    let extra: Map<String, Value> = fields
        .into_iter()
        .filter(|(name, _)| !MODELLED.contains(&name.as_str()))
        .collect();
    request.extra = Arc::new(extra);
    request.extra_for = Some(seawall_core::ProviderKind::OpenAiResponses);

    request.validate().map_err(|invalid| {
        // What `validate` finds in a message is named after the item it came from.
        let param = match invalid.field.strip_prefix("messages[") {
            Some(rest) => rest
                .split_once(']')
                .and_then(|(index, _)| index.parse::<usize>().ok())
                .and_then(|index| origins.get(index).cloned())
                .unwrap_or_else(|| "input".to_owned()),
            None if invalid.field == "messages" => "input".to_owned(),
            None => invalid.field.clone(),
        };
        bad(
            param.clone(),
            format!("Invalid '{param}': {}", invalid.problem),
        )
    })?;
    Ok(Inbound {
        request,
        include_usage: true,
    })
}

/// One input item: a message, a function call (joined to the assistant message before it),
/// or a function call's output.
fn decode_item(
    i: usize,
    item: &Value,
    messages: &mut Vec<Message>,
    origins: &mut Vec<String>,
) -> Result<(), BadRequest> {
    let at = format!("input[{i}]");
    let fields = object(item, &at)?;
    let kind = opt_str(fields, "type", &format!("{at}.type"))?.unwrap_or("message");
    match kind {
        "message" => {
            let role = match req_str(fields, "role", &format!("{at}.role"))? {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" | "developer" => Role::System,
                other => {
                    return Err(unsupported_value(
                        &format!("{at}.role"),
                        other,
                        "'assistant', 'system', 'developer', and 'user'",
                    ));
                }
            };
            let content = match fields.get("content") {
                None | Some(Value::Null) => return Err(missing(&format!("{at}.content"))),
                Some(content) => decode_content(&format!("{at}.content"), content)?,
            };
            messages.push(Message {
                role,
                content,
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: None,
            });
            origins.push(at);
        }
        "function_call" => {
            let call = ToolCall {
                id: req_str(fields, "call_id", &format!("{at}.call_id"))?.to_owned(),
                name: req_str(fields, "name", &format!("{at}.name"))?.to_owned(),
                arguments: req_str(fields, "arguments", &format!("{at}.arguments"))?.to_owned(),
            };
            // Calls made in one turn belong to the assistant message of that turn: providers
            // that take tool calls as content blocks need them together.
            match messages.last_mut() {
                Some(last) if last.role == Role::Assistant => {
                    last.content.retain(
                        |part| !matches!(part, ContentPart::Text { text, .. } if text.is_empty()),
                    );
                    last.tool_calls.push(call);
                }
                _ => {
                    messages.push(Message::assistant_tool_calls([call]));
                    origins.push(at);
                }
            }
        }
        "function_call_output" => {
            let call_id = req_str(fields, "call_id", &format!("{at}.call_id"))?;
            let content = match fields.get("output") {
                None | Some(Value::Null) => return Err(missing(&format!("{at}.output"))),
                Some(output) => decode_content(&format!("{at}.output"), output)?,
            };
            messages.push(Message {
                role: Role::Tool,
                content,
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: Some(call_id.to_owned()),
            });
            origins.push(at);
        }
        // Hidden reasoning replayed from an earlier turn: only the model that wrote it can
        // read it, and the answer does not depend on it.
        "reasoning" => {}
        other => {
            return Err(bad(
                format!("{at}.type"),
                format!(
                    "Invalid value: '{other}'. This gateway supports the input item types 'message', 'function_call', 'function_call_output' and 'reasoning'."
                ),
            ));
        }
    }
    Ok(())
}

/// Message content or a function call's output: a string, or a list of parts.
fn decode_content(at: &str, content: &Value) -> Result<Vec<ContentPart>, BadRequest> {
    let parts = match content {
        Value::String(text) => return Ok(vec![ContentPart::text(text.as_str())]),
        Value::Array(parts) => parts,
        other => {
            return Err(wrong_type(
                at,
                "a string or an array of content parts",
                other,
            ));
        }
    };
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let at = format!("{at}[{j}]");
            let fields = object(part, &at)?;
            match req_str(fields, "type", &format!("{at}.type"))? {
                "input_text" | "output_text" => Ok(ContentPart::text(req_str(
                    fields,
                    "text",
                    &format!("{at}.text"),
                )?)),
                "refusal" => Ok(ContentPart::text(req_str(
                    fields,
                    "refusal",
                    &format!("{at}.refusal"),
                )?)),
                "input_image" => decode_image(&at, fields),
                kind @ ("input_file" | "input_audio") => Err(bad(
                    format!("{at}.type"),
                    format!("Content of type '{kind}' is not supported by this gateway."),
                )),
                other => Err(unsupported_value(
                    &format!("{at}.type"),
                    other,
                    "'input_text', 'input_image', 'output_text', and 'refusal'",
                )),
            }
        })
        .collect()
}

fn decode_image(at: &str, fields: &Map<String, Value>) -> Result<ContentPart, BadRequest> {
    let url_param = format!("{at}.image_url");
    let Some(url) = opt_str(fields, "image_url", &url_param)? else {
        if fields.get("file_id").is_some_and(|id| !id.is_null()) {
            return Err(bad(
                format!("{at}.file_id"),
                "Images by 'file_id' are not supported by this gateway: send 'image_url' (an https: or data: URL).",
            ));
        }
        return Err(missing(&url_param));
    };
    let detail = match opt_str(fields, "detail", &format!("{at}.detail"))? {
        None => None,
        Some("auto") => Some(ImageDetail::Auto),
        Some("low") => Some(ImageDetail::Low),
        // `original` asks for at least high detail; the unified model knows no more.
        Some("high" | "original") => Some(ImageDetail::High),
        Some(other) => {
            return Err(unsupported_value(
                &format!("{at}.detail"),
                other,
                "'low', 'high', 'original', and 'auto'",
            ));
        }
    };
    Ok(ContentPart::Image {
        source: ImageSource::Url {
            url: url.to_owned(),
        },
        detail,
        cache_control: None,
    })
}

/// A tool: only `function` tools, in the Responses API's flat shape.
fn decode_tool(i: usize, tool: &Value) -> Result<ToolDefinition, BadRequest> {
    let at = format!("tools[{i}]");
    let fields = object(tool, &at)?;
    match req_str(fields, "type", &format!("{at}.type"))? {
        "function" => {}
        other => {
            return Err(bad(
                format!("{at}.type"),
                format!(
                    "Tools of type '{other}' are not supported by this gateway: only 'function' tools are."
                ),
            ));
        }
    }
    let name = req_str(fields, "name", &format!("{at}.name"))?;
    let description = opt_str(fields, "description", &format!("{at}.description"))?;
    let parameters = match fields.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema.clone(),
        Some(other) => return Err(wrong_type(&format!("{at}.parameters"), "an object", other)),
    };
    // `strict` is checked but not kept: the unified tool has no place for it.
    opt_bool(fields, "strict", &format!("{at}.strict"))?;
    let mut tool = ToolDefinition::new(name, "", parameters);
    tool.description = description.map(str::to_owned);
    Ok(tool)
}

fn decode_tool_choice(choice: Option<&Value>) -> Result<Option<ToolChoice>, BadRequest> {
    const PARAM: &str = "tool_choice";
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(unsupported_value(
                PARAM,
                other,
                "'none', 'auto', and 'required'",
            )),
        },
        Some(Value::Object(fields)) => match req_str(fields, "type", "tool_choice.type")? {
            "function" => Ok(Some(ToolChoice::Tool(
                req_str(fields, "name", "tool_choice.name")?.to_owned(),
            ))),
            other => Err(bad(
                "tool_choice.type",
                format!(
                    "Tool choice of type '{other}' is not supported by this gateway: only 'function' is."
                ),
            )),
        },
        Some(other) => Err(wrong_type(PARAM, "a string or an object", other)),
    }
}

/// `text.format`: the flat shape, `{type: "json_schema", name, schema, strict}`.
fn decode_format(format: &Value) -> Result<ResponseFormat, BadRequest> {
    let fields = object(format, "text.format")?;
    match req_str(fields, "type", "text.format.type")? {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let name = req_str(fields, "name", "text.format.name")?;
            let schema = match fields.get("schema") {
                None | Some(Value::Null) => return Err(missing("text.format.schema")),
                Some(schema @ Value::Object(_)) => schema.clone(),
                Some(other) => return Err(wrong_type("text.format.schema", "an object", other)),
            };
            Ok(ResponseFormat::JsonSchema {
                name: name.to_owned(),
                schema,
                strict: opt_bool(fields, "strict", "text.format.strict")?.unwrap_or(false),
            })
        }
        other => Err(unsupported_value(
            "text.format.type",
            other,
            "'text', 'json_object', and 'json_schema'",
        )),
    }
}
