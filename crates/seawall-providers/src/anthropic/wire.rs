//! Typed messages and content-delta events: the fast paths of `decode_response` and
//! [`AnthropicStreamDecoder`]. Strings borrow from the input unless they hold escapes. A
//! field of an unexpected type fails the typed reading, and the caller falls back to the
//! loose one.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::json::{cow_at, get, u64_at};

#[derive(Deserialize)]
pub(super) struct Message<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) content: Option<Vec<ContentBlock<'a>>>,
    #[serde(borrow, default)]
    pub(super) stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) stop_details: Option<StopDetails<'a>>,
    #[serde(default)]
    pub(super) usage: Option<Usage>,
}

/// Why a message stopped, beyond its `stop_reason` (a refusal's explanation).
#[derive(Deserialize)]
pub(super) struct StopDetails<'a> {
    #[serde(borrow, default)]
    pub(super) explanation: Option<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    /// The same fields read from any JSON value: a field of another type is absent.
    pub(super) fn loose(value: &'a Value) -> Self {
        Self {
            kind: cow_at(value, &["type"]),
            id: cow_at(value, &["id"]),
            model: cow_at(value, &["model"]),
            content: get(value, &["content"])
                .and_then(Value::as_array)
                .map(|blocks| {
                    blocks
                        .iter()
                        .map(|block| ContentBlock {
                            kind: cow_at(block, &["type"]),
                            text: cow_at(block, &["text"]),
                            id: cow_at(block, &["id"]),
                            name: cow_at(block, &["name"]),
                            input: get(block, &["input"]).cloned(),
                        })
                        .collect()
                }),
            stop_reason: cow_at(value, &["stop_reason"]),
            stop_details: get(value, &["stop_details"]).map(|details| StopDetails {
                explanation: cow_at(details, &["explanation"]),
            }),
            usage: get(value, &["usage"]).map(Usage::loose),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ContentBlock<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) input: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct Usage {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens_details: Option<UsageDetails>,
}

impl Usage {
    /// The same fields read from any JSON value: a field of another type is absent.
    pub(super) fn loose(value: &Value) -> Self {
        Self {
            input_tokens: u64_at(value, &["input_tokens"]),
            cache_read_input_tokens: u64_at(value, &["cache_read_input_tokens"]),
            cache_creation_input_tokens: u64_at(value, &["cache_creation_input_tokens"]),
            output_tokens: u64_at(value, &["output_tokens"]),
            output_tokens_details: Some(UsageDetails {
                thinking_tokens: u64_at(value, &["output_tokens_details", "thinking_tokens"]),
            }),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct UsageDetails {
    #[serde(default)]
    pub(super) thinking_tokens: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct Event<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) index: Option<u64>,
    #[serde(borrow, default)]
    pub(super) delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Delta<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) partial_json: Option<Cow<'a, str>>,
}

impl<'a> Delta<'a> {
    /// The same fields read from any JSON value: a field of another type is absent.
    pub(super) fn loose(value: &'a Value) -> Self {
        Self {
            kind: cow_at(value, &["type"]),
            text: cow_at(value, &["text"]),
            partial_json: cow_at(value, &["partial_json"]),
        }
    }
}
