//! Streamed `alt=sse` chunks, function calls streamed in pieces included.

use seawall_core::{StreamEvent, Usage};
use serde_json::Value;

use super::args::ArgsWriter;
use super::decode::finish_reason;
use super::error::{gemini_error, prompt_block};
use super::wire;
use crate::dialect::{Flow, Malformed, StreamDecoder};
use crate::json::get;
use crate::sse::SseEvent;

/// Decodes Gemini `alt=sse` chunks: each one a whole `GenerateContentResponse` with
/// cumulative `usageMetadata`; the one with a `finishReason` ends the message (there is no
/// terminator after it).
#[derive(Debug, Default)]
pub struct GeminiStreamDecoder {
    started: bool,
    tool_calls: u32,
    last_usage: Option<Usage>,
    finish: Option<String>,
    /// A call whose arguments are still streaming (`partialArgs`).
    streamed_call: Option<StreamedCall>,
}

/// A function call streamed over several chunks, not yet ended.
#[derive(Debug)]
struct StreamedCall {
    index: u32,
    arguments: ArgsWriter,
}

impl GeminiStreamDecoder {
    /// The stream's start, on its first chunk.
    fn start(&mut self, chunk: &wire::Response<'_>, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.response_id.as_deref().map(str::to_owned),
                model: chunk.model_version.as_deref().map(str::to_owned),
            });
        }
    }

    fn decode_chunk(&mut self, chunk: wire::Response<'_>, out: &mut Vec<StreamEvent>) {
        self.start(&chunk, out);
        if let Some(candidate) = chunk.candidates.and_then(|c| c.into_iter().next()) {
            let finish = candidate.finish_reason.clone();
            for part in candidate.parts() {
                match part {
                    wire::Read::Text(text) => {
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta(text.into_owned()));
                        }
                    }
                    wire::Read::Call(call) => self.call_part(call, out),
                    wire::Read::Nothing => {}
                }
            }
            if let Some(reason) = finish {
                // The end of message ends a streamed call whose closing part never came.
                self.end_streamed_call(out);
                self.finish = Some(reason.into_owned());
            }
        }
        if let Some(usage) = chunk.usage_metadata.map(Usage::from)
            && self.last_usage != Some(usage)
        {
            self.last_usage = Some(usage);
            out.push(StreamEvent::Usage(usage));
        }
    }
}

impl GeminiStreamDecoder {
    /// A `functionCall` part: a whole call, or a piece of one streamed over several chunks.
    fn call_part(&mut self, call: wire::FunctionCall<'_>, out: &mut Vec<StreamEvent>) {
        // A named part starts a call: one still open lost its closing part.
        if call.name.is_some() {
            self.end_streamed_call(out);
        }
        if self.streamed_call.is_none() {
            if call.is_empty() {
                return;
            }
            let index = self.tool_calls;
            self.tool_calls += 1;
            if !call.is_partial() {
                let call = call.tool_call(index as usize);
                out.push(StreamEvent::ToolCallDelta {
                    index,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments: call.arguments,
                });
                return;
            }
            let name = call.name.as_deref().unwrap_or_default().to_owned();
            out.push(StreamEvent::ToolCallDelta {
                index,
                id: Some(wire::call_id(call.id.clone(), &name, index as usize)),
                name: Some(name),
                arguments: String::new(),
            });
            self.streamed_call = Some(StreamedCall {
                index,
                arguments: ArgsWriter::default(),
            });
        }
        let Some(streamed) = &mut self.streamed_call else {
            return;
        };
        for arg in call.partial_args.iter().flatten() {
            if let (Some(path), Some(piece)) = (arg.json_path.as_deref(), arg.piece()) {
                streamed.arguments.set(path, piece);
            }
        }
        if let Some(args) = &call.args {
            streamed.arguments.set_all(args);
        }
        if call.will_continue == Some(true) {
            let arguments = streamed.arguments.take();
            if !arguments.is_empty() {
                out.push(StreamEvent::ToolCallDelta {
                    index: streamed.index,
                    id: None,
                    name: None,
                    arguments,
                });
            }
        } else {
            self.end_streamed_call(out);
        }
    }

    /// Ends the streamed call, if one is open: its arguments are closed as JSON.
    fn end_streamed_call(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(mut streamed) = self.streamed_call.take() {
            streamed.arguments.finish();
            out.push(StreamEvent::ToolCallDelta {
                index: streamed.index,
                id: None,
                name: None,
                arguments: streamed.arguments.take(),
            });
        }
    }
}

impl StreamDecoder for GeminiStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed> {
        // The typed reading is the fast path; error frames, blocked prompts and fields of
        // unexpected types are read again loosely.
        if let Some(chunk) = wire::read(event.data.as_bytes()) {
            self.decode_chunk(chunk, out);
            return Ok(Flow::Continue);
        }
        let chunk: Value = serde_json::from_str(&event.data)?;
        if get(&chunk, &["error"]).is_some() {
            out.push(StreamEvent::Error(gemini_error(None, &chunk)));
            return Ok(Flow::End);
        }
        let loose = wire::Response::loose(&chunk);
        if let Some(blocked) = prompt_block(&chunk) {
            self.start(&loose, out);
            out.push(StreamEvent::Error(blocked));
            return Ok(Flow::End);
        }
        self.decode_chunk(loose, out);
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _clean: bool, out: &mut Vec<StreamEvent>) -> bool {
        // The finishReason is Gemini's end of message: what follows it (nothing, normally)
        // cannot make the message incomplete.
        match self.finish.take() {
            Some(reason) => {
                out.push(StreamEvent::Finish(finish_reason(
                    &reason,
                    self.tool_calls > 0,
                )));
                true
            }
            None => false,
        }
    }
}
