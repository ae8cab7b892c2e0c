//! The messages of a request: each turn's content blocks (text, images, tool calls and
//! their results) and the rules across turns (every tool call answered in the next turn).

use std::collections::HashSet;
use std::fmt::Write;

use serde_json::{Map, Value};

use seawall_core::{ContentPart, ImageSource, Message, Role, ToolCall};

use super::read::{Block, InMessage};
use super::{IMAGE_TYPES, bad, decode_cache_control, required};
use crate::dialect::loose::{Field, Kind, Obj, Scalar, TextOr};
use crate::wire::BadRequest;

/// A block's `type` and the block, or the error naming it.
pub(super) fn block_type(at: &str, block: Obj<Block>) -> Result<(String, Block), BadRequest> {
    let Obj::Map(mut block) = block else {
        return Err(bad(at, "Input should be a valid dictionary"));
    };
    match block.kind.take() {
        Some(Scalar::Str(kind)) => Ok((kind, block)),
        Some(_) => Err(bad(format!("{at}.type"), "Input should be a valid string")),
        None => Err(bad(at, "Unable to extract tag using discriminator 'type'")),
    }
}

/// The `type` of an object read whole (an image's `source`, `tool_choice`), or the error
/// naming it.
pub(super) fn object_type<'a>(
    at: &str,
    value: &'a Value,
) -> Result<(&'a str, &'a Map<String, Value>), BadRequest> {
    let Value::Object(fields) = value else {
        return Err(bad(at, "Input should be a valid dictionary"));
    };
    match fields.get("type") {
        Some(Value::String(kind)) => Ok((kind, fields)),
        Some(_) => Err(bad(format!("{at}.type"), "Input should be a valid string")),
        None => Err(bad(at, "Unable to extract tag using discriminator 'type'")),
    }
}

/// A required string field `name` of the object at `at`.
fn string_field<'a, F: Field>(
    at: &str,
    field: Option<&'a F>,
    name: &str,
) -> Result<&'a str, BadRequest> {
    match field {
        Some(field) if field.kind() == Kind::String => Ok(field.as_text().unwrap_or_default()),
        Some(field) if field.kind() != Kind::Null => Err(bad(
            format!("{at}.{name}"),
            "Input should be a valid string",
        )),
        _ => Err(required(format!("{at}.{name}"))),
    }
}

/// [`string_field`] of an object read whole.
pub(super) fn map_string<'a>(
    at: &str,
    fields: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, BadRequest> {
    string_field(at, fields.get(name), name)
}

/// [`string_field`], taken.
pub(super) fn take_string(
    at: &str,
    field: Option<Scalar>,
    name: &str,
) -> Result<String, BadRequest> {
    match field {
        Some(Scalar::Str(text)) => Ok(text),
        other => string_field(at, other.as_ref(), name).map(str::to_owned),
    }
}

/// A `text` block; its text must not be empty.
pub(super) fn text_part(at: &str, block: Block) -> Result<ContentPart, BadRequest> {
    let text = take_string(at, block.text, "text")?;
    if text.is_empty() {
        return Err(bad(
            format!("{at}.text"),
            "text content blocks must be non-empty",
        ));
    }
    Ok(ContentPart::Text {
        text,
        cache_control: decode_cache_control(at, block.cache_control.as_ref())?,
    })
}

fn image_part(at: &str, block: Block) -> Result<ContentPart, BadRequest> {
    let source_at = format!("{at}.source");
    let source = match &block.source {
        Some(source) => source,
        None => return Err(required(source_at)),
    };
    let (kind, source_fields) = object_type(&source_at, source)?;
    let source = match kind {
        "base64" => {
            let media_type = map_string(&source_at, source_fields, "media_type")?;
            if !IMAGE_TYPES.contains(&media_type) {
                return Err(bad(
                    format!("{source_at}.media_type"),
                    "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
                ));
            }
            let data = map_string(&source_at, source_fields, "data")?;
            ImageSource::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            }
        }
        "url" => {
            let url = map_string(&source_at, source_fields, "url")?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(bad(
                    format!("{source_at}.url"),
                    "Only HTTP and HTTPS URLs are supported",
                ));
            }
            ImageSource::Url {
                url: url.to_owned(),
            }
        }
        other => {
            return Err(bad(
                format!("{source_at}.type"),
                format!(
                    "image sources of type `{other}` are not supported here; use 'base64' or 'url'"
                ),
            ));
        }
    };
    Ok(ContentPart::Image {
        source,
        detail: None,
        cache_control: decode_cache_control(at, block.cache_control.as_ref())?,
    })
}

fn unsupported(at: &str, kind: &str) -> BadRequest {
    bad(
        format!("{at}.type"),
        format!("`{kind}` blocks are not supported here"),
    )
}

/// One request message, as the unified messages it becomes, with the tool ids it holds.
pub(super) struct Turn {
    role: Role,
    /// The index of the message in the request.
    index: usize,
    pub(super) messages: Vec<Message>,
    /// `tool_use` ids (assistant) or `tool_result` ids with their block (user).
    tool_ids: Vec<(String, usize)>,
}

