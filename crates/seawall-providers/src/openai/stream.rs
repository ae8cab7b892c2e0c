//! Streamed chat completion chunks.

use std::borrow::Cow;

use seawall_core::{ErrorKind, FinishReason, LlmError, ProviderKind, StreamEvent, Usage};
use serde_json::Value;

use super::decode::{finish_reason, usage};
use super::error::openai_error;
use super::wire;
use crate::dialect::{Flow, Malformed, StreamDecoder};
use crate::json::{get, is_object, str_at};
use crate::sse::SseEvent;

/// Decodes OpenAI chat completion chunks.
///
/// The finish reason is held back until `[DONE]` or a clean end of the body (a usage chunk
/// may follow it), so a connection cut after the finish reason still ends in an error.
#[derive(Debug)]
pub struct OpenAiStreamDecoder {
    provider: ProviderKind,
    started: bool,
    finish: Option<FinishReason>,
    trailing_usage: Option<Usage>,
}

impl Default for OpenAiStreamDecoder {
    fn default() -> Self {
        Self {
            provider: ProviderKind::OpenAi,
            started: false,
            finish: None,
            trailing_usage: None,
        }
    }
}

impl OpenAiStreamDecoder {
    /// A decoder whose errors name `provider`.
    pub(super) fn new(provider: ProviderKind) -> Self {
        Self {
            provider,
            ..Self::default()
        }
    }

    fn start(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: id.map(str::to_owned),
                model: model.map(str::to_owned),
            });
        }
    }

    fn usage_seen(&mut self, usage: Usage, out: &mut Vec<StreamEvent>) {
        if self.finish.is_some() {
            self.trailing_usage = Some(usage);
        } else {
            out.push(StreamEvent::Usage(usage));
        }
    }

    fn decode_typed(&mut self, chunk: wire::Chunk<'_>, out: &mut Vec<StreamEvent>) {
        let empty = |text: &Option<Cow<'_, str>>| text.as_deref().is_none_or(str::is_empty);
        if !self.started
            && empty(&chunk.id)
            && empty(&chunk.model)
            && chunk.choices.as_ref().is_none_or(Vec::is_empty)
            && chunk.usage.is_none()
        {
            // Azure's first chunk: only `prompt_filter_results`, the stream starts after it.
            return;
        }
        self.start(chunk.id.as_deref(), chunk.model.as_deref(), out);
        // Only the first choice is the reply (with `n > 1`, other choices arrive too).
        let choice = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|choice| choice.index.unwrap_or(0) == 0);
        if let Some(choice) = choice {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                    out.push(StreamEvent::TextDelta(text.into_owned()));
                }
                for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
                    let (name, arguments) = call
                        .function
                        .map(|f| (f.name, f.arguments))
                        .unwrap_or_default();
                    out.push(StreamEvent::ToolCallDelta {
                        index: u32::try_from(call.index.unwrap_or(position as u64))
                            .unwrap_or(u32::MAX),
                        id: call.id.map(Cow::into_owned),
                        name: name.map(Cow::into_owned),
                        arguments: arguments.map(Cow::into_owned).unwrap_or_default(),
                    });
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(&reason));
            }
        }
        // Groq reports streamed usage under `x_groq.usage`.
        if let Some(usage) = chunk.usage.or(chunk.x_groq.and_then(|x| x.usage)) {
            self.usage_seen(usage.into(), out);
        }
    }

    fn decode_value(
        &mut self,
        chunk: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<Flow, Malformed> {
        if get(&chunk, &["error"]).is_some() {
            out.push(StreamEvent::Error(openai_error(
                self.provider,
                None,
                &chunk,
            )));
            return Ok(Flow::End);
        }
        let empty = |key: &str| str_at(&chunk, &[key]).is_none_or(str::is_empty);
        let no_choice = get(&chunk, &["choices"])
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !self.started
            && empty("id")
            && empty("model")
            && no_choice
            && get(&chunk, &["usage"]).is_none()
        {
            // Azure's first chunk: only `prompt_filter_results`, the stream starts after it.
            return Ok(Flow::Continue);
        }
        self.start(str_at(&chunk, &["id"]), str_at(&chunk, &["model"]), out);
        // Only the first choice is the reply (with `n > 1`, other choices arrive too).
        let choice = get(&chunk, &["choices"])
            .and_then(Value::as_array)
            .and_then(|choices| {
                choices
                    .iter()
                    .find(|c| get(c, &["index"]).and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        if let Some(choice) = choice {
            if let Some(text) = str_at(choice, &["delta", "content"])
                && !text.is_empty()
            {
                out.push(StreamEvent::TextDelta(text.to_owned()));
            }
            if let Some(calls) = get(choice, &["delta", "tool_calls"]).and_then(Value::as_array) {
                for (position, call) in calls.iter().enumerate() {
                    let index = get(call, &["index"])
                        .and_then(Value::as_u64)
                        .unwrap_or(position as u64);
                    out.push(StreamEvent::ToolCallDelta {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        id: str_at(call, &["id"]).map(str::to_owned),
                        name: str_at(call, &["function", "name"]).map(str::to_owned),
                        arguments: str_at(call, &["function", "arguments"])
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
            }
            if let Some(reason) = str_at(choice, &["finish_reason"]) {
                self.finish = Some(finish_reason(reason));
            }
        }
        // Groq reports streamed usage under `x_groq.usage`.
        if let Some(value) = get(&chunk, &["usage"]).or_else(|| get(&chunk, &["x_groq", "usage"])) {
            self.usage_seen(usage(value), out);
        }
        Ok(Flow::Continue)
    }

    fn flush_end(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(reason) = self.finish.take() {
            out.push(StreamEvent::Finish(reason));
        }
        if let Some(usage) = self.trailing_usage.take() {
            out.push(StreamEvent::Usage(usage));
        }
    }
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed> {
        let data = event.data.trim();
        if data == "[DONE]" {
            if self.finish.is_some() {
                self.flush_end(out);
            } else {
                out.push(StreamEvent::Error(
                    LlmError::new(
                        ErrorKind::StreamTruncated,
                        "[DONE] arrived before a finish_reason",
                    )
                    .with_provider(self.provider),
                ));
            }
            return Ok(Flow::End);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        // The typed reading is the fast path; a chunk whose fields have unexpected types
        // (some compatible servers) is read again loosely rather than lost.
        if is_object(data.as_bytes())
            && let Ok(chunk) = serde_json::from_str::<wire::Chunk<'_>>(data)
            && chunk.error.is_none()
        {
            self.decode_typed(chunk, out);
            return Ok(Flow::Continue);
        }
        self.decode_value(serde_json::from_str(data)?, out)
    }

    fn finish(&mut self, clean: bool, out: &mut Vec<StreamEvent>) -> bool {
        if clean && self.finish.is_some() {
            self.flush_end(out);
            true
        } else {
            false
        }
    }
}
