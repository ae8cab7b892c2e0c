//! Request bodies: `POST /v1/messages` and `POST /v1/messages/count_tokens`.
//!
//! The body is read in one pass into typed structs that keep each field as it came (see
//! [`read`]), then checked field by field, so that every error names the parameter the way
//! the real API does (`messages.1.content.0.tool_use.input: ...`), in the same order
//! whatever the order of the body's fields.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use seawall_core::{
    CacheControl, ChatRequest, ContentPart, Message, Role, ToolChoice, ToolDefinition,
};

use crate::dialect::loose::{Items, Kind, Obj, Scalar, TextOr};
use crate::wire::{BadRequest, Inbound};

/// The top-level fields decoded here (each a field of [`Body`]); every other field passes
/// through in `extra`.
const MODELLED: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "stop_sequences",
    "stream",
    "metadata",
];

/// The media types Anthropic takes for a base64 image.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The most messages one request may hold (the API's documented limit).
const MAX_MESSAGES: usize = 100_000;

/// An error about `param`, with the message starting with its name as Anthropic's do.
fn bad(param: impl Into<String>, problem: impl AsRef<str>) -> BadRequest {
    let param = param.into();
    BadRequest {
        message: format!("{param}: {}", problem.as_ref()),
        param: Some(param),
    }
}

fn required(param: impl Into<String>) -> BadRequest {
    bad(param, "Field required")
}

/// Decodes and validates a Messages request body.
///
/// `max_tokens` is required, as the real API requires it. Streams always report usage.
pub(crate) fn decode_request(body: &[u8]) -> Result<Inbound, BadRequest> {
    let request = decode(body, true)?;
    Ok(Inbound {
        request,
        include_usage: true,
    })
}

/// Decodes a `count_tokens` body: a Messages body without the need for `max_tokens`
/// (and whose `stream` means nothing).
pub(crate) fn decode_count_request(body: &[u8]) -> Result<ChatRequest, BadRequest> {
    let mut request = decode(body, false)?;
    request.stream = false;
    Ok(request)
}

