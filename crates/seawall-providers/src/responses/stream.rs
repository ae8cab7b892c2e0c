//! The Responses API's typed stream events as [`StreamEvent`]s.

use seawall_core::{FinishReason, StreamEvent};
use serde::de::Error as _;
use serde_json::Value;

use super::decode::{finish_reason, tool_call, usage};
use super::error::{from_error_event, from_failed_response};
use crate::dialect::{Flow, Malformed, StreamDecoder};
use crate::json::{get, str_at, u64_at};
use crate::sse::SseEvent;

/// Decodes a Responses API stream: `event: <type>` / `data: {"type":…,
/// "sequence_number":n,…}`, with no `[DONE]`.
///
/// - `response.output_text.delta` is text; `response.output_item.added` of a
///   `function_call` opens a tool call (its `call_id` and name) and
///   `response.function_call_arguments.delta` adds to the arguments of the call its
///   `item_id` (or `output_index`) names.
/// - `response.completed` and `response.incomplete` end the message: their response's usage,
///   then the finish reason.
/// - `response.failed` and `error` end the stream in an error classified as OpenAI's are.
/// - Every other event type (reasoning, the server's own tools, annotations) is ignored.
/// - `sequence_number`s must increase by one: an event that repeats or goes back is
///   dropped as malformed; one that skips ahead is decoded, then reported as malformed
///   (events were lost).
#[derive(Debug, Default)]
pub struct ResponsesStreamDecoder {
    started: bool,
    last_sequence: Option<u64>,
    /// The tool calls so far; a call's position is its [`StreamEvent::ToolCallDelta`] index.
    calls: Vec<Call>,
}

/// One tool call of the stream, and how its events name it.
#[derive(Debug)]
struct Call {
    item_id: Option<String>,
    output_index: Option<u64>,
    /// Whether argument text was already sent for it (a `done` event repeats it all).
    has_arguments: bool,
}

fn malformed(problem: String) -> Malformed {
    Malformed(serde_json::Error::custom(problem))
}

