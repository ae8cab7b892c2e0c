//! The `response` object: the body of a non-streamed answer, and the payload of a stream's
//! lifecycle events (`response.created`, `response.completed`, ...).
//!
//! Typed structs that borrow what they write, with the keys in the order the real API
//! writes them.

use serde::Serialize;

use seawall_core::{ChatResponse, Cost, FinishReason, Usage};

use super::item_id;

/// The status of a response or of one of its output items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Status {
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

/// Why a response is `incomplete`, from the upstream's finish reason (`None`: it is not).
pub(super) fn incomplete_reason(finish: Option<&FinishReason>) -> Option<&'static str> {
    match finish {
        Some(FinishReason::Length) => Some("max_output_tokens"),
        Some(FinishReason::ContentFilter) => Some("content_filter"),
        _ => None,
    }
}

/// One output item, borrowed from whatever holds it.
#[derive(Debug, Clone, Copy)]
pub(super) enum OutputItem<'a> {
    /// An assistant message: its text and, when the model refused, the refusal.
    Message {
        id: &'a str,
        status: Status,
        /// `None` in the `response.output_item.added` event, whose content is still empty.
        text: Option<&'a str>,
        refusal: Option<&'a str>,
    },
    /// A function call.
    FunctionCall {
        id: &'a str,
        status: Status,
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
}

/// An `output_text` content part.
#[derive(Serialize)]
pub(super) struct TextPart<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) annotations: [(); 0],
    pub(super) logprobs: [(); 0],
    pub(super) text: &'a str,
}

impl<'a> TextPart<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            kind: "output_text",
            annotations: [],
            logprobs: [],
            text,
        }
    }
}

#[derive(Serialize)]
struct RefusalPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    refusal: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Text(TextPart<'a>),
    Refusal(RefusalPart<'a>),
}

#[derive(Serialize)]
struct MessageItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: Status,
    content: Vec<Part<'a>>,
    role: &'static str,
}

#[derive(Serialize)]
struct FunctionCallItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: Status,
    arguments: &'a str,
    call_id: &'a str,
    name: &'a str,
}

impl Serialize for OutputItem<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Message {
                id,
                status,
                text,
                refusal,
            } => {
                let mut content = Vec::with_capacity(2);
                if let Some(text) = text {
                    content.push(Part::Text(TextPart::new(text)));
                }
                if let Some(refusal) = refusal {
                    content.push(Part::Refusal(RefusalPart {
                        kind: "refusal",
                        refusal,
                    }));
                }
                MessageItem {
                    id,
                    kind: "message",
                    status,
                    content,
                    role: "assistant",
                }
                .serialize(serializer)
            }
            Self::FunctionCall {
                id,
                status,
                call_id,
                name,
                arguments,
            } => FunctionCallItem {
                id,
                kind: "function_call",
                status,
                arguments,
                call_id,
                name,
            }
            .serialize(serializer),
        }
    }
}

/// `usage`: every detail the SDK's `ResponseUsage` requires.
#[derive(Serialize)]
pub(super) struct OutUsage {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    output_tokens_details: OutputDetails,
    total_tokens: u64,
}

#[derive(Serialize)]
struct InputDetails {
    cache_write_tokens: u64,
    cached_tokens: u64,
}

#[derive(Serialize)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl From<&Usage> for OutUsage {
    fn from(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            input_tokens_details: InputDetails {
                cache_write_tokens: usage.cache_write_tokens,
                cached_tokens: usage.cached_input_tokens,
            },
            output_tokens: usage.output_tokens,
            output_tokens_details: OutputDetails {
                reasoning_tokens: usage.reasoning_tokens,
            },
            total_tokens: usage.total(),
        }
    }
}

/// `response.error` of a failed response.
#[derive(Debug, Serialize)]
pub(super) struct ResponseError<'a> {
    pub(super) code: &'a str,
    pub(super) message: &'a str,
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

/// `"seawall": {"cost_usd": ...}`: what the call cost (`null`: unknown), under one name the
/// SDKs keep aside.
#[derive(Serialize)]
struct Seawall {
    cost_usd: Option<f64>,
}

/// The parts of a `response` object that change over a call.
pub(super) struct ResponseState<'a, I> {
    pub(super) id: &'a str,
    pub(super) model: &'a str,
    pub(super) created: u64,
    pub(super) status: Status,
    pub(super) incomplete: Option<&'static str>,
    pub(super) error: Option<ResponseError<'a>>,
    pub(super) output: I,
    pub(super) usage: Option<&'a Usage>,
    /// `Some` in final objects only: the call's cost, `None` inside when unknown.
    pub(super) cost: Option<Option<Cost>>,
}

