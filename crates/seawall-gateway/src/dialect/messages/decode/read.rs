//! A Messages request body read into typed structs in one pass, each field kept as it came
//! (a wrong type included) for the checks of the decoder to name in the order they always
//! have. Unmodelled top-level fields are kept whole, to pass through; unknown fields of
//! messages, blocks and tools are read (as JSON) and dropped.

use serde::de::MapAccess;
use serde_json::{Map, Value};

use crate::dialect::loose::{FromMap, Items, Name, Obj, Scalar, Skip, TextOr};

/// The top level.
#[derive(Default)]
pub(super) struct Body {
    pub(super) model: Option<Value>,
    pub(super) max_tokens: Option<Value>,
    pub(super) messages: Option<Items<Obj<InMessage>>>,
    pub(super) system: Option<TextOr<Obj<Block>>>,
    pub(super) tools: Option<Items<Obj<Tool>>>,
    pub(super) tool_choice: Option<Value>,
    pub(super) temperature: Option<Value>,
    pub(super) top_p: Option<Value>,
    pub(super) stop_sequences: Option<Value>,
    pub(super) stream: Option<Value>,
    pub(super) metadata: Option<Value>,
    /// Every other field (`top_k`, `thinking`, `service_tier`, ...), `null`s included.
    pub(super) rest: Map<String, Value>,
}

impl<'de> FromMap<'de> for Body {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut body = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "model" => body.model = Some(map.next_value()?),
                "max_tokens" => body.max_tokens = Some(map.next_value()?),
                "messages" => body.messages = Some(map.next_value()?),
                "system" => body.system = Some(map.next_value()?),
                "tools" => body.tools = Some(map.next_value()?),
                "tool_choice" => body.tool_choice = Some(map.next_value()?),
                "temperature" => body.temperature = Some(map.next_value()?),
                "top_p" => body.top_p = Some(map.next_value()?),
                "stop_sequences" => body.stop_sequences = Some(map.next_value()?),
                "stream" => body.stream = Some(map.next_value()?),
                "metadata" => body.metadata = Some(map.next_value()?),
                _ => {
                    body.rest.insert(name.into_owned(), map.next_value()?);
                }
            }
        }
        Ok(body)
    }
}

/// One message of `messages`.
#[derive(Default)]
pub(super) struct InMessage {
    pub(super) role: Option<Scalar>,
    pub(super) content: Option<TextOr<Obj<Block>>>,
}

impl<'de> FromMap<'de> for InMessage {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut message = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "role" => message.role = Some(map.next_value()?),
                "content" => message.content = Some(map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(message)
    }
}

/// A content block of any type: the fields of every type the decoder reads, so that one
/// pass reads a block whatever the order of its fields (and whichever `type` comes last
/// holds, as in a `Value`).
#[derive(Default)]
pub(super) struct Block {
    pub(super) kind: Option<Scalar>,
    pub(super) text: Option<Scalar>,
    pub(super) cache_control: Option<Value>,
    /// `image`.
    pub(super) source: Option<Value>,
    /// `tool_use`.
    pub(super) id: Option<Scalar>,
    pub(super) name: Option<Scalar>,
    pub(super) input: Option<Value>,
    /// `tool_result`.
    pub(super) tool_use_id: Option<Scalar>,
    pub(super) is_error: Option<Scalar>,
    pub(super) content: Option<TextOr<Obj<Block>>>,
}

impl<'de> FromMap<'de> for Block {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut block = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "type" => block.kind = Some(map.next_value()?),
                "text" => block.text = Some(map.next_value()?),
                "cache_control" => block.cache_control = Some(map.next_value()?),
                "source" => block.source = Some(map.next_value()?),
                "id" => block.id = Some(map.next_value()?),
                "name" => block.name = Some(map.next_value()?),
                "input" => block.input = Some(map.next_value()?),
                "tool_use_id" => block.tool_use_id = Some(map.next_value()?),
                "is_error" => block.is_error = Some(map.next_value()?),
                "content" => block.content = Some(map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(block)
    }
}

/// One tool of `tools`.
#[derive(Default)]
pub(super) struct Tool {
    pub(super) kind: Option<Scalar>,
    pub(super) name: Option<Scalar>,
    pub(super) description: Option<Scalar>,
    pub(super) input_schema: Option<Value>,
    pub(super) cache_control: Option<Value>,
}

impl<'de> FromMap<'de> for Tool {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut tool = Self::default();
        while let Some(Name(name)) = map.next_key()? {
            match &*name {
                "type" => tool.kind = Some(map.next_value()?),
                "name" => tool.name = Some(map.next_value()?),
                "description" => tool.description = Some(map.next_value()?),
                "input_schema" => tool.input_schema = Some(map.next_value()?),
                "cache_control" => tool.cache_control = Some(map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(tool)
    }
}
