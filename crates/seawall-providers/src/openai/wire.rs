//! Typed stream chunks and response bodies: the fast paths of [`OpenAiStreamDecoder`] and
//! [`OpenAiDialect::decode_response`]. Strings borrow from the input unless they hold escapes.
//! A field of an unexpected type fails the typed reading, and the caller falls back to the
//! loose one.

use std::borrow::Cow;
use std::fmt;

use seawall_core::Usage;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;

use crate::json::{cow_at, get, str_at, u64_at};

#[derive(Deserialize)]
pub(super) struct Response<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) choices: Option<Vec<ResponseChoice<'a>>>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
    #[serde(default)]
    pub(super) error: Option<IgnoredAny>,
}

impl<'a> Response<'a> {
    /// The same fields read from any JSON value: a field of another type is absent,
    /// and only the first choice is read.
    pub(super) fn loose(value: &'a Value) -> Self {
        Self {
            id: cow_at(value, &["id"]),
            model: cow_at(value, &["model"]),
            choices: get(value, &["choices"])
                .and_then(|choices| choices.get(0))
                .map(|choice| {
                    vec![ResponseChoice {
                        message: Some(ResponseMessage::loose(
                            get(choice, &["message"]).unwrap_or(&Value::Null),
                        )),
                        finish_reason: cow_at(choice, &["finish_reason"]),
                    }]
                }),
            usage: get(value, &["usage"]).map(WireUsage::loose),
            error: None,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ResponseChoice<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<ResponseMessage<'a>>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
pub(super) struct ResponseMessage<'a> {
    #[serde(default)]
    pub(super) content: Option<Content>,
    #[serde(borrow, default)]
    pub(super) tool_calls: Option<Vec<ToolCallDelta<'a>>>,
    #[serde(borrow, default)]
    pub(super) refusal: Option<Cow<'a, str>>,
}

impl<'a> ResponseMessage<'a> {
    fn loose(message: &'a Value) -> Self {
        Self {
            content: Some(Content::loose(get(message, &["content"]))),
            tool_calls: get(message, &["tool_calls"])
                .and_then(Value::as_array)
                .map(|calls| {
                    calls
                        .iter()
                        .map(|call| ToolCallDelta {
                            index: None,
                            id: cow_at(call, &["id"]),
                            function: Some(Function {
                                name: cow_at(call, &["function", "name"]),
                                arguments: cow_at(call, &["function", "arguments"]),
                            }),
                        })
                        .collect()
                }),
            refusal: cow_at(message, &["refusal"]),
        }
    }
}

/// The reply text: a string, or (some compatible servers) an array of parts whose
/// `text`s are joined.
pub(super) struct Content(pub(super) String);

impl Content {
    /// Any JSON value: a string, the `text`s of an array's parts, or nothing.
    fn loose(content: Option<&Value>) -> Self {
        Self(match content {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| str_at(part, &["text"]))
                .collect(),
            _ => String::new(),
        })
    }
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;

        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of text parts")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Content, E> {
                Ok(Content(text.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Content, E> {
                Ok(Content(text))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut parts: A) -> Result<Content, A::Error> {
                let mut text = String::new();
                while let Some(part) = parts.next_element::<Part<'de>>()? {
                    if let Some(part) = part.text {
                        text.push_str(&part);
                    }
                }
                Ok(Content(text))
            }
        }

        deserializer.deserialize_any(ContentVisitor)
    }
}

#[derive(Deserialize)]
pub(super) struct Chunk<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
    #[serde(default)]
    pub(super) x_groq: Option<XGroq>,
    #[serde(default)]
    pub(super) error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
pub(super) struct Choice<'a> {
    #[serde(default)]
    pub(super) index: Option<u64>,
    #[serde(borrow, default)]
    pub(super) delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct Delta<'a> {
    #[serde(borrow, default)]
    pub(super) content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct ToolCallDelta<'a> {
    #[serde(default)]
    pub(super) index: Option<u64>,
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) function: Option<Function<'a>>,
}

#[derive(Deserialize, Default)]
pub(super) struct Function<'a> {
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct XGroq {
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
}

impl WireUsage {
    /// The same fields read from any JSON value: a field of another type is absent.
    pub(super) fn loose(value: &Value) -> Self {
        let details = |path: &str| {
            Some(Details {
                cached_tokens: u64_at(value, &[path, "cached_tokens"]),
                cache_write_tokens: u64_at(value, &[path, "cache_write_tokens"]),
                reasoning_tokens: u64_at(value, &[path, "reasoning_tokens"]),
            })
        };
        Self {
            prompt_tokens: u64_at(value, &["prompt_tokens"]),
            completion_tokens: u64_at(value, &["completion_tokens"]),
            prompt_tokens_details: details("prompt_tokens_details"),
            completion_tokens_details: details("completion_tokens_details"),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
    #[serde(default)]
    completion_tokens_details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Self {
        let prompt = usage.prompt_tokens_details.as_ref();
        let completion = usage.completion_tokens_details.as_ref();
        Usage::new(
            usage.prompt_tokens.unwrap_or(0),
            usage.completion_tokens.unwrap_or(0),
        )
        .with_cached_input(prompt.and_then(|d| d.cached_tokens).unwrap_or(0))
        .with_cache_writes(prompt.and_then(|d| d.cache_write_tokens).unwrap_or(0))
        .with_reasoning(completion.and_then(|d| d.reasoning_tokens).unwrap_or(0))
    }
}
