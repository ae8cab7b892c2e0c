//! Small helpers to read loosely-typed provider JSON without panicking.

use std::borrow::Cow;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use serde_json::{Map, Value};

pub(crate) fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |value, key| value.get(*key))
        .filter(|value| !value.is_null())
}

pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(value, path)?.as_str()
}

/// A string field, borrowed, as a typed reading holds it; a field of another type is absent.
pub(crate) fn cow_at<'a>(value: &'a Value, path: &[&str]) -> Option<Cow<'a, str>> {
    str_at(value, path).map(Cow::Borrowed)
}

/// A count field; a field of another type is absent.
pub(crate) fn u64_at(value: &Value, path: &[&str]) -> Option<u64> {
    get(value, path)?.as_u64()
}

/// Merges the request's pass-through fields into the body, never over a field the adapter
/// set itself (a pass-through `stream` must not desynchronise the decoder).
pub(crate) fn merge_extra(body: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (key, value) in extra {
        if !body.contains_key(key) {
            body.insert(key.clone(), value.clone());
        }
    }
}

/// Whether `json` (after leading whitespace) is an object. Typed readings check this first:
/// a derived struct would also accept an array, reading its elements as the fields in order.
pub(crate) fn is_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

/// A JSON POST to `url` with the given extra headers.
pub(crate) fn post(
    url: &str,
    body: &Value,
    streaming: bool,
    headers: impl IntoIterator<Item = (&'static str, HeaderValue)>,
) -> Result<http::Request<Full<Bytes>>, String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    post_bytes(url, bytes, streaming, headers)
}

/// A POST to `url` of a body already written as JSON, with the given extra headers.
pub(crate) fn post_bytes(
    url: &str,
    bytes: Vec<u8>,
    streaming: bool,
    headers: impl IntoIterator<Item = (&'static str, HeaderValue)>,
) -> Result<http::Request<Full<Bytes>>, String> {
    let mut builder = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::ACCEPT,
            if streaming {
                "text/event-stream"
            } else {
                "application/json"
            },
        );
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| format!("invalid request URL or header: {e}"))
}

/// Joins a base URL and a path with exactly one `/` between them.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}