/// The `response` object. Request parameters it would echo (`instructions`, `temperature`,
/// `tools`, ...) are not known here, so they read as `null` or their defaults.
#[derive(Serialize)]
struct ResponseObject<'a, I> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: Status,
    background: bool,
    completed_at: Option<u64>,
    error: Option<ResponseError<'a>>,
    incomplete_details: Option<IncompleteDetails>,
    instructions: (),
    max_output_tokens: (),
    model: &'a str,
    output: I,
    parallel_tool_calls: bool,
    previous_response_id: (),
    /// The gateway keeps no responses: a later `previous_response_id` cannot name this one.
    store: bool,
    temperature: (),
    tool_choice: &'static str,
    tools: [(); 0],
    top_p: (),
    truncation: &'static str,
    usage: Option<OutUsage>,
    user: (),
    metadata: Empty,
    #[serde(skip_serializing_if = "Option::is_none")]
    seawall: Option<Seawall>,
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

impl<'a, I: Serialize> ResponseState<'a, I> {
    /// The `response` object in this state.
    pub(super) fn to_object(&self) -> impl Serialize + '_
    where
        I: Copy,
    {
        let settled = matches!(self.status, Status::Completed | Status::Incomplete);
        ResponseObject {
            id: self.id,
            object: "response",
            created_at: self.created,
            status: self.status,
            background: false,
            completed_at: settled.then_some(self.created),
            error: self.error.as_ref().map(|e| ResponseError {
                code: e.code,
                message: e.message,
            }),
            incomplete_details: self.incomplete.map(|reason| IncompleteDetails { reason }),
            instructions: (),
            max_output_tokens: (),
            model: self.model,
            output: self.output,
            parallel_tool_calls: true,
            previous_response_id: (),
            store: false,
            temperature: (),
            tool_choice: "auto",
            tools: [],
            top_p: (),
            truncation: "disabled",
            usage: self.usage.map(OutUsage::from),
            user: (),
            metadata: Empty {},
            seawall: self.cost.map(|cost| Seawall {
                cost_usd: cost.map(Cost::usd),
            }),
        }
    }
}

/// A slice of output items, serialized as a list.
#[derive(Clone, Copy)]
pub(super) struct Items<'a>(pub(super) &'a [OutputItem<'a>]);

impl Serialize for Items<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0)
    }
}

/// The body of a complete (non-streamed) response: `id` is the response id, `model` the
/// model that answered, `created` Unix seconds.
pub(crate) fn encode_response(
    response: &ChatResponse,
    id: &str,
    model: &str,
    created: u64,
) -> Vec<u8> {
    let message = &response.message;
    let incomplete = incomplete_reason(response.finish_reason.as_ref());
    let item_status = if incomplete.is_some() {
        Status::Incomplete
    } else {
        Status::Completed
    };
    let calls = &message.tool_calls;
    // A message item when there is text or a refusal, or nothing else to answer with.
    let has_message = !message.text.is_empty() || message.refusal.is_some() || calls.is_empty();
    let ids: Vec<String> = (0..calls.len() + usize::from(has_message))
        .map(|n| match (has_message, n) {
            (true, 0) => item_id("msg", id, n),
            _ => item_id("fc", id, n),
        })
        .collect();
    let mut output = Vec::with_capacity(ids.len());
    if has_message {
        output.push(OutputItem::Message {
            id: &ids[0],
            status: item_status,
            text: (!message.text.is_empty() || message.refusal.is_none())
                .then_some(message.text.as_str()),
            refusal: message.refusal.as_deref(),
        });
    }
    for (call, item) in calls.iter().zip(&ids[usize::from(has_message)..]) {
        output.push(OutputItem::FunctionCall {
            id: item,
            status: Status::Completed,
            call_id: &call.id,
            name: &call.name,
            arguments: &call.arguments,
        });
    }
    let state = ResponseState {
        id,
        model,
        created,
        status: if incomplete.is_some() {
            Status::Incomplete
        } else {
            Status::Completed
        },
        incomplete,
        error: None,
        output: Items(&output),
        usage: response.usage.as_ref(),
        cost: Some(response.cost),
    };
    serde_json::to_vec(&state.to_object()).unwrap_or_default()
}
