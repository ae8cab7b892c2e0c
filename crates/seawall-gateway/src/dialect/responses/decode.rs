//! Responses API request bodies to the unified request.
//!
//! The body is read in one pass into typed structs that keep each field as it came (see
//! [`read`](super::read)), then each field checked by hand, so that every error names the
//! parameter and reads as the real API's do (`Invalid type for 'temperature': …`,
//! `Missing required parameter: 'input[2].call_id'.`), in the same order whatever the order
//! of the body's fields.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use seawall_core::{
    ChatRequest, ContentPart, ImageDetail, ImageSource, Message, ResponseFormat, Role, ToolCall,
    ToolChoice, ToolDefinition,
};

use super::read::{Body, Content, Item, Part, Tool};
use crate::dialect::loose::{Field, Items, Kind, Obj, Scalar, TextOr};
use crate::wire::{BadRequest, Inbound};

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

fn wrong_type(param: &str, expected: &str, got: Kind) -> BadRequest {
    bad(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            got.a_type()
        ),
    )
}

fn unsupported_value(param: &str, value: &str, supported: &str) -> BadRequest {
    bad(
        param,
        format!("Invalid value: '{value}'. Supported values are: {supported}."),
    )
}

/// The name of field `name` of the object at `at` (at the top level when `at` is empty),
/// written only for an error.
fn param(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

/// A string field: `None` when absent or `null`.
fn opt_str<'a, F: Field>(
    field: Option<&'a F>,
    at: &str,
    name: &str,
) -> Result<Option<&'a str>, BadRequest> {
    match field.map(|field| (field.kind(), field)) {
        None | Some((Kind::Null, _)) => Ok(None),
        Some((Kind::String, field)) => Ok(field.as_text()),
        Some((kind, _)) => Err(wrong_type(&param(at, name), "a string", kind)),
    }
}

fn req_str<'a, F: Field>(
    field: Option<&'a F>,
    at: &str,
    name: &str,
) -> Result<&'a str, BadRequest> {
    opt_str(field, at, name)?.ok_or_else(|| missing(&param(at, name)))
}

/// [`req_str`], taken.
fn take_str(field: Option<Scalar>, at: &str, name: &str) -> Result<String, BadRequest> {
    match field {
        Some(Scalar::Str(text)) => Ok(text),
        other => req_str(other.as_ref(), at, name).map(str::to_owned),
    }
}

fn opt_bool<F: Field>(field: Option<&F>, at: &str, name: &str) -> Result<Option<bool>, BadRequest> {
    match field.map(|field| (field.kind(), field)) {
        None | Some((Kind::Null, _)) => Ok(None),
        Some((Kind::Bool, field)) => Ok(field.as_flag()),
        Some((kind, _)) => Err(wrong_type(&param(at, name), "a boolean", kind)),
    }
}

fn object<'a>(value: &'a Value, param: &str) -> Result<&'a Map<String, Value>, BadRequest> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(param, "an object", Kind::of(value)))
}