pub(super) fn decode_message(
    i: usize,
    message: Obj<InMessage>,
    last: bool,
) -> Result<Turn, BadRequest> {
    let at = format!("messages.{i}");
    let Obj::Map(message) = message else {
        return Err(bad(at, "Input should be a valid dictionary"));
    };
    let role = match message.role {
        None => return Err(required(format!("{at}.role"))),
        Some(Scalar::Str(role)) if role == "user" => Role::User,
        Some(Scalar::Str(role)) if role == "assistant" => Role::Assistant,
        Some(Scalar::Str(role)) if role == "system" => {
            return Err(bad(
                format!("{at}.role"),
                "Unexpected role \"system\". The Messages API accepts a top-level `system` \
                 parameter, not \"system\" as an input message role.",
            ));
        }
        Some(_) => {
            return Err(bad(
                format!("{at}.role"),
                "Input should be 'user' or 'assistant'",
            ));
        }
    };
    let content_at = || format!("{at}.content");
    let mut block_at = BlockPaths::new(&at);
    let empty = || {
        bad(
            &at,
            "all messages must have non-empty content except for the optional final assistant message",
        )
    };
    let mut turn = Turn {
        role,
        index: i,
        messages: Vec::new(),
        tool_ids: Vec::new(),
    };
    let blocks = match message.content {
        None | Some(TextOr::Other(Kind::Null)) => return Err(required(content_at())),
        Some(TextOr::Text(text)) => {
            if text.is_empty() {
                return if last && role == Role::Assistant {
                    Ok(turn)
                } else {
                    Err(empty())
                };
            }
            check_prefill_end(&at, role, last, &text)?;
            turn.messages.push(Message::text(role, text));
            return Ok(turn);
        }
        Some(TextOr::List(blocks)) => blocks,
        Some(TextOr::Other(_)) => {
            return Err(bad(
                content_at(),
                "Input should be a valid string or a list of content blocks",
            ));
        }
    };
    if blocks.is_empty() {
        return if last && role == Role::Assistant {
            Ok(turn)
        } else {
            Err(empty())
        };
    }
    match role {
        Role::Assistant => {
            let mut message = Message {
                role,
                content: Vec::new(),
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: None,
            };
            for (j, block) in blocks.into_iter().enumerate() {
                let at = block_at.of(j);
                let (kind, block) = block_type(at, block)?;
                match kind.as_str() {
                    "text" => message.content.push(text_part(at, block)?),
                    "tool_use" => {
                        let call = tool_use(at, block)?;
                        turn.tool_ids.push((call.id.clone(), j));
                        message.tool_calls.push(call);
                    }
                    // The unified model has no place for them (see the module docs).
                    "thinking" | "redacted_thinking" => {}
                    "tool_result" | "image" => {
                        return Err(bad(
                            format!("{at}.type"),
                            format!("`{kind}` blocks can only be in `user` messages"),
                        ));
                    }
                    other => return Err(unsupported(at, other)),
                }
            }
            if let Some(ContentPart::Text { text, .. }) = message.content.last() {
                check_prefill_end(&at, role, last && message.tool_calls.is_empty(), text)?;
            }
            if !(message.content.is_empty() && message.tool_calls.is_empty()) {
                turn.messages.push(message);
            }
        }
        _ => {
            // Tool results become tool messages in place; the parts between them user
            // messages, so the order holds.
            let mut parts = Vec::new();
            for (j, block) in blocks.into_iter().enumerate() {
                let at = block_at.of(j);
                let (kind, block) = block_type(at, block)?;
                match kind.as_str() {
                    "text" => parts.push(text_part(at, block)?),
                    "image" => parts.push(image_part(at, block)?),
                    "tool_result" => {
                        if !parts.is_empty() {
                            turn.messages.push(user_message(std::mem::take(&mut parts)));
                        }
                        let result = tool_result(at, block)?;
                        turn.tool_ids
                            .push((result.tool_call_id.clone().unwrap_or_default(), j));
                        turn.messages.push(result);
                    }
                    "tool_use" | "thinking" | "redacted_thinking" => {
                        return Err(bad(
                            format!("{at}.type"),
                            format!("`{kind}` blocks can only be in `assistant` messages"),
                        ));
                    }
                    other => return Err(unsupported(at, other)),
                }
            }
            if !parts.is_empty() {
                turn.messages.push(user_message(parts));
            }
        }
    }
    Ok(turn)
}

