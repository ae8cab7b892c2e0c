//! Typed `GenerateContentResponse`s: the fast path of [`GeminiStreamDecoder`] and of
//! `decode_response`. Strings borrow from the input unless they hold escapes. A field of an
//! unexpected type fails the typed reading, and the caller falls back to the loose one.

use std::borrow::Cow;

use seawall_core::{ToolCall, Usage};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::args::Piece;
use crate::json::{cow_at, get, is_object, u64_at};

/// The typed reading of `json`, when it is an object of the expected types that is
/// neither an error nor a blocked prompt.
pub(super) fn read(json: &[u8]) -> Option<Response<'_>> {
    if !is_object(json) {
        return None;
    }
    let response: Response<'_> = serde_json::from_slice(json).ok()?;
    let blocked = response
        .prompt_feedback
        .as_ref()
        .is_some_and(|feedback| feedback.block_reason.is_some());
    (response.error.is_none() && !blocked).then_some(response)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Response<'a> {
    #[serde(borrow, default)]
    pub(super) candidates: Option<Vec<Candidate<'a>>>,
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageMetadata>,
    #[serde(borrow, default)]
    pub(super) model_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) response_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

impl<'a> Response<'a> {
    /// The same fields read from any JSON value: a field of another type is absent.
    pub(super) fn loose(value: &'a Value) -> Self {
        Self {
            candidates: get(value, &["candidates"])
                .and_then(Value::as_array)
                .map(|candidates| candidates.iter().map(Candidate::loose).collect()),
            usage_metadata: get(value, &["usageMetadata"]).map(UsageMetadata::loose),
            model_version: cow_at(value, &["modelVersion"]),
            response_id: cow_at(value, &["responseId"]),
            prompt_feedback: None,
            error: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback<'a> {
    #[serde(borrow, default)]
    block_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Cow<'a, str>>,
}

impl<'a> Candidate<'a> {
    fn loose(value: &'a Value) -> Self {
        let parts = get(value, &["content", "parts"])
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .map(|part| Part {
                        text: cow_at(part, &["text"]),
                        thought: get(part, &["thought"]).and_then(Value::as_bool),
                        function_call: get(part, &["functionCall"]).map(|call| FunctionCall {
                            name: cow_at(call, &["name"]),
                            id: cow_at(call, &["id"]),
                            args: get(call, &["args"]).cloned(),
                            partial_args: get(call, &["partialArgs"])
                                .and_then(Value::as_array)
                                .map(|args| args.iter().map(PartialArg::loose).collect()),
                            will_continue: get(call, &["willContinue"]).and_then(Value::as_bool),
                        }),
                    })
                    .collect()
            });
        Self {
            content: Some(Content { parts }),
            finish_reason: cow_at(value, &["finishReason"]),
        }
    }
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    parts: Option<Vec<Part<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default)]
    function_call: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FunctionCall<'a> {
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) args: Option<Value>,
    /// Values of arguments streamed in pieces.
    #[serde(borrow, default)]
    pub(super) partial_args: Option<Vec<PartialArg<'a>>>,
    /// More of this call follows in later chunks.
    #[serde(default)]
    pub(super) will_continue: Option<bool>,
}

