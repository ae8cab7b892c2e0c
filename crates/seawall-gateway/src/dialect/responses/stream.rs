//! A streamed answer as the Responses API's typed SSE events:
//! `event: <type>\ndata: {"type":<type>,…,"sequence_number":n}\n\n`, no `[DONE]`.
//!
//! Each output item (a message, a function call) is opened (`response.output_item.added`),
//! filled by deltas and closed (`….done`, `response.output_item.done`) before the next one
//! opens, as the real API does; the stream ends with `response.completed` (or
//! `response.incomplete`) carrying the whole response, or with an `error` event and
//! `response.failed`.

use serde::Serialize;

use seawall_core::{Cost, ErrorKind, FinishReason, Usage};

use super::encode::{
    Items, OutputItem, ResponseError, ResponseState, Status, TextPart, incomplete_reason,
};
use super::item_id;

/// One output item as streamed so far.
#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
        status: Status,
    },
    Call {
        /// The upstream's tool-call index.
        index: u32,
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: Status,
    },
}

impl Item {
    fn view(&self) -> OutputItem<'_> {
        match self {
            Self::Message { id, text, status } => OutputItem::Message {
                id,
                status: *status,
                text: Some(text),
                refusal: None,
            },
            Self::Call {
                id,
                call_id,
                name,
                arguments,
                status,
                ..
            } => OutputItem::FunctionCall {
                id,
                status: *status,
                call_id,
                name,
                arguments,
            },
        }
    }
}

/// Writes one stream's SSE events, event by event.
#[derive(Debug)]
pub(crate) struct StreamWriter {
    id: String,
    model: String,
    created: u64,
    /// The next event's `sequence_number`.
    sequence: u64,
    started: bool,
    /// The closing events are written: nothing follows them.
    ended: bool,
    items: Vec<Item>,
    /// The item still taking deltas (its position in `items`, which is its output index).
    open: Option<usize>,
    finish: Option<FinishReason>,
}

#[derive(Serialize)]
struct Event<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: T,
    sequence_number: u64,
}

/// Writes one event and advances the sequence number.
fn frame<T: Serialize>(out: &mut Vec<u8>, sequence: &mut u64, kind: &'static str, body: T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let event = Event {
        kind,
        body,
        sequence_number: *sequence,
    };
    // Writing into a `Vec` cannot fail: every map key is a string.
    let _ = serde_json::to_writer(&mut *out, &event);
    out.extend_from_slice(b"\n\n");
    *sequence += 1;
}

#[derive(Serialize)]
struct Lifecycle<R> {
    response: R,
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    item: OutputItem<'a>,
    output_index: usize,
}

#[derive(Serialize)]
struct PartEvent<'a> {
    content_index: u32,
    item_id: &'a str,
    output_index: usize,
    part: TextPart<'a>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    content_index: u32,
    delta: &'a str,
    item_id: &'a str,
    logprobs: [(); 0],
    output_index: usize,
}

#[derive(Serialize)]
struct TextDone<'a> {
    content_index: u32,
    item_id: &'a str,
    logprobs: [(); 0],
    output_index: usize,
    text: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    delta: &'a str,
    item_id: &'a str,
    output_index: usize,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    arguments: &'a str,
    item_id: &'a str,
    output_index: usize,
}

/// The in-band error as real traffic nests it (the SDKs raise on its `error` key).
#[derive(Serialize)]
struct ErrorEvent<'a> {
    error: InBandError<'a>,
}

#[derive(Serialize)]
struct InBandError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    message: &'a str,
    param: (),
}

/// OpenAI's error `type` and `code` for a failure class; classes OpenAI has no code for keep
/// the gateway's own name, which tells the client what broke.
fn error_class(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::RateLimited => ("rate_limit_error", "rate_limit_exceeded"),
        ErrorKind::QuotaExhausted => ("insufficient_quota", "insufficient_quota"),
        ErrorKind::ContextLengthExceeded => ("invalid_request_error", "context_length_exceeded"),
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge | ErrorKind::ContentFiltered => {
            ("invalid_request_error", kind.as_str())
        }
        _ => ("server_error", kind.as_str()),
    }
}

