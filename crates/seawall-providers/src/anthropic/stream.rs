//! Streamed message events.

use seawall_core::{FinishReason, StreamEvent};
use serde_json::Value;

use super::decode::{UsageTotals, stop_reason};
use super::error::anthropic_error;
use super::wire;
use crate::dialect::{Flow, Malformed, StreamDecoder};
use crate::json::{get, is_object, str_at};
use crate::sse::SseEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Tool { call: u32, has_arguments: bool },
    Other,
}

/// Decodes Anthropic message events, dispatching on the JSON `type` (so a stream whose
/// `event:` lines were stripped decodes too). Only client `tool_use` blocks become tool
/// calls; server tools, thinking and their results are not the caller's to act on.
#[derive(Debug, Default)]
pub struct AnthropicStreamDecoder {
    blocks: Vec<(u64, Block)>,
    tool_calls: u32,
    usage: UsageTotals,
    stop: Option<FinishReason>,
}

impl AnthropicStreamDecoder {
    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, block)| block)
    }
}

impl AnthropicStreamDecoder {
    fn content_delta(
        &mut self,
        index: u64,
        delta: Option<wire::Delta<'_>>,
        out: &mut Vec<StreamEvent>,
    ) {
        let Some(delta) = delta else { return };
        match (self.block(index).copied(), delta.kind.as_deref()) {
            (Some(Block::Text), Some("text_delta")) => {
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta(text.into_owned()));
                }
            }
            (Some(Block::Tool { call, .. }), Some("input_json_delta")) => {
                if let Some(fragment) = delta.partial_json.filter(|f| !f.is_empty()) {
                    out.push(StreamEvent::ToolCallDelta {
                        index: call,
                        id: None,
                        name: None,
                        arguments: fragment.into_owned(),
                    });
                    if let Some(Block::Tool { has_arguments, .. }) = self.block(index) {
                        *has_arguments = true;
                    }
                }
            }
            _ => {}
        }
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed> {
        // Content deltas, nearly all of a stream, are read typed; the other events, and
        // deltas with fields of unexpected types, are read loosely.
        if is_object(event.data.as_bytes())
            && let Ok(typed) = serde_json::from_str::<wire::Event<'_>>(&event.data)
            && typed.kind.as_deref().or(event.event.as_deref()) == Some("content_block_delta")
        {
            self.content_delta(typed.index.unwrap_or(0), typed.delta, out);
            return Ok(Flow::Continue);
        }
        let value: Value = serde_json::from_str(&event.data)?;
        let kind = str_at(&value, &["type"]).or(event.event.as_deref());
        let index = get(&value, &["index"]).and_then(Value::as_u64).unwrap_or(0);
        match kind {
            Some("message_start") => {
                out.push(StreamEvent::Start {
                    id: str_at(&value, &["message", "id"]).map(str::to_owned),
                    model: str_at(&value, &["message", "model"]).map(str::to_owned),
                });
                if let Some(usage) = get(&value, &["message", "usage"]) {
                    self.usage.merge(&wire::Usage::loose(usage));
                    out.push(StreamEvent::Usage(self.usage.usage()));
                }
            }
            Some("content_block_start") => {
                let block = get(&value, &["content_block"]).unwrap_or(&Value::Null);
                let kind = match str_at(block, &["type"]) {
                    Some("text") => {
                        if let Some(text) = str_at(block, &["text"]).filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta(text.to_owned()));
                        }
                        Block::Text
                    }
                    Some("tool_use") => {
                        let call = self.tool_calls;
                        self.tool_calls += 1;
                        // A start block may already hold the whole input.
                        let arguments = get(block, &["input"])
                            .filter(|input| input.as_object().is_some_and(|o| !o.is_empty()))
                            .map(Value::to_string)
                            .unwrap_or_default();
                        let has_arguments = !arguments.is_empty();
                        out.push(StreamEvent::ToolCallDelta {
                            index: call,
                            id: str_at(block, &["id"]).map(str::to_owned),
                            name: str_at(block, &["name"]).map(str::to_owned),
                            arguments,
                        });
                        Block::Tool {
                            call,
                            has_arguments,
                        }
                    }
                    _ => Block::Other,
                };
                self.blocks.push((index, kind));
            }
            Some("content_block_delta") => {
                let delta = get(&value, &["delta"]).map(wire::Delta::loose);
                self.content_delta(index, delta, out);
            }
            Some("content_block_stop") => {
                if let Some(Block::Tool {
                    call,
                    has_arguments: false,
                }) = self.block(index).copied()
                {
                    // A call without arguments: make the joined arguments valid JSON.
                    out.push(StreamEvent::ToolCallDelta {
                        index: call,
                        id: None,
                        name: None,
                        arguments: "{}".to_owned(),
                    });
                }
            }
            Some("message_delta") => {
                if let Some(reason) = str_at(&value, &["delta", "stop_reason"]) {
                    self.stop = Some(stop_reason(reason));
                }
                if let Some(usage) = get(&value, &["usage"]) {
                    self.usage.merge(&wire::Usage::loose(usage));
                    out.push(StreamEvent::Usage(self.usage.usage()));
                }
            }
            Some("message_stop") => {
                out.push(StreamEvent::Finish(
                    self.stop.take().unwrap_or(FinishReason::Stop),
                ));
                return Ok(Flow::End);
            }
            Some("error") => {
                out.push(StreamEvent::Error(anthropic_error(None, &value)));
                return Ok(Flow::End);
            }
            _ => {} // ping and event types added later
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _clean: bool, _out: &mut Vec<StreamEvent>) -> bool {
        // Only `message_stop` completes a message, and it ends decoding by itself.
        false
    }
}