/// One `partialArgs` entry: a value at a JSON path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PartialArg<'a> {
    #[serde(borrow, default)]
    pub(super) json_path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    string_value: Option<Cow<'a, str>>,
    #[serde(default)]
    number_value: Option<serde_json::Number>,
    #[serde(default)]
    bool_value: Option<bool>,
    /// Present (whatever it holds, `null` included) for a null value.
    #[serde(default, deserialize_with = "present")]
    null_value: Option<Value>,
    #[serde(default)]
    will_continue: Option<bool>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl<'a> PartialArg<'a> {
    fn loose(value: &'a Value) -> Self {
        Self {
            json_path: cow_at(value, &["jsonPath"]),
            string_value: cow_at(value, &["stringValue"]),
            number_value: get(value, &["numberValue"])
                .and_then(Value::as_number)
                .cloned(),
            bool_value: get(value, &["boolValue"]).and_then(Value::as_bool),
            null_value: get(value, &["nullValue"]).cloned(),
            will_continue: get(value, &["willContinue"]).and_then(Value::as_bool),
        }
    }

    /// The value this entry sets; `None` for one that holds none.
    pub(super) fn piece(&self) -> Option<Piece<'_>> {
        if let Some(text) = &self.string_value {
            Some(Piece::Text {
                fragment: text,
                continues: self.will_continue == Some(true),
            })
        } else if let Some(number) = &self.number_value {
            Some(Piece::Scalar(Value::Number(number.clone())))
        } else if let Some(flag) = self.bool_value {
            Some(Piece::Scalar(Value::Bool(flag)))
        } else {
            self.null_value.as_ref().map(|_| Piece::Scalar(Value::Null))
        }
    }
}

/// What a part holds for the reply.
pub(super) enum Read<'a> {
    /// Visible text (empty for a thought summary, which is not part of the answer).
    Text(Cow<'a, str>),
    Call(FunctionCall<'a>),
    Nothing,
}

impl<'a> Candidate<'a> {
    pub(super) fn parts(self) -> impl Iterator<Item = Read<'a>> {
        let parts = self.content.and_then(|c| c.parts).unwrap_or_default();
        parts.into_iter().map(|part| {
            if part.thought == Some(true) {
                Read::Text(Cow::Borrowed(""))
            } else if let Some(text) = part.text {
                Read::Text(text)
            } else if let Some(call) = part.function_call {
                Read::Call(call)
            } else {
                Read::Nothing
            }
        })
    }
}

impl FunctionCall<'_> {
    pub(super) fn tool_call(self, index: usize) -> ToolCall {
        let name = self.name.map(Cow::into_owned).unwrap_or_default();
        ToolCall {
            id: call_id(self.id, &name, index),
            arguments: self.args.map_or_else(|| "{}".to_owned(), |a| a.to_string()),
            name,
        }
    }

    /// Whether this part is a piece of a call streamed over several chunks.
    pub(super) fn is_partial(&self) -> bool {
        self.will_continue == Some(true) || self.partial_args.is_some()
    }

    /// Whether this part says nothing: the `functionCall: {}` that ends a streamed call.
    pub(super) fn is_empty(&self) -> bool {
        self.name.is_none() && self.args.is_none() && !self.is_partial()
    }
}

/// The call's id: older models send none, and the name and position identify the call.
pub(super) fn call_id(id: Option<Cow<'_, str>>, name: &str, index: usize) -> String {
    id.map_or_else(|| format!("{name}-{index}"), Cow::into_owned)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
}

impl UsageMetadata {
    fn loose(value: &Value) -> Self {
        Self {
            prompt_token_count: u64_at(value, &["promptTokenCount"]),
            tool_use_prompt_token_count: u64_at(value, &["toolUsePromptTokenCount"]),
            candidates_token_count: u64_at(value, &["candidatesTokenCount"]),
            cached_content_token_count: u64_at(value, &["cachedContentTokenCount"]),
            thoughts_token_count: u64_at(value, &["thoughtsTokenCount"]),
        }
    }
}

/// `promptTokenCount` includes cached tokens; thoughts are output the unified model
/// counts in `output_tokens` (and again in `reasoning_tokens`).
impl From<UsageMetadata> for Usage {
    fn from(usage: UsageMetadata) -> Self {
        let thoughts = usage.thoughts_token_count.unwrap_or(0);
        Usage::new(
            usage.prompt_token_count.unwrap_or(0) + usage.tool_use_prompt_token_count.unwrap_or(0),
            usage.candidates_token_count.unwrap_or(0) + thoughts,
        )
        .with_cached_input(usage.cached_content_token_count.unwrap_or(0))
        .with_reasoning(thoughts)
    }
}