impl StreamWriter {
    /// A writer for response `id` (`resp_…`), answered by `model`, created at `created`
    /// (Unix seconds).
    pub(crate) fn new(id: String, model: String, created: u64) -> Self {
        Self {
            id,
            model,
            created,
            sequence: 0,
            started: false,
            ended: false,
            items: Vec::new(),
            open: None,
            finish: None,
        }
    }

    /// After a mid-stream recovery a different model answers: the final response names it.
    pub(crate) fn set_model(&mut self, model: String) {
        self.model = model;
    }

    fn lifecycle(&mut self, out: &mut Vec<u8>, kind: &'static str, state: LifecycleState<'_>) {
        let output: Vec<OutputItem<'_>> = self.items.iter().map(Item::view).collect();
        let response = ResponseState {
            id: &self.id,
            model: &self.model,
            created: self.created,
            status: state.status,
            incomplete: state.incomplete,
            error: state.error,
            output: Items(&output),
            usage: state.usage,
            cost: state.cost,
        };
        frame(
            out,
            &mut self.sequence,
            kind,
            Lifecycle {
                response: response.to_object(),
            },
        );
    }

    /// The opening events, `response.created` and `response.in_progress`; written once,
    /// before anything else (the other methods write them first if they were not).
    pub(crate) fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        for kind in ["response.created", "response.in_progress"] {
            self.lifecycle(out, kind, LifecycleState::in_progress());
        }
    }

    /// A text fragment: opens a message item when none is open.
    pub(crate) fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        if self.ended || text.is_empty() {
            return;
        }
        self.start(out);
        let position = match self.open {
            Some(position) if matches!(self.items[position], Item::Message { .. }) => position,
            _ => {
                self.close_open(out, Status::Completed);
                let position = self.items.len();
                let id = item_id("msg", &self.id, position);
                let item = OutputItem::Message {
                    id: &id,
                    status: Status::InProgress,
                    text: None,
                    refusal: None,
                };
                let added = ItemEvent {
                    item,
                    output_index: position,
                };
                frame(out, &mut self.sequence, "response.output_item.added", added);
                let part = PartEvent {
                    content_index: 0,
                    item_id: &id,
                    output_index: position,
                    part: TextPart::new(""),
                };
                frame(out, &mut self.sequence, "response.content_part.added", part);
                self.items.push(Item::Message {
                    id,
                    text: String::new(),
                    status: Status::InProgress,
                });
                self.open = Some(position);
                position
            }
        };
        if let Item::Message {
            id, text: so_far, ..
        } = &mut self.items[position]
        {
            so_far.push_str(text);
            let delta = TextDelta {
                content_index: 0,
                delta: text,
                item_id: id,
                logprobs: [],
                output_index: position,
            };
            frame(out, &mut self.sequence, "response.output_text.delta", delta);
        }
    }

    /// A tool-call fragment: the first of call `index` opens its `function_call` item
    /// (closing the item before it), later ones extend its arguments.
    pub(crate) fn tool_call(
        &mut self,
        out: &mut Vec<u8>,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        if self.ended {
            return;
        }
        self.start(out);
        let known = self
            .items
            .iter()
            .position(|item| matches!(item, Item::Call { index: i, .. } if *i == index));
        let position = match known {
            Some(position) => position,
            None => {
                self.close_open(out, Status::Completed);
                let position = self.items.len();
                let item = Item::Call {
                    index,
                    id: item_id("fc", &self.id, position),
                    call_id: id.map_or_else(|| item_id("call", &self.id, position), str::to_owned),
                    name: name.unwrap_or_default().to_owned(),
                    arguments: String::new(),
                    status: Status::InProgress,
                };
                let added = ItemEvent {
                    item: item.view(),
                    output_index: position,
                };
                frame(out, &mut self.sequence, "response.output_item.added", added);
                self.items.push(item);
                self.open = Some(position);
                position
            }
        };
        if let Item::Call {
            id: item,
            name: so_far_name,
            arguments: so_far,
            ..
        } = &mut self.items[position]
        {
            // A name that comes after the first fragment still reaches the final object.
            if let Some(name) = name
                && so_far_name.is_empty()
            {
                name.clone_into(so_far_name);
            }
            if !arguments.is_empty() {
                so_far.push_str(arguments);
                // Even for a call already closed (an upstream that interleaves calls): the
                // SDKs add any delta to its item, and the final object has the whole text.
                let delta = ArgumentsDelta {
                    delta: arguments,
                    item_id: item,
                    output_index: position,
                };
                frame(
                    out,
                    &mut self.sequence,
                    "response.function_call_arguments.delta",
                    delta,
                );
            }
        }
    }

    /// The `….done` events of the open item, which ends with `status`.
    fn close_open(&mut self, out: &mut Vec<u8>, status: Status) {
        let Some(position) = self.open.take() else {
            return;
        };
        let item = &mut self.items[position];
        match item {
            Item::Message {
                id,
                text,
                status: s,
            } => {
                *s = status;
                let done = TextDone {
                    content_index: 0,
                    item_id: id,
                    logprobs: [],
                    output_index: position,
                    text,
                };
                frame(out, &mut self.sequence, "response.output_text.done", done);
                let part = PartEvent {
                    content_index: 0,
                    item_id: id,
                    output_index: position,
                    part: TextPart::new(text),
                };
                frame(out, &mut self.sequence, "response.content_part.done", part);
            }
            Item::Call {
                id,
                arguments,
                status: s,
                ..
            } => {
                *s = status;
                let done = ArgumentsDone {
                    arguments,
                    item_id: id,
                    output_index: position,
                };
                frame(
                    out,
                    &mut self.sequence,
                    "response.function_call_arguments.done",
                    done,
                );
            }
        }
        let done = ItemEvent {
            item: self.items[position].view(),
            output_index: position,
        };
        frame(out, &mut self.sequence, "response.output_item.done", done);
    }

    /// The upstream's finish reason: remembered for the closing events.
    pub(crate) fn finish(&mut self, _out: &mut Vec<u8>, reason: &FinishReason) {
        self.finish = Some(reason.clone());
    }

    /// The stream completed: the open item closes, then `response.completed` (or
    /// `response.incomplete` when the output was cut at its cap or filtered) carries the
    /// whole response, with `usage` (`None`: unknown) and the cost in its `seawall` field.
    pub(crate) fn end(&mut self, out: &mut Vec<u8>, usage: Option<&Usage>, cost: Option<Cost>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.ended = true;
        let incomplete = incomplete_reason(self.finish.as_ref());
        let (status, kind) = match incomplete {
            Some(_) => (Status::Incomplete, "response.incomplete"),
            None => (Status::Completed, "response.completed"),
        };
        self.close_open(out, status);
        let state = LifecycleState {
            status,
            incomplete,
            error: None,
            usage,
            cost: Some(cost),
        };
        self.lifecycle(out, kind, state);
    }

    /// The stream failed after its first event: an `error` event, then `response.failed`
    /// with what was produced; nothing follows.
    pub(crate) fn error(&mut self, out: &mut Vec<u8>, message: &str, kind: ErrorKind) {
        if self.ended {
            return;
        }
        self.start(out);
        self.ended = true;
        let (kind, code) = error_class(kind);
        let error = ErrorEvent {
            error: InBandError {
                kind,
                code,
                message,
                param: (),
            },
        };
        frame(out, &mut self.sequence, "error", error);
        let state = LifecycleState {
            status: Status::Failed,
            incomplete: None,
            error: Some(ResponseError { code, message }),
            usage: None,
            cost: None,
        };
        self.lifecycle(out, "response.failed", state);
    }
}

/// What a lifecycle event's response says beyond the items.
struct LifecycleState<'a> {
    status: Status,
    incomplete: Option<&'static str>,
    error: Option<ResponseError<'a>>,
    usage: Option<&'a Usage>,
    cost: Option<Option<Cost>>,
}

impl LifecycleState<'_> {
    fn in_progress() -> Self {
        Self {
            status: Status::InProgress,
            incomplete: None,
            error: None,
            usage: None,
            cost: None,
        }
    }
}
