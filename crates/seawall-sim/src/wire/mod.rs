//! Provider wire formats: request parsing, success bodies, stream events and error bodies.

pub(crate) mod anthropic;
pub(crate) mod embed;
pub(crate) mod gemini;
pub(crate) mod openai;
pub(crate) mod responses;

use bytes::Bytes;

use crate::config::Provider;
use crate::reply::Prompt;

/// A request reduced to what the simulator needs.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) prompt: Prompt,
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) max_tokens: Option<u64>,
    /// OpenAI: `stream_options.include_usage`.
    pub(crate) include_usage: bool,
    /// OpenAI: `stream_options.include_obfuscation` (default true).
    pub(crate) include_obfuscation: bool,
    /// Gemini: `alt=sse` (otherwise a streamed JSON array).
    pub(crate) sse: bool,
}

/// A provider error before any body was sent.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    /// OpenAI/Anthropic `type`, Gemini `status`; `None` renders as JSON null (OpenAI only).
    pub(crate) error_type: Option<String>,
    pub(crate) message: String,
    pub(crate) code: Option<String>,
    pub(crate) param: Option<String>,
    /// Extra members of the error object (Anthropic `details`, llama.cpp `n_ctx`, Gemini `details`).
    pub(crate) extra: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, error_type: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error_type: Some(error_type.to_owned()),
            message: message.into(),
            code: None,
            param: None,
            extra: Vec::new(),
        }
    }

    pub(crate) fn code(mut self, code: &str) -> ApiError {
        self.code = Some(code.to_owned());
        self
    }

    pub(crate) fn param(mut self, param: &str) -> ApiError {
        self.param = Some(param.to_owned());
        self
    }

    pub(crate) fn extra(mut self, key: &'static str, value: serde_json::Value) -> ApiError {
        self.extra.push((key, value));
        self
    }
}

/// Stream events of a reply, split so faults can cut before the terminal part.
#[derive(Debug, Default)]
pub(crate) struct StreamParts {
    /// Events up to (not including) the terminal ones.
    pub(crate) events: Vec<Bytes>,
    /// The terminal events (`[DONE]`, `message_stop`, the `finishReason` chunk…).
    pub(crate) terminal: Vec<Bytes>,
}

/// Per-response values that are not part of the deterministic text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponseCtx {
    pub(crate) provider: Provider,
    pub(crate) seq: u64,
    pub(crate) created: u64,
    /// The request came the Azure OpenAI way (see [`crate::server`]'s routing): a stream
    /// opens with Azure's prompt-filter chunk and choices carry `content_filter_results`.
    pub(crate) azure: bool,
}

/// The provider's default error for a status.
pub(crate) fn default_error(provider: Provider, status: u16) -> ApiError {
    match provider {
        Provider::Anthropic => anthropic::default_error(status),
        Provider::Gemini => gemini::default_error(status),
        _ => openai::default_error(provider, status),
    }
}

/// Serializes an error body in the provider's shape.
pub(crate) fn error_body(provider: Provider, err: &ApiError, seq: u64) -> Bytes {
    match provider {
        Provider::Anthropic => anthropic::error_body(err, seq),
        Provider::Gemini => gemini::error_body(err),
        _ => openai::error_body(provider, err),
    }
}

/// Content type of JSON bodies.
pub(crate) fn json_content_type(provider: Provider) -> &'static str {
    match provider {
        Provider::Gemini => "application/json; charset=UTF-8",
        _ => "application/json",
    }
}

/// Text of a JSON content value: a string, or an array of text parts/blocks.
pub(crate) fn content_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                if let Some(t) = part.get("text").and_then(|t| t.as_str()) {
                    out.push_str(t);
                } else if let Some(t) = part.as_str() {
                    out.push_str(t);
                } else if let Some(c) = part.get("content") {
                    out.push_str(&content_text(c));
                }
            }
            out
        }
        _ => String::new(),
    }
}

/// A deterministic pseudo-random ASCII string (OpenAI `obfuscation`, ids).
pub(crate) fn filler(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed;
    (0..len)
        .map(|_| {
            ALPHABET[(crate::reply::splitmix(&mut state) % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}