fn user_message(content: Vec<ContentPart>) -> Message {
    Message {
        role: Role::User,
        content,
        name: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

/// A final assistant message is a prefill the answer continues; the API refuses one that
/// ends in whitespace.
fn check_prefill_end(at: &str, role: Role, last: bool, text: &str) -> Result<(), BadRequest> {
    if last && role == Role::Assistant && text.ends_with(char::is_whitespace) {
        return Err(bad(
            at,
            "final assistant content cannot end with trailing whitespace",
        ));
    }
    Ok(())
}

fn tool_use(at: &str, block: Block) -> Result<ToolCall, BadRequest> {
    let id = take_string(at, block.id, "id")?;
    let name = take_string(at, block.name, "name")?;
    let arguments = match &block.input {
        Some(input @ Value::Object(_)) => input.to_string(),
        None | Some(Value::Null) => return Err(required(format!("{at}.input"))),
        Some(_) => {
            return Err(bad(
                format!("{at}.input"),
                "Input should be a valid dictionary",
            ));
        }
    };
    Ok(ToolCall {
        id,
        name,
        arguments,
    })
}

fn tool_result(at: &str, block: Block) -> Result<Message, BadRequest> {
    let id = take_string(at, block.tool_use_id, "tool_use_id")?;
    match block.is_error {
        None | Some(Scalar::Bool(_) | Scalar::Other(Kind::Null)) => {}
        Some(_) => {
            return Err(bad(
                format!("{at}.is_error"),
                "Input should be a valid boolean",
            ));
        }
    }
    let mut content = match block.content {
        None | Some(TextOr::Other(Kind::Null)) => Vec::new(),
        Some(TextOr::Text(text)) => vec![ContentPart::text(text)],
        Some(TextOr::List(blocks)) => blocks
            .into_iter()
            .enumerate()
            .map(|(k, inner)| {
                let at = format!("{at}.content.{k}");
                let (kind, inner) = block_type(&at, inner)?;
                match kind.as_str() {
                    "text" => text_part(&at, inner),
                    "image" => image_part(&at, inner),
                    other => Err(unsupported(&at, other)),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(TextOr::Other(_)) => {
            return Err(bad(
                format!("{at}.content"),
                "Input should be a valid string or a list of content blocks",
            ));
        }
    };
    if content.is_empty() {
        // An empty result is a valid answer; the unified model wants some content.
        content.push(ContentPart::text(""));
    }
    let mut message = Message {
        role: Role::Tool,
        content,
        name: None,
        tool_calls: Vec::new(),
        tool_call_id: Some(id),
    };
    if let Some(cache) = decode_cache_control(at, block.cache_control.as_ref())? {
        message = message.with_cache_control(cache);
    }
    Ok(message)
}

/// Every `tool_use` is answered by a `tool_result` in the next turn, and every
/// `tool_result` answers a `tool_use` of the turn before; consecutive messages of one role
/// are one turn, as the API combines them.
pub(super) fn check_tool_pairs(turns: &[Turn]) -> Result<(), BadRequest> {
    /// A tool id with where it stands: (id, message index, block index).
    type Placed<'a> = (&'a str, usize, usize);
    // (role, index of the turn's first message, its tool ids).
    let mut merged: Vec<(Role, usize, Vec<Placed<'_>>)> = Vec::new();
    for turn in turns {
        let ids = turn
            .tool_ids
            .iter()
            .map(|(id, block)| (id.as_str(), turn.index, *block));
        match merged.last_mut() {
            Some((role, _, all)) if *role == turn.role => all.extend(ids),
            _ => merged.push((turn.role, turn.index, ids.collect())),
        }
    }
    for (k, (role, index, ids)) in merged.iter().enumerate() {
        if *role != Role::Assistant || ids.is_empty() {
            continue;
        }
        let Some((_, _, answers)) = merged.get(k + 1) else {
            continue;
        };
        let answered: HashSet<&str> = answers.iter().map(|(id, ..)| *id).collect();
        let missing: Vec<&str> = ids
            .iter()
            .map(|(id, ..)| *id)
            .filter(|id| !answered.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(bad(
                format!("messages.{index}"),
                format!(
                    "`tool_use` ids were found without `tool_result` blocks immediately after: \
                     {}. Each `tool_use` block must have a corresponding `tool_result` block in \
                     the next message.",
                    missing.join(", ")
                ),
            ));
        }
    }
    for (k, (role, _, ids)) in merged.iter().enumerate() {
        if *role != Role::User {
            continue;
        }
        let asked: HashSet<&str> = match k.checked_sub(1).and_then(|p| merged.get(p)) {
            Some((Role::Assistant, _, calls)) => calls.iter().map(|(id, ..)| *id).collect(),
            _ => HashSet::new(),
        };
        if let Some((id, message, block)) = ids.iter().find(|(id, ..)| !asked.contains(id)) {
            return Err(bad(
                format!("messages.{message}.content.{block}"),
                format!(
                    "unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each \
                     `tool_result` block must have a corresponding `tool_use` block in the \
                     previous message."
                ),
            ));
        }
    }
    Ok(())
}

/// Each block's path, `messages.{i}.content.{j}`, written over in place for the next
/// (one string per message, not one per block).
struct BlockPaths {
    text: String,
    prefix: usize,
}

impl BlockPaths {
    fn new(message_at: &str) -> Self {
        let text = format!("{message_at}.content.");
        let prefix = text.len();
        Self { text, prefix }
    }

    /// The path of block `j`.
    fn of(&mut self, j: usize) -> &str {
        self.text.truncate(self.prefix);
        let _ = write!(self.text, "{j}");
        &self.text
    }
}
