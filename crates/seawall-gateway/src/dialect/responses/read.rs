//! A Responses request body read into typed structs in one pass, each field kept as it came
//! (a wrong type included) for the checks of the decoder to name in the order they always
//! have. Unmodelled top-level fields are kept whole, to pass through; unknown fields of input
//! items, content parts and tools are read (as JSON) and dropped.

use serde::de::MapAccess;
use serde_json::{Map, Value};

use crate::dialect::loose::{FromMap, Items, Name, Obj, Scalar, Skip, TextOr};

/// Message content or a function call's output.
pub(super) type Content = TextOr<Obj<Part>>;

/// The top level.
#[derive(Default)]
pub(super) struct Body {
    pub(super) model: Option<Value>,
    pub(super) input: Option<TextOr<Obj<Item>>>,
    pub(super) instructions: Option<Value>,
    pub(super) tools: Option<Items<Obj<Tool>>>,
    pub(super) tool_choice: Option<Value>,
    pub(super) max_output_tokens: Option<Value>,
    pub(super) temperature: Option<Value>,
    pub(super) top_p: Option<Value>,
    pub(super) stream: Option<Value>,
    /// Only `include_obfuscation`, which the gateway's own events never need.
    pub(super) stream_options: Option<Value>,
    /// Only `text.format` is modelled; `text.verbosity` has no place in the unified request.
    pub(super) text: Option<Value>,
    pub(super) user: Option<Value>,
    /// Every other field (`store`, `reasoning`, `metadata`, ...), `null`s included.
    pub(super) rest: Map<String, Value>,
}

impl<'de> FromMap<'de> for Body {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut body = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "model" => body.model = Some(map.next_value()?),
                "input" => body.input = Some(map.next_value()?),
                "instructions" => body.instructions = Some(map.next_value()?),
                "tools" => body.tools = Some(map.next_value()?),
                "tool_choice" => body.tool_choice = Some(map.next_value()?),
                "max_output_tokens" => body.max_output_tokens = Some(map.next_value()?),
                "temperature" => body.temperature = Some(map.next_value()?),
                "top_p" => body.top_p = Some(map.next_value()?),
                "stream" => body.stream = Some(map.next_value()?),
                "stream_options" => body.stream_options = Some(map.next_value()?),
                "text" => body.text = Some(map.next_value()?),
                "user" => body.user = Some(map.next_value()?),
                _ => {
                    body.rest.insert(name.into_owned(), map.next_value()?);
                }
            }
        }
        Ok(body)
    }
}

/// An input item of any type (a message, a function call or its output, reasoning): the
/// fields of every type the decoder reads, whatever their order.
#[derive(Default)]
pub(super) struct Item {
    pub(super) kind: Option<Scalar>,
    /// `message`.
    pub(super) role: Option<Scalar>,
    pub(super) content: Option<Content>,
    /// `function_call` and `function_call_output`.
    pub(super) call_id: Option<Scalar>,
    pub(super) name: Option<Scalar>,
    pub(super) arguments: Option<Scalar>,
    pub(super) output: Option<Content>,
}

impl<'de> FromMap<'de> for Item {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut item = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "type" => item.kind = Some(map.next_value()?),
                "role" => item.role = Some(map.next_value()?),
                "content" => item.content = Some(map.next_value()?),
                "call_id" => item.call_id = Some(map.next_value()?),
                "name" => item.name = Some(map.next_value()?),
                "arguments" => item.arguments = Some(map.next_value()?),
                "output" => item.output = Some(map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(item)
    }
}

/// A content part of any type (`input_text`, `input_image`, `refusal`, ...).
#[derive(Default)]
pub(super) struct Part {
    pub(super) kind: Option<Scalar>,
    pub(super) text: Option<Scalar>,
    pub(super) refusal: Option<Scalar>,
    pub(super) image_url: Option<Scalar>,
    pub(super) detail: Option<Scalar>,
    pub(super) file_id: Option<Scalar>,
}

impl<'de> FromMap<'de> for Part {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut part = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "type" => part.kind = Some(map.next_value()?),
                "text" => part.text = Some(map.next_value()?),
                "refusal" => part.refusal = Some(map.next_value()?),
                "image_url" => part.image_url = Some(map.next_value()?),
                "detail" => part.detail = Some(map.next_value()?),
                "file_id" => part.file_id = Some(map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(part)
    }
}

/// One tool of `tools`.
#[derive(Default)]
pub(super) struct Tool {
    pub(super) kind: Option<Scalar>,
    pub(super) name: Option<Scalar>,
    pub(super) description: Option<Scalar>,
    pub(super) parameters: Option<Value>,
    pub(super) strict: Option<Scalar>,
}

impl<'de> FromMap<'de> for Tool {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut tool = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "type" => tool.kind = Some(map.next_value()?),
                "name" => tool.name = Some(map.next_value()?),
                "description" => tool.description = Some(map.next_value()?),
                "parameters" => tool.parameters = Some(map.next_value()?),
                "strict" => tool.strict = Some(map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(tool)
    }
}