fn decode(body: &[u8], max_tokens_required: bool) -> Result<ChatRequest, BadRequest> {
    let body: Obj<Body> = serde_json::from_slice(body).map_err(|e| BadRequest {
        param: None,
        message: format!("the request body is not valid JSON: {e}"),
    })?;
    let Obj::Map(mut fields) = body else {
        return Err(BadRequest {
            param: None,
            message: "the request body must be a JSON object".to_owned(),
        });
    };

    let model = match fields.model.take().filter(|v| !v.is_null()) {
        None => return Err(required("model")),
        Some(Value::String(model)) if !model.trim().is_empty() => model,
        Some(Value::String(_)) => {
            return Err(bad("model", "String should have at least 1 character"));
        }
        Some(_) => return Err(bad("model", "Input should be a valid string")),
    };
    let max_tokens = match present(&fields.max_tokens) {
        None if max_tokens_required => return Err(required("max_tokens")),
        None => None,
        Some(value) => Some(integer("max_tokens", value)?),
    };
    let messages = match fields.messages.take() {
        None | Some(Items::Other(Kind::Null)) => return Err(required("messages")),
        Some(Items::List(messages)) => messages,
        Some(Items::Other(_)) => return Err(bad("messages", "Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(bad("messages", "at least one message is required"));
    }
    if messages.len() > MAX_MESSAGES {
        return Err(bad(
            "messages",
            format!("at most {MAX_MESSAGES} messages are allowed"),
        ));
    }

    let mut unified = Vec::with_capacity(messages.len() + 1);
    match fields.system.take() {
        None | Some(TextOr::Other(Kind::Null)) => {}
        Some(system) => {
            let parts = system_parts(system)?;
            if !parts.is_empty() {
                unified.push(Message {
                    role: Role::System,
                    content: parts,
                    name: None,
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                });
            }
        }
    }
    let count = messages.len();
    let turns = messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| decode_message(i, message, i + 1 == count))
        .collect::<Result<Vec<_>, _>>()?;
    check_tool_pairs(&turns)?;
    unified.extend(turns.into_iter().flat_map(|turn| turn.messages));

    let mut request = ChatRequest::new(model, unified);
    request.max_output_tokens = max_tokens;
    request.temperature = unit_interval("temperature", present(&fields.temperature))?;
    request.top_p = unit_interval("top_p", present(&fields.top_p))?;
    if let Some(top_k) = fields.rest.get("top_k").filter(|v| !v.is_null()) {
        // Passed through below; checked so that no provider is sent junk for it.
        integer("top_k", top_k)?;
    }
    request.stop = stop_sequences(present(&fields.stop_sequences))?;
    request.stream = match present(&fields.stream) {
        None => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(bad("stream", "Input should be a valid boolean")),
    };
    match fields.tools.take() {
        None | Some(Items::Other(Kind::Null)) => {}
        Some(tools) => request.tools = decode_tools(tools)?.into(),
    }
    request.tool_choice = present(&fields.tool_choice)
        .map(decode_tool_choice)
        .transpose()?;
    request.user = decode_metadata(present(&fields.metadata))?;
    let mut extra = fields.rest;
    extra.retain(|_, value| !value.is_null());
    debug_assert!(MODELLED.iter().all(|name| !extra.contains_key(*name)));
    request.extra = Arc::new(extra);
    request.extra_for = Some(seawall_core::ProviderKind::Anthropic);

    request.validate().map_err(|invalid| {
        // The unified model's name for it is not the client's.
        let field = match invalid.field.as_str() {
            "max_output_tokens" => "max_tokens".to_owned(),
            other => other.to_owned(),
        };
        bad(field, invalid.problem)
    })?;
    Ok(request)
}

/// A field as the checks see it: `null` reads as absent.
fn present(field: &Option<Value>) -> Option<&Value> {
    field.as_ref().filter(|value| !value.is_null())
}

/// A non-negative integer that fits the unified model's `u32`.
fn integer(param: &str, value: &Value) -> Result<u32, BadRequest> {
    match value.as_u64() {
        Some(n) => u32::try_from(n).map_err(|_| {
            bad(
                param,
                format!("Input should be less than or equal to {}", u32::MAX),
            )
        }),
        None if value.as_i64().is_some() => {
            Err(bad(param, "Input should be greater than or equal to 0"))
        }
        None => Err(bad(param, "Input should be a valid integer")),
    }
}

/// `temperature` and `top_p`: numbers from 0 to 1.
fn unit_interval(param: &str, value: Option<&Value>) -> Result<Option<f32>, BadRequest> {
    let Some(value) = value else { return Ok(None) };
    let Some(number) = value.as_f64() else {
        return Err(bad(param, "Input should be a valid number"));
    };
    if !(0.0..=1.0).contains(&number) {
        return Err(bad(param, format!("range: 0..1, got {number}")));
    }
    // In range, so the conversion loses only precision.
    #[allow(clippy::cast_possible_truncation)]
    Ok(Some(number as f32))
}

fn stop_sequences(value: Option<&Value>) -> Result<Arc<[String]>, BadRequest> {
    let Some(value) = value else {
        return Ok(Arc::new([]));
    };
    let Value::Array(items) = value else {
        return Err(bad("stop_sequences", "Input should be a valid list"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if s.trim().is_empty() => Err(bad(
                format!("stop_sequences.{i}"),
                "each stop sequence must contain non-whitespace",
            )),
            Value::String(s) => Ok(s.clone()),
            _ => Err(bad(
                format!("stop_sequences.{i}"),
                "Input should be a valid string",
            )),
        })
        .collect()
}

fn decode_metadata(value: Option<&Value>) -> Result<Option<Arc<str>>, BadRequest> {
    let Some(value) = value else { return Ok(None) };
    let Value::Object(metadata) = value else {
        return Err(bad("metadata", "Input should be a valid dictionary"));
    };
    let mut user = None;
    for (name, value) in metadata {
        match (name.as_str(), value) {
            ("user_id", Value::Null) => {}
            ("user_id", Value::String(id)) => user = Some(Arc::from(id.as_str())),
            ("user_id", _) => {
                return Err(bad("metadata.user_id", "Input should be a valid string"));
            }
            (other, _) => {
                return Err(bad(
                    format!("metadata.{other}"),
                    "Extra inputs are not permitted",
                ));
            }
        }
    }
    Ok(user)
}

/// A block's (or a tool's) `cache_control`.
fn decode_cache_control(
    at: &str,
    cache_control: Option<&Value>,
) -> Result<Option<CacheControl>, BadRequest> {
    let at = || format!("{at}.cache_control");
    match cache_control {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(cache)) => {
            let kind = match cache.get("type") {
                Some(Value::String(kind)) => kind.clone(),
                Some(_) => {
                    return Err(bad(
                        format!("{}.type", at()),
                        "Input should be a valid string",
                    ));
                }
                None => return Err(required(format!("{}.type", at()))),
            };
            let ttl = match cache.get("ttl") {
                None | Some(Value::Null) => None,
                Some(Value::String(ttl)) => Some(ttl.clone()),
                Some(_) => {
                    return Err(bad(
                        format!("{}.ttl", at()),
                        "Input should be a valid string",
                    ));
                }
            };
            Ok(Some(CacheControl { kind, ttl }))
        }
        Some(_) => Err(bad(at(), "Input should be a valid dictionary")),
    }
}

fn system_parts(system: TextOr<Obj<Block>>) -> Result<Vec<ContentPart>, BadRequest> {
    match system {
        TextOr::Text(text) if text.is_empty() => Ok(Vec::new()),
        TextOr::Text(text) => Ok(vec![ContentPart::text(text)]),
        TextOr::List(blocks) => blocks
            .into_iter()
            .enumerate()
            .map(|(j, block)| {
                let at = format!("system.{j}");
                match block_type(&at, block)? {
                    (kind, block) if kind == "text" => text_part(&at, block),
                    (other, _) => Err(bad(
                        format!("{at}.type"),
                        format!("Input should be 'text', got '{other}'"),
                    )),
                }
            })
            .collect(),
        TextOr::Other(_) => Err(bad(
            "system",
            "Input should be a valid string or a list of text blocks",
        )),
    }
}

fn is_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn decode_tools(tools: Items<Obj<Tool>>) -> Result<Vec<ToolDefinition>, BadRequest> {
    let Items::List(tools) = tools else {
        return Err(bad("tools", "Input should be a valid list"));
    };
    let mut names = HashSet::new();
    let mut definitions = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let at = format!("tools.{i}");
        let Obj::Map(tool) = tool else {
            return Err(bad(at, "Input should be a valid dictionary"));
        };
        match &tool.kind {
            None | Some(Scalar::Other(Kind::Null)) => {}
            Some(Scalar::Str(kind)) if kind == "custom" => {}
            Some(Scalar::Str(kind)) => {
                return Err(bad(
                    format!("{at}.type"),
                    format!(
                        "`{kind}` tools are not supported here; define the tool with a \
                         `name`, `description` and `input_schema`"
                    ),
                ));
            }
            Some(_) => return Err(bad(format!("{at}.type"), "Input should be a valid string")),
        }
        let name = take_string(&at, tool.name, "name")?;
        if !is_tool_name(&name) {
            return Err(bad(
                format!("{at}.name"),
                "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
            ));
        }
        if !names.insert(name.clone()) {
            return Err(bad("tools", "Tool names must be unique."));
        }
        let description = match tool.description {
            None | Some(Scalar::Other(Kind::Null)) => None,
            Some(Scalar::Str(description)) => Some(description),
            Some(_) => {
                return Err(bad(
                    format!("{at}.description"),
                    "Input should be a valid string",
                ));
            }
        };
        let parameters = match tool.input_schema {
            Some(schema @ Value::Object(_)) => schema,
            None | Some(Value::Null) => return Err(required(format!("{at}.input_schema"))),
            Some(_) => {
                return Err(bad(
                    format!("{at}.input_schema"),
                    "Input should be a valid dictionary",
                ));
            }
        };
        definitions.push(ToolDefinition {
            name,
            description,
            parameters,
            cache_control: decode_cache_control(&at, tool.cache_control.as_ref())?,
        });
    }
    Ok(definitions)
}

fn decode_tool_choice(choice: &Value) -> Result<ToolChoice, BadRequest> {
    let (kind, fields) = object_type("tool_choice", choice)?;
    match fields.get("disable_parallel_tool_use") {
        None | Some(Value::Null | Value::Bool(_)) => {}
        Some(_) => {
            return Err(bad(
                "tool_choice.disable_parallel_tool_use",
                "Input should be a valid boolean",
            ));
        }
    }
    match kind {
        "auto" => Ok(ToolChoice::Auto),
        "any" => Ok(ToolChoice::Required),
        "none" => Ok(ToolChoice::None),
        "tool" => Ok(ToolChoice::Tool(
            map_string("tool_choice", fields, "name")?.to_owned(),
        )),
        other => Err(bad(
            "tool_choice.type",
            format!(
                "Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            ),
        )),
    }
}

mod read;
mod turns;

use read::{Block, Body, Tool};
use turns::{
    block_type, check_tool_pairs, decode_message, map_string, object_type, take_string, text_part,
};

#[cfg(test)]
mod tests;
