//! A Responses request body read into typed structs in one pass, each field kept as it came
//! (a wrong type included) for the checks of the decoder to name in the order they always
//! have. Unmodelled top-level fields are kept whole, to pass through; unknown fields of input
//! items, content parts and tools are read (as JSON) and dropped.

use serde_json::{Map, Value};

use crate::dialect::loose::{Items, Obj, Scalar, TextOr, read_fields};

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

read_fields!(Body {
    "model" => model,
    "input" => input,
    "instructions" => instructions,
    "tools" => tools,
    "tool_choice" => tool_choice,
    "max_output_tokens" => max_output_tokens,
    "temperature" => temperature,
    "top_p" => top_p,
    "stream" => stream,
    "stream_options" => stream_options,
    "text" => text,
    "user" => user,
} else keep in rest);

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

read_fields!(Item {
    "type" => kind,
    "role" => role,
    "content" => content,
    "call_id" => call_id,
    "name" => name,
    "arguments" => arguments,
    "output" => output,
} else skip);

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

read_fields!(Part {
    "type" => kind,
    "text" => text,
    "refusal" => refusal,
    "image_url" => image_url,
    "detail" => detail,
    "file_id" => file_id,
} else skip);

/// One tool of `tools`.
#[derive(Default)]
pub(super) struct Tool {
    pub(super) kind: Option<Scalar>,
    pub(super) name: Option<Scalar>,
    pub(super) description: Option<Scalar>,
    pub(super) parameters: Option<Value>,
    pub(super) strict: Option<Scalar>,
}

read_fields!(Tool {
    "type" => kind,
    "name" => name,
    "description" => description,
    "parameters" => parameters,
    "strict" => strict,
} else skip);
