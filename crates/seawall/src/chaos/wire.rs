//! What a fault looks like on the wire, for the raw-HTTP path: the provider's error
//! response, its retry headers, its in-band error frame.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use seawall_core::fault::{Fault, RetryAfter, RetryHeaders};
use seawall_core::{LlmError, ProviderKind};
use serde_json::json;

/// The error response `provider` sends for `error` (the fault's status, code and message),
/// with the fault's retry headers.
pub(crate) fn error_response(
    fault: &Fault,
    error: &LlmError,
    provider: ProviderKind,
) -> http::Response<Bytes> {
    let status = error.status().unwrap_or(500);
    let (content_type, body) = match fault {
        Fault::HtmlPage { .. } => {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let page = format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
            );
            ("text/html", Bytes::from(page))
        }
        Fault::EmptyBody { .. } => ("text/plain", Bytes::new()),
        _ => ("application/json", error_body(error, provider)),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Fault::Status { retry, .. }
    | Fault::Overloaded { retry }
    | Fault::RateLimited { retry, .. } = fault
    {
        retry_headers(retry, headers);
    }
    response
}

/// The JSON error body in `provider`'s shape.
fn error_body(error: &LlmError, provider: ProviderKind) -> Bytes {
    let code = error.code().unwrap_or("error");
    let body = match provider {
        ProviderKind::Anthropic => json!({
            "type": "error",
            "error": {"type": code, "message": error.message()},
        }),
        ProviderKind::Gemini => json!({
            "error": {
                "code": error.status().unwrap_or(500),
                "message": error.message(),
                "status": code,
            }
        }),
        _ => json!({
            "error": {"message": error.message(), "type": code, "param": null, "code": code},
        }),
    };
    Bytes::from(body.to_string())
}

fn retry_headers(retry: &RetryHeaders, headers: &mut http::HeaderMap) {
    let value = retry.retry_after.as_ref().and_then(|after| match after {
        RetryAfter::Seconds(secs) => HeaderValue::try_from(secs.to_string()).ok(),
        RetryAfter::Float(secs) => HeaderValue::try_from(secs.to_string()).ok(),
        RetryAfter::HttpDateIn(secs) => {
            let at = SystemTime::now() + Duration::from_secs(*secs);
            HeaderValue::try_from(httpdate::fmt_http_date(at)).ok()
        }
        RetryAfter::Raw(text) => HeaderValue::try_from(text.as_str()).ok(),
    });
    if let Some(value) = value {
        headers.insert(RETRY_AFTER, value);
    }
    if let Some(ms) = retry.retry_after_ms {
        headers.insert("retry-after-ms", HeaderValue::from(ms));
    }
    if let Some(should) = retry.should_retry {
        headers.insert(
            "x-should-retry",
            HeaderValue::from_static(if should { "true" } else { "false" }),
        );
    }
}

/// `provider`'s in-band error frame, as one server-sent event.
pub(crate) fn error_frame(provider: ProviderKind) -> Bytes {
    let frame = match provider {
        ProviderKind::Anthropic => {
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        }
        ProviderKind::Gemini => {
            "data: {\"error\":{\"code\":500,\"message\":\"An internal error has occurred.\",\"status\":\"INTERNAL\"}}\n\n"
        }
        ProviderKind::OpenAiResponses => {
            "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"The server had an error processing your request.\",\"param\":null}\n\n"
        }
        _ => {
            "data: {\"error\":{\"message\":\"The server had an error processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":\"server_error\"}}\n\n"
        }
    };
    Bytes::from_static(frame.as_bytes())
}

/// A `data:` line that is not JSON.
pub(crate) const MALFORMED_EVENT: &[u8] =
    b"data: {\"choices\": [{\"delta\": {\"content\": \"unterminated\n\n";

/// Whether an event carries the stream's end of message, in any provider's dialect.
pub(crate) fn is_terminal(event: &[u8]) -> bool {
    const MARKERS: [&[u8]; 6] = [
        b"[DONE]",
        b"message_stop",
        b"\"response.completed\"",
        b"\"response.incomplete\"",
        b"\"finishReason\"",
        b"\"finish_reason\":\"",
    ];
    MARKERS
        .iter()
        .any(|marker| event.windows(marker.len()).any(|w| w == *marker))
}

#[cfg(test)]
mod tests {
    use seawall_core::{ErrorKind, StreamEvent};
    use seawall_providers::dialect::Flow;
    use seawall_providers::sse::SseDecoder;
    use seawall_providers::{
        AnthropicConfig, AnthropicDialect, Dialect, GeminiConfig, GeminiDialect, OpenAiConfig,
        OpenAiDialect, ResponsesConfig, ResponsesDialect, StreamDecoder,
    };

    use super::*;

    /// What each provider's own stream decoder makes of the injected error frame.
    fn decoded<D: Dialect>(dialect: &D) -> (Vec<StreamEvent>, Flow) {
        let mut frames = Vec::new();
        SseDecoder::new().feed(&error_frame(dialect.provider()), &mut frames);
        assert_eq!(frames.len(), 1, "{:?}", dialect.provider());
        let mut events = Vec::new();
        let flow = dialect
            .stream_decoder()
            .decode(&frames[0], &mut events)
            .expect("the frame is the provider's JSON");
        (events, flow)
    }

    #[test]
    fn the_injected_error_frame_is_an_error_in_every_providers_dialect() {
        let results = [
            decoded(&OpenAiDialect::new(OpenAiConfig::new("k"))),
            decoded(&AnthropicDialect::new(AnthropicConfig::new("k"))),
            decoded(&GeminiDialect::new(GeminiConfig::new("k"))),
            decoded(&ResponsesDialect::new(ResponsesConfig::new("k"))),
        ];
        for (events, flow) in results {
            assert_eq!(flow, Flow::End);
            // A decoder may open the message first; the frame itself is the error.
            match events.as_slice() {
                [StreamEvent::Error(error)]
                | [StreamEvent::Start { .. }, StreamEvent::Error(error)] => assert!(
                    matches!(error.kind(), ErrorKind::Server | ErrorKind::Overloaded),
                    "{error:?}"
                ),
                other => panic!("not one error: {other:?}"),
            }
        }
    }
}
