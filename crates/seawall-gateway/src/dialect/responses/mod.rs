//! The OpenAI Responses API (`POST /v1/responses`), server side: request bodies to the
//! unified [`ChatRequest`](seawall_core::ChatRequest), and answers to `response` objects and
//! typed SSE events.
//!
//! What the unified model cannot carry is said where it is dropped: hosted tools and
//! `item_reference` input items are refused (no target could honour them), `reasoning` input
//! items are skipped (hidden reasoning only its own model can read), and the response object
//! echoes no request parameters it was not given (`instructions`, `tools`, `temperature` and
//! the like read as their defaults or `null`).

mod decode;
mod encode;
mod read;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use decode::decode_request;
pub(crate) use encode::encode_response;
pub(crate) use stream::StreamWriter;

/// The error body of an HTTP error reply: OpenAI's `{"error":{"message","type","param","code"}}`,
/// the same for this dialect as for Chat Completions. The SDK picks its exception class from
/// the HTTP status, so `_status` changes nothing in the body.
pub(crate) fn error_body(
    _status: u16,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Vec<u8> {
    serde_json::to_vec(&crate::wire::error_body(message, kind, param, code)).unwrap_or_default()
}

/// The id of the `n`th output item of response `response_id` (`msg_…`, `fc_…`): unique per
/// response, and stable between the stream's events and its final object.
fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    let stem = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{stem}_{n}")
}
