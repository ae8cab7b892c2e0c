//! The API dialects the gateway speaks: OpenAI Chat Completions ([`crate::wire`]), Anthropic
//! Messages ([`messages`]) and OpenAI Responses ([`responses`]). Each decodes its requests
//! into the one unified request, so every dialect goes through the same groups and can fail
//! over to a target of any other; each writes the answer, the stream and the errors back in
//! its own shape.

mod loose;
pub(crate) mod messages;
pub(crate) mod responses;

use seawall_core::{ChatResponse, Cost, ErrorKind, FinishReason, Usage};

use crate::wire::{self, BadRequest, ChunkHead, Inbound};

/// An API the gateway serves: which one a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/responses`.
    Responses,
}

impl Dialect {
    /// The route, as the access log names it.
    pub(crate) const fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Messages => "/v1/messages",
            Self::Responses => "/v1/responses",
        }
    }

    /// The dialect's prefix of a response id.
    pub(crate) const fn id_prefix(self) -> &'static str {
        match self {
            Self::Chat => "chatcmpl-sw",
            Self::Messages => "msg_sw",
            Self::Responses => "resp_sw",
        }
    }

    /// A request body of this dialect, as the unified request: what the gateway sends on,
    /// or the 400 it answers (nothing is sent upstream then).
    ///
    /// # Errors
    ///
    /// A [`BadRequest`] naming the parameter at fault, as the dialect's own API would.
    pub fn decode(self, body: &[u8]) -> Result<Inbound, BadRequest> {
        match self {
            Self::Chat => wire::decode_request(body),
            Self::Messages => messages::decode_request(body),
            Self::Responses => responses::decode_request(body),
        }
    }

    /// The body of a non-streamed answer.
    pub(crate) fn encode_response(
        self,
        response: &ChatResponse,
        id: &str,
        model: &str,
        created: u64,
    ) -> Vec<u8> {
        match self {
            Self::Chat => wire::encode_response(response, id, model, created),
            Self::Messages => messages::encode_response(response, id, model, created),
            Self::Responses => responses::encode_response(response, id, model, created),
        }
    }

    /// The body of an error reply; `kind`, `code` and `param` as OpenAI names them, mapped
    /// to the dialect's own error types.
    pub(crate) fn error_body(
        self,
        status: u16,
        kind: &str,
        code: Option<&str>,
        param: Option<&str>,
        message: &str,
    ) -> Vec<u8> {
        match self {
            Self::Chat => serde_json::to_vec(&wire::error_body(message, kind, param, code))
                .unwrap_or_default(),
            Self::Messages => messages::error_body(status, kind, code, param, message),
            Self::Responses => responses::error_body(status, kind, code, param, message),
        }
    }

    /// A writer for one streamed answer; `include_usage`: whether a Chat Completions client
    /// asked for the usage chunk (the other dialects always report usage).
    pub(crate) fn stream_writer(
        self,
        id: String,
        model: String,
        created: u64,
        include_usage: bool,
    ) -> StreamWriter {
        match self {
            Self::Chat => StreamWriter::Chat {
                head: ChunkHead { id, model, created },
                include_usage,
            },
            Self::Messages => {
                StreamWriter::Messages(messages::StreamWriter::new(id, model, created))
            }
            Self::Responses => {
                StreamWriter::Responses(responses::StreamWriter::new(id, model, created))
            }
        }
    }
}

/// Writes one stream's frames in its dialect.
pub(crate) enum StreamWriter {
    /// Chat Completions chunks.
    Chat {
        /// What every chunk repeats.
        head: ChunkHead,
        /// `stream_options.include_usage`.
        include_usage: bool,
    },
    /// Anthropic Messages events.
    Messages(messages::StreamWriter),
    /// OpenAI Responses events.
    Responses(responses::StreamWriter),
}

impl StreamWriter {
    /// After a mid-stream recovery, the model that answers from then on.
    pub(crate) fn set_model(&mut self, model: String) {
        match self {
            Self::Chat { head, .. } => head.model = model,
            Self::Messages(writer) => writer.set_model(model),
            Self::Responses(writer) => writer.set_model(model),
        }
    }

    /// The opening frames.
    pub(crate) fn start(&mut self, out: &mut Vec<u8>) {
        match self {
            Self::Chat { head, .. } => head.role(out),
            Self::Messages(writer) => writer.start(out),
            Self::Responses(writer) => writer.start(out),
        }
    }

    /// More text.
    pub(crate) fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        match self {
            Self::Chat { head, .. } => head.text(out, text),
            Self::Messages(writer) => writer.text(out, text),
            Self::Responses(writer) => writer.text(out, text),
        }
    }

    /// A tool-call fragment.
    pub(crate) fn tool_call(
        &mut self,
        out: &mut Vec<u8>,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        match self {
            Self::Chat { head, .. } => head.tool_call(out, index, id, name, arguments),
            Self::Messages(writer) => writer.tool_call(out, index, id, name, arguments),
            Self::Responses(writer) => writer.tool_call(out, index, id, name, arguments),
        }
    }

    /// The upstream's finish reason.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, reason: &FinishReason) {
        match self {
            Self::Chat { head, .. } => head.finish(out, reason),
            Self::Messages(writer) => writer.finish(out, reason),
            Self::Responses(writer) => writer.finish(out, reason),
        }
    }

    /// Whether the closing frames report usage and cost: a Chat Completions client asks for
    /// them (`stream_options.include_usage`), the other dialects always report them.
    pub(crate) fn reports_usage(&self) -> bool {
        match self {
            Self::Chat { include_usage, .. } => *include_usage,
            Self::Messages(_) | Self::Responses(_) => true,
        }
    }

    /// The closing frames of a whole answer, with its usage and cost when known.
    pub(crate) fn end(&mut self, out: &mut Vec<u8>, usage: Option<&Usage>, cost: Option<Cost>) {
        match self {
            Self::Chat {
                head,
                include_usage,
            } => {
                if let (true, Some(usage)) = (*include_usage, usage) {
                    head.usage(out, usage, cost);
                }
                wire::done(out);
            }
            Self::Messages(writer) => writer.end(out, usage, cost),
            Self::Responses(writer) => writer.end(out, usage, cost),
        }
    }

    /// The dialect's in-band error event, after which nothing follows.
    pub(crate) fn error(&mut self, out: &mut Vec<u8>, message: &str, kind: ErrorKind) {
        match self {
            Self::Chat { .. } => wire::stream_error(out, message, kind),
            Self::Messages(writer) => writer.error(out, message, kind),
            Self::Responses(writer) => writer.error(out, message, kind),
        }
    }
}