impl ResponsesStreamDecoder {
    fn start(&mut self, event: &Value, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            let response = get(event, &["response"]);
            out.push(StreamEvent::Start {
                id: response.and_then(|r| str_at(r, &["id"])).map(str::to_owned),
                model: response
                    .and_then(|r| str_at(r, &["model"]))
                    .map(str::to_owned),
            });
        }
    }

    /// The position of the tool call an event (or its item) names: by item id, else by
    /// output index.
    fn call_at(&self, item_id: Option<&str>, output_index: Option<u64>) -> Option<usize> {
        item_id
            .and_then(|id| {
                self.calls
                    .iter()
                    .position(|c| c.item_id.as_deref() == Some(id))
            })
            .or_else(|| {
                let output = output_index?;
                self.calls
                    .iter()
                    .position(|c| c.output_index == Some(output))
            })
    }

    /// A `function_call` item appeared (or, never announced, completed): opens its call.
    fn open_call(&mut self, event: &Value, item: &Value, out: &mut Vec<StreamEvent>) {
        let item_id = str_at(item, &["id"]);
        let output_index = u64_at(event, &["output_index"]);
        if self.call_at(item_id, output_index).is_some() {
            return;
        }
        let call = tool_call(item);
        self.calls.push(Call {
            item_id: item_id.map(str::to_owned),
            output_index,
            has_arguments: !call.arguments.is_empty(),
        });
        out.push(StreamEvent::ToolCallDelta {
            index: call_index(self.calls.len() - 1),
            id: Some(call.id),
            name: Some(call.name),
            arguments: call.arguments,
        });
    }

    /// Argument text for the call the event names: a `delta`, or the whole text of a `done`
    /// event when no delta came before it.
    fn arguments(
        &mut self,
        item_id: Option<&str>,
        output_index: Option<u64>,
        text: &str,
        whole: bool,
        out: &mut Vec<StreamEvent>,
    ) {
        let Some(position) = self.call_at(item_id, output_index) else {
            return;
        };
        let call = &mut self.calls[position];
        if text.is_empty() || (whole && call.has_arguments) {
            return;
        }
        call.has_arguments = true;
        out.push(StreamEvent::ToolCallDelta {
            index: call_index(position),
            id: None,
            name: None,
            arguments: text.to_owned(),
        });
    }

    /// Checks the event's `sequence_number` follows the last one. `Err` for a repeat or a
    /// step back (drop the event), `Ok(Some(gap))` for a step forward past missing events.
    fn check_sequence(&mut self, event: &Value) -> Result<Option<String>, Malformed> {
        let Some(number) = u64_at(event, &["sequence_number"]) else {
            return Ok(None);
        };
        let Some(last) = self.last_sequence else {
            self.last_sequence = Some(number);
            return Ok(None);
        };
        if number <= last {
            return Err(malformed(format!(
                "sequence_number {number} after {last}: a repeated or out-of-order event"
            )));
        }
        self.last_sequence = Some(number);
        Ok((number != last + 1)
            .then(|| format!("sequence_number {number} after {last}: events are missing")))
    }

    fn decode_event(&mut self, kind: &str, event: &Value, out: &mut Vec<StreamEvent>) -> Flow {
        match kind {
            "response.output_text.delta" => {
                if let Some(text) = str_at(event, &["delta"]).filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta(text.to_owned()));
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = get(event, &["item"])
                    && str_at(item, &["type"]) == Some("function_call")
                {
                    self.open_call(event, item, out);
                    if kind == "response.output_item.done" {
                        let arguments = str_at(item, &["arguments"]).unwrap_or_default();
                        let output_index = u64_at(event, &["output_index"]);
                        self.arguments(str_at(item, &["id"]), output_index, arguments, true, out);
                    }
                }
            }
            "response.function_call_arguments.delta" => {
                let delta = str_at(event, &["delta"]).unwrap_or_default();
                let (item_id, output_index) = names(event);
                self.arguments(item_id, output_index, delta, false, out);
            }
            "response.function_call_arguments.done" => {
                let arguments = str_at(event, &["arguments"]).unwrap_or_default();
                let (item_id, output_index) = names(event);
                self.arguments(item_id, output_index, arguments, true, out);
            }
            "response.completed" | "response.incomplete" => {
                let response = get(event, &["response"]).unwrap_or(&Value::Null);
                if let Some(value) = get(response, &["usage"]) {
                    out.push(StreamEvent::Usage(usage(value)));
                }
                let called_tools = !self.calls.is_empty();
                let mut reason = finish_reason(response, called_tools);
                if kind == "response.incomplete" && reason == FinishReason::Stop {
                    reason = FinishReason::Other("incomplete".to_owned());
                }
                out.push(StreamEvent::Finish(reason));
                return Flow::End;
            }
            "response.failed" => {
                let response = get(event, &["response"]).unwrap_or(&Value::Null);
                out.push(StreamEvent::Error(from_failed_response(response)));
                return Flow::End;
            }
            "error" => {
                out.push(StreamEvent::Error(from_error_event(event)));
                return Flow::End;
            }
            _ => {}
        }
        Flow::Continue
    }
}

impl StreamDecoder for ResponsesStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed> {
        let data = event.data.trim();
        // Some servers that copy the API end with chat completions' marker; the terminal
        // event has already come by then (or the stream is truncated).
        if data.is_empty() || data == "[DONE]" {
            return Ok(Flow::Continue);
        }
        let value: Value = serde_json::from_str(data)?;
        if !value.is_object() {
            return Err(malformed("an event's data is not an object".to_owned()));
        }
        let gap = self.check_sequence(&value)?;
        let kind = str_at(&value, &["type"])
            .or(event.event.as_deref())
            .unwrap_or_default()
            .to_owned();
        self.start(&value, out);
        let flow = self.decode_event(&kind, &value, out);
        match gap {
            Some(gap) if flow == Flow::Continue => Err(malformed(gap)),
            _ => Ok(flow),
        }
    }

    fn finish(&mut self, _clean: bool, _out: &mut Vec<StreamEvent>) -> bool {
        // The end of message is an event (`response.completed`, `response.incomplete`),
        // which ends the stream itself: a body that ends without one is truncated.
        false
    }
}

/// The item id and output index an argument event names its call by.
fn names(event: &Value) -> (Option<&str>, Option<u64>) {
    (
        str_at(event, &["item_id"]),
        u64_at(event, &["output_index"]),
    )
}

fn call_index(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}
