//! The exact token-count endpoints' wire formats: Anthropic `POST /v1/messages/count_tokens`
//! and Gemini `models/{model}:countTokens`, both built from the provider's own message
//! request (the OpenAI Responses API's is in [`responses`](crate::responses)). OpenAI
//! Chat Completions has none: its dialect keeps the [`Dialect`](crate::Dialect) defaults,
//! which refuse before anything is sent.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::Body;
use http_body_util::Full;
use seawall_core::{ChatRequest, ErrorKind, LlmError, ProviderKind};
use serde_json::{Map, Value, json};

use crate::error::decode_error;
use crate::json::u64_at;

/// The fields Anthropic's `count_tokens` takes; it refuses any other (`max_tokens`,
/// `stream`, sampling parameters).
const ANTHROPIC_COUNT_FIELDS: [&str; 7] = [
    "messages",
    "model",
    "system",
    "thinking",
    "tool_choice",
    "tools",
    "mcp_servers",
];

/// The error of a provider without a token-count endpoint.
pub(crate) fn unsupported(provider: ProviderKind) -> LlmError {
    LlmError::new(
        ErrorKind::InvalidRequest,
        format!("token counting unsupported: {provider} has no token-count endpoint"),
    )
    .with_provider(provider)
}

/// `request` as a non-streamed call: the message request a count is built from.
pub(crate) fn unstreamed(request: &ChatRequest) -> ChatRequest {
    let mut request = request.clone();
    request.stream = false;
    request
}

/// Anthropic's count request, from the messages request `messages` (same headers): the
/// body keeps only the fields the endpoint takes.
pub(crate) fn anthropic_request(
    messages: http::Request<Full<Bytes>>,
) -> Result<http::Request<Full<Bytes>>, LlmError> {
    let provider = ProviderKind::Anthropic;
    rewrite(
        messages,
        provider,
        |path| format!("{path}/count_tokens"),
        |mut body| {
            body.retain(|key, _| ANTHROPIC_COUNT_FIELDS.contains(&key.as_str()));
            body
        },
    )
}

/// Anthropic's answer: `{"input_tokens": N}`.
pub(crate) fn anthropic_count(body: &[u8]) -> Result<u64, LlmError> {
    count_at(ProviderKind::Anthropic, body, "input_tokens")
}

/// Gemini's count request, from the `generateContent` request `generate` (same headers):
/// the whole request goes in `generateContentRequest`, so the system instruction and the
/// tools count too, as they do in the usage of a call.
pub(crate) fn gemini_request(
    generate: http::Request<Full<Bytes>>,
    model: &str,
) -> Result<http::Request<Full<Bytes>>, LlmError> {
    let model = format!("models/{}", model.trim_start_matches("models/"));
    let to_count = |path: &str| {
        let base = path.strip_suffix(":generateContent").unwrap_or(path);
        format!("{base}:countTokens")
    };
    rewrite(generate, ProviderKind::Gemini, to_count, |mut body| {
        body.insert("model".into(), json!(model));
        let mut wrapped = Map::new();
        wrapped.insert("generateContentRequest".into(), Value::Object(body));
        wrapped
    })
}

/// Gemini's answer: `{"totalTokens": N, ...}`.
pub(crate) fn gemini_count(body: &[u8]) -> Result<u64, LlmError> {
    count_at(ProviderKind::Gemini, body, "totalTokens")
}

fn count_at(provider: ProviderKind, body: &[u8], field: &str) -> Result<u64, LlmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| decode_error(provider, "token count", e))?;
    u64_at(&value, &[field]).ok_or_else(|| {
        LlmError::new(
            ErrorKind::Decode,
            format!("no `{field}` in the token count"),
        )
        .with_provider(provider)
    })
}

/// `request` with its path mapped by `path` and its JSON body by `body`; headers kept.
fn rewrite(
    request: http::Request<Full<Bytes>>,
    provider: ProviderKind,
    path: impl FnOnce(&str) -> String,
    body: impl FnOnce(Map<String, Value>) -> Map<String, Value>,
) -> Result<http::Request<Full<Bytes>>, LlmError> {
    let invalid =
        |problem: String| LlmError::new(ErrorKind::InvalidRequest, problem).with_provider(provider);
    let (mut parts, full) = request.into_parts();
    let bytes = full_bytes(full);
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(invalid("the message request is not a JSON object".into()));
    };
    let rewritten =
        serde_json::to_vec(&Value::Object(body(fields))).map_err(|e| invalid(e.to_string()))?;
    let mut uri = parts.uri.into_parts();
    let new_path = path(uri.path_and_query.as_ref().map_or("", |p| p.path()));
    uri.path_and_query = Some(
        new_path
            .parse()
            .map_err(|e| invalid(format!("invalid token count URL: {e}")))?,
    );
    parts.uri = http::Uri::from_parts(uri).map_err(|e| invalid(e.to_string()))?;
    Ok(http::Request::from_parts(
        parts,
        Full::new(Bytes::from(rewritten)),
    ))
}

/// The bytes of a body built in memory: a [`Full`] yields them at its first poll.
fn full_bytes(body: Full<Bytes>) -> Bytes {
    let mut body = pin!(body);
    let mut context = Context::from_waker(Waker::noop());
    match body.as_mut().poll_frame(&mut context) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}
