//! What an adapter needs from a provider's wire format: the [`Dialect`] (request encoding,
//! response and error decoding) and its [`StreamDecoder`] (server-sent events to
//! [`StreamEvent`]s).

use std::fmt;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use seawall_core::{
    ChatRequest, ChatResponse, EmbeddingRequest, Embeddings, LlmError, ProviderKind, StreamEvent,
};

use crate::sse::SseEvent;

/// A provider's wire format. The adapters are [`Adapter<D, S>`](crate::Adapter) with one
/// dialect each ([`OpenAiDialect`](crate::openai::OpenAiDialect),
/// [`AnthropicDialect`](crate::anthropic::AnthropicDialect),
/// [`GeminiDialect`](crate::gemini::GeminiDialect),
/// [`ResponsesDialect`](crate::responses::ResponsesDialect)).
///
/// A dialect is configuration only (base URL, key, defaults), cheap to clone.
pub trait Dialect: Clone + Send + Sync + 'static {
    /// The stream decoder of this wire format.
    type Decoder: StreamDecoder;

    /// The protocol, as reported in responses and errors.
    fn provider(&self) -> ProviderKind;

    /// The HTTP request for a validated `request`.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::InvalidRequest`](seawall_core::ErrorKind::InvalidRequest) error for
    /// a request this provider cannot express (nothing is sent).
    fn encode(&self, request: &ChatRequest) -> Result<http::Request<Full<Bytes>>, LlmError>;

    /// The response of a successful (2xx) non-streamed call.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`](seawall_core::ErrorKind::Decode) for a body that is not the
    /// provider's response, or the error a successful status can still carry (a Gemini
    /// prompt block is [`ErrorKind::ContentFiltered`](seawall_core::ErrorKind::ContentFiltered)).
    fn decode_response(&self, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse, LlmError>;

    /// The error an unsuccessful status, its headers and its body stand for.
    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError;

    /// The HTTP request for a validated embeddings `request`.
    ///
    /// # Errors
    ///
    /// By default (a provider without an embeddings endpoint, such as Anthropic), an
    /// [`ErrorKind::InvalidRequest`](seawall_core::ErrorKind::InvalidRequest) error whose
    /// source is [`EmbeddingsUnsupported`](seawall_core::EmbeddingsUnsupported); nothing
    /// is sent.
    fn encode_embeddings(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let _ = request;
        Err(crate::embed::unsupported(self.provider()))
    }

    /// The vectors of a successful (2xx) embeddings response to `request`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`](seawall_core::ErrorKind::Decode) for a body that is not the
    /// provider's embeddings, or holds a vector count other than the input's.
    fn decode_embeddings(
        &self,
        request: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<Embeddings, LlmError> {
        let _ = (request, body);
        Err(crate::embed::unsupported(self.provider()))
    }

    /// The HTTP request that asks the provider's exact-count endpoint how many input tokens
    /// a validated `request` holds (Anthropic `count_tokens`, Gemini `countTokens`, OpenAI
    /// Responses `input_tokens`).
    ///
    /// # Errors
    ///
    /// By default (a provider without such an endpoint, such as OpenAI Chat Completions),
    /// an [`ErrorKind::InvalidRequest`](seawall_core::ErrorKind::InvalidRequest) error
    /// "token counting unsupported"; nothing is sent.
    fn encode_count_tokens(
        &self,
        request: &ChatRequest,
    ) -> Result<http::Request<Full<Bytes>>, LlmError> {
        let _ = request;
        Err(crate::count::unsupported(self.provider()))
    }

    /// The input token count of a successful (2xx) answer of the exact-count endpoint.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`](seawall_core::ErrorKind::Decode) for a body that holds no
    /// count; by default, the "token counting unsupported" error.
    fn decode_count_tokens(&self, body: &[u8]) -> Result<u64, LlmError> {
        let _ = body;
        Err(crate::count::unsupported(self.provider()))
    }

    /// A fresh decoder for one streamed response.
    fn stream_decoder(&self) -> Self::Decoder;

    /// The provider's request id in the response headers, if it sends one; it is added to
    /// the errors of a streamed response (which arrive after the headers).
    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        let _ = headers;
        None
    }
}

/// The value of header `name`, if present and not empty.
pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Whether a stream goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More events may follow.
    Continue,
    /// The stream is over (a terminal marker or an in-band error): stop reading.
    End,
}

/// An event whose data is not the JSON the provider sends.
#[derive(Debug)]
pub struct Malformed(pub serde_json::Error);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed stream event: {}", self.0)
    }
}

impl std::error::Error for Malformed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<serde_json::Error> for Malformed {
    fn from(error: serde_json::Error) -> Self {
        Self(error)
    }
}

/// Turns one provider's server-sent events into [`StreamEvent`]s and knows when the
/// provider's end of message has arrived.
pub trait StreamDecoder: Send + 'static {
    /// Decodes one event, appending what it yields to `out`. An in-band error frame yields
    /// a [`StreamEvent::Error`] and [`Flow::End`].
    ///
    /// # Errors
    ///
    /// [`Malformed`] when the event's data is not valid JSON; the stream's policy decides
    /// whether to skip it.
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Malformed>;

    /// The body ended (`clean`) or broke off (`!clean`) without [`Flow::End`]. Returns
    /// whether the message is complete; if so, appends the events held back for the end
    /// (the finish reason, a trailing usage).
    fn finish(&mut self, clean: bool, out: &mut Vec<StreamEvent>) -> bool;
}