/// A sampling parameter in `[0, max]`.
fn decimal(value: Option<&Value>, name: &str, max: f64) -> Result<Option<f32>, BadRequest> {
    let value = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value,
    };
    let Some(number) = value.as_f64() else {
        return Err(wrong_type(name, "a decimal", Kind::of(value)));
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

fn max_output_tokens(value: Option<&Value>) -> Result<Option<u32>, BadRequest> {
    const NAME: &str = "max_output_tokens";
    let value = match value {
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
        (None, None) => Err(wrong_type(NAME, "an integer", Kind::of(value))),
    }
}

/// Decodes and validates a Responses API request body.
///
/// `include_usage` is always true: a Responses stream always ends with its usage.
pub(crate) fn decode_request(body: &[u8]) -> Result<Inbound, BadRequest> {
    let body: Obj<Body> = serde_json::from_slice(body).map_err(|e| BadRequest {
        param: None,
        message: format!("We could not parse the JSON body of your request: {e}"),
    })?;
    let mut fields = match body {
        Obj::Map(fields) => fields,
        Obj::Other(kind) => {
            return Err(BadRequest {
                param: None,
                message: format!(
                    "Invalid body: expected a JSON object, but got {} instead.",
                    kind.a_type()
                ),
            });
        }
    };
    let model = req_str(fields.model.as_ref(), "", "model")?;
    let mut messages = Vec::new();
    // For each message, the parameter it came from, so that a problem found later names it.
    let mut origins = Vec::new();
    // Empty instructions say nothing, and some providers refuse an empty system text.
    if let Some(instructions) = opt_str(fields.instructions.as_ref(), "", "instructions")?
        && !instructions.is_empty()
    {
        messages.push(Message::system(instructions));
        origins.push("instructions".to_owned());
    }
    match fields.input.take() {
        None | Some(TextOr::Other(Kind::Null)) => return Err(missing("input")),
        Some(TextOr::Text(text)) => {
            messages.push(Message::user(text));
            origins.push("input".to_owned());
        }
        Some(TextOr::List(items)) => {
            messages.reserve(items.len());
            for (i, item) in items.into_iter().enumerate() {
                decode_item(i, item, &mut messages, &mut origins)?;
            }
        }
        Some(TextOr::Other(kind)) => {
            return Err(wrong_type(
                "input",
                "a string or an array of input items",
                kind,
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
    request.max_output_tokens = max_output_tokens(fields.max_output_tokens.as_ref())?;
    request.temperature = decimal(fields.temperature.as_ref(), "temperature", 2.0)?;
    request.top_p = decimal(fields.top_p.as_ref(), "top_p", 1.0)?;
    request.stream = opt_bool(fields.stream.as_ref(), "", "stream")?.unwrap_or(false);
    match &fields.stream_options {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(other) => return Err(wrong_type("stream_options", "an object", Kind::of(other))),
    }
    request.user = opt_str(fields.user.as_ref(), "", "user")?.map(Arc::from);
    request.tools = match fields.tools.take() {
        None | Some(Items::Other(Kind::Null)) => Arc::new([]),
        Some(Items::List(tools)) => tools
            .into_iter()
            .enumerate()
            .map(|(i, tool)| decode_tool(i, tool))
            .collect::<Result<_, _>>()?,
        Some(Items::Other(kind)) => return Err(wrong_type("tools", "an array", kind)),
    };
    request.tool_choice = decode_tool_choice(fields.tool_choice.as_ref())?;
    request.response_format = match &fields.text {
        None | Some(Value::Null) => ResponseFormat::Text,
        Some(text) => match object(text, "text")?.get("format") {
            None | Some(Value::Null) => ResponseFormat::Text,
            Some(format) => decode_format(format)?,
        },
    };
    request.extra = Arc::new(fields.rest);
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
    item: Obj<Item>,
    messages: &mut Vec<Message>,
    origins: &mut Vec<String>,
) -> Result<(), BadRequest> {
    let at = format!("input[{i}]");
    let item = match item {
        Obj::Map(item) => item,
        Obj::Other(kind) => return Err(wrong_type(&at, "an object", kind)),
    };
    let kind = opt_str(item.kind.as_ref(), &at, "type")?.unwrap_or("message");
    match kind {
        "message" => {
            let role = match req_str(item.role.as_ref(), &at, "role")? {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" | "developer" => Role::System,
                other => {
                    return Err(unsupported_value(
                        &param(&at, "role"),
                        other,
                        "'assistant', 'system', 'developer', and 'user'",
                    ));
                }
            };
            let content = match item.content {
                None | Some(TextOr::Other(Kind::Null)) => {
                    return Err(missing(&param(&at, "content")));
                }
                Some(content) => decode_content(&at, "content", content)?,
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
                id: take_str(item.call_id, &at, "call_id")?,
                name: take_str(item.name, &at, "name")?,
                arguments: take_str(item.arguments, &at, "arguments")?,
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
            let call_id = take_str(item.call_id, &at, "call_id")?;
            let content = match item.output {
                None | Some(TextOr::Other(Kind::Null)) => {
                    return Err(missing(&param(&at, "output")));
                }
                Some(output) => decode_content(&at, "output", output)?,
            };
            messages.push(Message {
                role: Role::Tool,
                content,
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: Some(call_id),
            });
            origins.push(at);
        }
        // Hidden reasoning replayed from an earlier turn: only the model that wrote it can
        // read it, and the answer does not depend on it.
        "reasoning" => {}
        other => {
            return Err(bad(
                param(&at, "type"),
                format!(
                    "Invalid value: '{other}'. This gateway supports the input item types 'message', 'function_call', 'function_call_output' and 'reasoning'."
                ),
            ));
        }
    }
    Ok(())
}

/// Message content or a function call's output (field `name` of the item at `at`): a
/// string, or a list of parts.
fn decode_content(at: &str, name: &str, content: Content) -> Result<Vec<ContentPart>, BadRequest> {
    let parts = match content {
        TextOr::Text(text) => return Ok(vec![ContentPart::text(text)]),
        TextOr::List(parts) => parts,
        TextOr::Other(kind) => {
            return Err(wrong_type(
                &param(at, name),
                "a string or an array of content parts",
                kind,
            ));
        }
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(j, part)| {
            let at = format!("{at}.{name}[{j}]");
            let part = match part {
                Obj::Map(part) => part,
                Obj::Other(kind) => return Err(wrong_type(&at, "an object", kind)),
            };
            match req_str(part.kind.as_ref(), &at, "type")? {
                "input_text" | "output_text" => {
                    Ok(ContentPart::text(take_str(part.text, &at, "text")?))
                }
                "refusal" => Ok(ContentPart::text(take_str(part.refusal, &at, "refusal")?)),
                "input_image" => decode_image(&at, part),
                kind @ ("input_file" | "input_audio") => Err(bad(
                    param(&at, "type"),
                    format!("Content of type '{kind}' is not supported by this gateway."),
                )),
                other => Err(unsupported_value(
                    &param(&at, "type"),
                    other,
                    "'input_text', 'input_image', 'output_text', and 'refusal'",
                )),
            }
        })
        .collect()
}

fn decode_image(at: &str, part: Part) -> Result<ContentPart, BadRequest> {
    let Some(url) = opt_str(part.image_url.as_ref(), at, "image_url")? else {
        if part
            .file_id
            .as_ref()
            .is_some_and(|id| id.kind() != Kind::Null)
        {
            return Err(bad(
                param(at, "file_id"),
                "Images by 'file_id' are not supported by this gateway: send 'image_url' (an https: or data: URL).",
            ));
        }
        return Err(missing(&param(at, "image_url")));
    };
    let detail = match opt_str(part.detail.as_ref(), at, "detail")? {
        None => None,
        Some("auto") => Some(ImageDetail::Auto),
        Some("low") => Some(ImageDetail::Low),
        // `original` asks for at least high detail; the unified model knows no more.
        Some("high" | "original") => Some(ImageDetail::High),
        Some(other) => {
            return Err(unsupported_value(
                &param(at, "detail"),
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
fn decode_tool(i: usize, tool: Obj<Tool>) -> Result<ToolDefinition, BadRequest> {
    let at = format!("tools[{i}]");
    let tool = match tool {
        Obj::Map(tool) => tool,
        Obj::Other(kind) => return Err(wrong_type(&at, "an object", kind)),
    };
    match req_str(tool.kind.as_ref(), &at, "type")? {
        "function" => {}
        other => {
            return Err(bad(
                param(&at, "type"),
                format!(
                    "Tools of type '{other}' are not supported by this gateway: only 'function' tools are."
                ),
            ));
        }
    }
    let name = take_str(tool.name, &at, "name")?;
    let description = opt_str(tool.description.as_ref(), &at, "description")?;
    let parameters = match tool.parameters {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema,
        Some(other) => {
            return Err(wrong_type(
                &param(&at, "parameters"),
                "an object",
                Kind::of(&other),
            ));
        }
    };
    // `strict` is checked but not kept: the unified tool has no place for it.
    opt_bool(tool.strict.as_ref(), &at, "strict")?;
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
        Some(Value::Object(fields)) => match req_str(fields.get("type"), PARAM, "type")? {
            "function" => Ok(Some(ToolChoice::Tool(
                req_str(fields.get("name"), PARAM, "name")?.to_owned(),
            ))),
            other => Err(bad(
                "tool_choice.type",
                format!(
                    "Tool choice of type '{other}' is not supported by this gateway: only 'function' is."
                ),
            )),
        },
        Some(other) => Err(wrong_type(PARAM, "a string or an object", Kind::of(other))),
    }
}

/// `text.format`: the flat shape, `{type: "json_schema", name, schema, strict}`.
fn decode_format(format: &Value) -> Result<ResponseFormat, BadRequest> {
    let fields = object(format, "text.format")?;
    match req_str(fields.get("type"), "text.format", "type")? {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let name = req_str(fields.get("name"), "text.format", "name")?;
            let schema = match fields.get("schema") {
                None | Some(Value::Null) => return Err(missing("text.format.schema")),
                Some(schema @ Value::Object(_)) => schema.clone(),
                Some(other) => {
                    return Err(wrong_type(
                        "text.format.schema",
                        "an object",
                        Kind::of(other),
                    ));
                }
            };
            Ok(ResponseFormat::JsonSchema {
                name: name.to_owned(),
                schema,
                strict: opt_bool(fields.get("strict"), "text.format", "strict")?.unwrap_or(false),
            })
        }
        other => Err(unsupported_value(
            "text.format.type",
            other,
            "'text', 'json_object', and 'json_schema'",
        )),
    }
}
