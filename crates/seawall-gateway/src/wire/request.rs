//! The top level of a Chat Completions request body: the fields the gateway models, and
//! every other field kept as it came, to pass through to targets of the same dialect.
//!
//! Read by hand rather than derived with `#[serde(flatten)]`: a flattened struct is read
//! through serde's buffered content, which cost every request 0.8 µs (3.1 → 3.9 µs for a
//! five-message body, `cargo bench -p seawall-gateway --bench encode -- decode_request/chat`,
//! 2026-12-05); this reads each modelled field straight from the body, as the derive does.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{InMessage, InTool, Stop, StreamOptions};

pub(super) struct InRequest {
    pub(super) model: String,
    pub(super) messages: Vec<InMessage>,
    pub(super) max_tokens: Option<u32>,
    pub(super) max_completion_tokens: Option<u32>,
    pub(super) temperature: Option<f32>,
    pub(super) top_p: Option<f32>,
    pub(super) stop: Option<Stop>,
    pub(super) stream: Option<bool>,
    pub(super) stream_options: Option<StreamOptions>,
    pub(super) tools: Option<Vec<InTool>>,
    pub(super) tool_choice: Option<Value>,
    pub(super) response_format: Option<Value>,
    pub(super) user: Option<String>,
    /// Every field not modelled above (`seed`, `logprobs`, `n`, `presence_penalty`, ...):
    /// passed through to chat-completions targets, left out for the others.
    pub(super) rest: Map<String, Value>,
}

/// A top-level key: one the gateway models, or another, by name.
enum Key {
    Model,
    Messages,
    MaxTokens,
    MaxCompletionTokens,
    Temperature,
    TopP,
    Stop,
    Stream,
    StreamOptions,
    Tools,
    ToolChoice,
    ResponseFormat,
    User,
    Other(String),
}

impl Key {
    fn named(name: &str) -> Self {
        match name {
            "model" => Self::Model,
            "messages" => Self::Messages,
            "max_tokens" => Self::MaxTokens,
            "max_completion_tokens" => Self::MaxCompletionTokens,
            "temperature" => Self::Temperature,
            "top_p" => Self::TopP,
            "stop" => Self::Stop,
            "stream" => Self::Stream,
            "stream_options" => Self::StreamOptions,
            "tools" => Self::Tools,
            "tool_choice" => Self::ToolChoice,
            "response_format" => Self::ResponseFormat,
            "user" => Self::User,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(Key::named(name))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for InRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

/// Sets a modelled field once: a second occurrence is an error, as the derive makes it.
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = InRequest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chat completions request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InRequest, A::Error> {
        let mut model = None;
        let mut messages = None;
        // The optional fields: `null` reads as absent, as `#[serde(default)]` on an `Option`.
        let mut max_tokens: Option<Option<u32>> = None;
        let mut max_completion_tokens: Option<Option<u32>> = None;
        let mut temperature: Option<Option<f32>> = None;
        let mut top_p: Option<Option<f32>> = None;
        let mut stop: Option<Option<Stop>> = None;
        let mut stream: Option<Option<bool>> = None;
        let mut stream_options: Option<Option<StreamOptions>> = None;
        let mut tools: Option<Option<Vec<InTool>>> = None;
        let mut tool_choice: Option<Option<Value>> = None;
        let mut response_format: Option<Option<Value>> = None;
        let mut user: Option<Option<String>> = None;
        let mut rest = Map::new();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Model => once(&mut model, &mut map, "model")?,
                Key::Messages => once(&mut messages, &mut map, "messages")?,
                Key::MaxTokens => once(&mut max_tokens, &mut map, "max_tokens")?,
                Key::MaxCompletionTokens => {
                    once(
                        &mut max_completion_tokens,
                        &mut map,
                        "max_completion_tokens",
                    )?;
                }
                Key::Temperature => once(&mut temperature, &mut map, "temperature")?,
                Key::TopP => once(&mut top_p, &mut map, "top_p")?,
                Key::Stop => once(&mut stop, &mut map, "stop")?,
                Key::Stream => once(&mut stream, &mut map, "stream")?,
                Key::StreamOptions => once(&mut stream_options, &mut map, "stream_options")?,
                Key::Tools => once(&mut tools, &mut map, "tools")?,
                Key::ToolChoice => once(&mut tool_choice, &mut map, "tool_choice")?,
                Key::ResponseFormat => once(&mut response_format, &mut map, "response_format")?,
                Key::User => once(&mut user, &mut map, "user")?,
                Key::Other(name) => {
                    // As JSON itself reads a repeated key: the last one holds.
                    rest.insert(name, map.next_value()?);
                }
            }
        }
        Ok(InRequest {
            model: model.ok_or_else(|| de::Error::missing_field("model"))?,
            messages: messages.ok_or_else(|| de::Error::missing_field("messages"))?,
            max_tokens: max_tokens.flatten(),
            max_completion_tokens: max_completion_tokens.flatten(),
            temperature: temperature.flatten(),
            top_p: top_p.flatten(),
            stop: stop.flatten(),
            stream: stream.flatten(),
            stream_options: stream_options.flatten(),
            tools: tools.flatten(),
            tool_choice: tool_choice.flatten(),
            response_format: response_format.flatten(),
            user: user.flatten(),
            rest,
        })
    }
}
