//! A Messages request body read into typed structs in one pass, each field kept as it came
//! (a wrong type included) for the checks of the decoder to name in the order they always
//! have. Unmodelled top-level fields are kept whole, to pass through; unknown fields of
//! messages, blocks and tools are read (as JSON) and dropped.

use serde_json::{Map, Value};

use crate::dialect::loose::{Items, Obj, Scalar, TextOr, read_fields};

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

read_fields!(Body {
    "model" => model,
    "max_tokens" => max_tokens,
    "messages" => messages,
    "system" => system,
    "tools" => tools,
    "tool_choice" => tool_choice,
    "temperature" => temperature,
    "top_p" => top_p,
    "stop_sequences" => stop_sequences,
    "stream" => stream,
    "metadata" => metadata,
} else keep in rest);

/// One message of `messages`.
#[derive(Default)]
pub(super) struct InMessage {
    pub(super) role: Option<Scalar>,
    pub(super) content: Option<TextOr<Obj<Block>>>,
}

read_fields!(InMessage {
    "role" => role,
    "content" => content,
} else skip);

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

read_fields!(Block {
    "type" => kind,
    "text" => text,
    "cache_control" => cache_control,
    "source" => source,
    "id" => id,
    "name" => name,
    "input" => input,
    "tool_use_id" => tool_use_id,
    "is_error" => is_error,
    "content" => content,
} else skip);

/// One tool of `tools`.
#[derive(Default)]
pub(super) struct Tool {
    pub(super) kind: Option<Scalar>,
    pub(super) name: Option<Scalar>,
    pub(super) description: Option<Scalar>,
    pub(super) input_schema: Option<Value>,
    pub(super) cache_control: Option<Value>,
}

read_fields!(Tool {
    "type" => kind,
    "name" => name,
    "description" => description,
    "input_schema" => input_schema,
    "cache_control" => cache_control,
} else skip);
