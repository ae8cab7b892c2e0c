//! Streams: `event: <name>` / `data: <json>` frames in Anthropic's order.
//!
//! `message_start` (an empty message) → per content block `content_block_start`, its
//! `content_block_delta`s and `content_block_stop` (one `ping` after the first block
//! opens, where the API sends it) → `message_delta` (stop reason and usage) →
//! `message_stop`; or, once something failed, one `error` event and nothing after it.

use serde::Serialize;

use seawall_core::{Cost, ErrorKind, FinishReason, Usage};

use super::{ErrorBody, ErrorObject, OutUsage, Seawall, error_type, stop_reason};

/// The ping as the API writes it (with a space after the colon).
const PING: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";

/// The content block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text { block: u32 },
    Tool { call: u32, block: u32 },
}

/// Writes one stream's frames as the Anthropic Messages API frames them.
#[derive(Debug)]
pub(crate) struct StreamWriter {
    id: String,
    model: String,
    started: bool,
    /// After `end` or `error`, nothing more is written.
    over: bool,
    pinged: bool,
    open: Option<Open>,
    /// The index the next content block gets.
    next_block: u32,
    /// Tool calls seen so far: (the call's index upstream, its block index).
    tool_blocks: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: StartMessage<'a>,
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: (),
    stop_sequence: (),
    usage: OutUsage,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: StartBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: Delta<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: DeltaUsage,
    seawall: Seawall,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: (),
}

/// `message_delta.usage`: cumulative counts; only `output_tokens` when usage is unknown.
#[derive(Serialize)]
#[serde(untagged)]
enum DeltaUsage {
    Known(OutUsage),
    Unknown { output_tokens: u64 },
}

#[derive(Serialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: &'static str,
}

fn frame(out: &mut Vec<u8>, event: &str, data: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing into a `Vec` cannot fail: every map key is a string.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

impl StreamWriter {
    /// A writer for the message `id`, answered by `model`. Anthropic's frames carry no
    /// creation time.
    pub(crate) fn new(id: String, model: String, _created: u64) -> Self {
        Self {
            id,
            model,
            started: false,
            over: false,
            pinged: false,
            open: None,
            next_block: 0,
            tool_blocks: Vec::new(),
            finish: None,
        }
    }

    /// After a mid-stream recovery a different model answers. Anthropic names the model
    /// only in `message_start`, so a change after it shows nowhere; before it, it does.
    pub(crate) fn set_model(&mut self, model: String) {
        self.model = model;
    }

    /// `message_start`: the message with no content yet. Its usage is zero: the counts
    /// arrive with `message_delta`, whose cumulative usage the SDKs take over.
    pub(crate) fn start(&mut self, out: &mut Vec<u8>) {
        if self.started || self.over {
            return;
        }
        self.started = true;
        let start = MessageStart {
            kind: "message_start",
            message: StartMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: (),
                stop_sequence: (),
                usage: OutUsage::zero(),
            },
        };
        frame(out, "message_start", &start);
    }

    /// A text fragment: in the open text block, or in a new one.
    pub(crate) fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        if self.over || text.is_empty() {
            return;
        }
        self.start(out);
        let block = match self.open {
            Some(Open::Text { block }) => block,
            _ => {
                let block = self.open_block(out, StartBlock::Text { text: "" });
                self.open = Some(Open::Text { block });
                block
            }
        };
        let delta = BlockDelta {
            kind: "content_block_delta",
            index: block,
            delta: Delta::TextDelta { text },
        };
        frame(out, "content_block_delta", &delta);
    }

    /// A tool-call fragment. The first fragment of call `index` opens its `tool_use` block
    /// (with `id` and `name`); argument text goes out as `input_json_delta`s.
    pub(crate) fn tool_call(
        &mut self,
        out: &mut Vec<u8>,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        if self.over {
            return;
        }
        self.start(out);
        let known = self
            .tool_blocks
            .iter()
            .find(|(call, _)| *call == index)
            .map(|(_, block)| *block);
        let block = match (self.open, known) {
            (Some(Open::Tool { call, block }), _) if call == index => block,
            // A fragment of a call whose block was closed (providers stream calls one after
            // another, so this is rare): it goes to that block, which the SDKs accumulate
            // by index.
            (_, Some(block)) => block,
            _ => {
                let generated;
                let id = match id {
                    Some(id) if !id.is_empty() => id,
                    _ => {
                        generated = format!("toolu_{}_{index}", self.id);
                        &generated
                    }
                };
                let start = StartBlock::ToolUse {
                    id,
                    name: name.unwrap_or_default(),
                    input: Empty {},
                };
                let block = self.open_block(out, start);
                self.open = Some(Open::Tool { call: index, block });
                self.tool_blocks.push((index, block));
                block
            }
        };
        if !arguments.is_empty() {
            let delta = BlockDelta {
                kind: "content_block_delta",
                index: block,
                delta: Delta::InputJsonDelta {
                    partial_json: arguments,
                },
            };
            frame(out, "content_block_delta", &delta);
        }
    }

    /// Remembers the finish reason for `message_delta`.
    pub(crate) fn finish(&mut self, _out: &mut Vec<u8>, reason: &FinishReason) {
        self.finish = Some(reason.clone());
    }

    /// Closes the open block, then `message_delta` with the stop reason, the usage
    /// (`output_tokens: 0` when unknown) and the cost, then `message_stop`.
    pub(crate) fn end(&mut self, out: &mut Vec<u8>, usage: Option<&Usage>, cost: Option<Cost>) {
        if self.over {
            return;
        }
        self.start(out);
        self.close_block(out);
        self.over = true;
        let delta = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: stop_reason(self.finish.as_ref(), !self.tool_blocks.is_empty()),
                stop_sequence: (),
            },
            usage: usage.map_or(DeltaUsage::Unknown { output_tokens: 0 }, |usage| {
                DeltaUsage::Known(OutUsage::from(usage))
            }),
            seawall: Seawall {
                cost_usd: cost.map(Cost::usd),
            },
        };
        frame(out, "message_delta", &delta);
        frame(
            out,
            "message_stop",
            &Kind {
                kind: "message_stop",
            },
        );
    }

    /// The in-band `error` event, as the API sends after a 200 (the SDKs raise it as an
    /// `APIStatusError`); nothing follows it.
    pub(crate) fn error(&mut self, out: &mut Vec<u8>, message: &str, kind: ErrorKind) {
        if self.over {
            return;
        }
        self.over = true;
        let event = ErrorBody {
            kind: "error",
            error: ErrorObject {
                kind: error_type(kind),
                message,
                details: None,
            },
        };
        frame(out, "error", &event);
    }

    /// Closes the open block and opens one: `content_block_start`, and the stream's ping
    /// after the first.
    fn open_block(&mut self, out: &mut Vec<u8>, block: StartBlock<'_>) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        let start = BlockStart {
            kind: "content_block_start",
            index,
            content_block: block,
        };
        frame(out, "content_block_start", &start);
        if !self.pinged {
            self.pinged = true;
            out.extend_from_slice(PING);
        }
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let (Open::Text { block } | Open::Tool { block, .. }) = open;
        let stop = BlockStop {
            kind: "content_block_stop",
            index: block,
        };
        frame(out, "content_block_stop", &stop);
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
