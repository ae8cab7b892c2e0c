//! The request log: every request the simulator received, with secrets redacted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::config::Provider;

/// One received request. API keys are replaced by `[redacted]` in headers and the query.
///
/// The admin endpoint serializes it as `{"seq", "provider", "method", "path", "headers":
/// [[name, value], …], "body": "<text>", "at": <seconds since start>}`.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// Arrival order across all providers, from 1.
    pub seq: u64,
    /// The provider whose routes matched (`None` for unknown paths).
    pub provider: Option<Provider>,
    /// HTTP method.
    pub method: Method,
    /// Path and query as received (provider prefix included, `key=` redacted).
    pub path: String,
    /// Request headers as `name: value\n` lines, secrets redacted (one buffer, so that logging
    /// costs one copy; read it with [`LoggedRequest::header`] and [`LoggedRequest::headers`]).
    header_block: Box<str>,
    /// The body as received (copied, so the server's read buffers are not kept alive).
    pub body: Bytes,
    /// Arrival time since the simulator started (tokio's monotonic clock).
    pub at: Duration,
}

impl LoggedRequest {
    /// Builds an entry; headers are redacted and packed, the body copied.
    pub(crate) fn new(
        seq: u64,
        provider: Option<Provider>,
        method: Method,
        path: String,
        headers: &HeaderMap,
        body: &[u8],
        at: Duration,
    ) -> LoggedRequest {
        let size: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 3)
            .sum();
        // Exact capacity: `into_boxed_str` then needs no reallocation.
        let mut block = String::with_capacity(size.max(1));
        for (name, value) in headers {
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                redact(name.as_str(), value)
            } else {
                String::from_utf8_lossy(value.as_bytes())
            };
            block.push_str(name.as_str());
            block.push_str(": ");
            // Header values cannot contain newlines, so the block splits unambiguously.
            block.push_str(&value);
            block.push('\n');
        }
        LoggedRequest {
            seq,
            provider,
            method,
            path,
            header_block: block.into_boxed_str(),
            body: Bytes::copy_from_slice(body),
            at,
        }
    }

    /// Header names (lowercase) and values in arrival order, secrets redacted.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_block
            .lines()
            .filter_map(|line| line.split_once(": "))
    }

    /// The first value of a header (name matched case-insensitively), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct HeaderPairs<'a>(&'a LoggedRequest);

impl Serialize for HeaderPairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for pair in self.0.headers() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl Serialize for LoggedRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("provider", &self.provider)?;
        map.serialize_entry("method", self.method.as_str())?;
        map.serialize_entry("path", &self.path)?;
        map.serialize_entry("headers", &HeaderPairs(self))?;
        map.serialize_entry("body", &self.body_text())?;
        map.serialize_entry("at", &self.at.as_secs_f64())?;
        map.end()
    }
}

const SHARDS: usize = 8;

/// A bounded, sharded log: writers lock one of several shards (chosen by sequence number),
/// so concurrent requests rarely contend; readers merge the shards in arrival order.
#[derive(Debug)]
pub(crate) struct RequestLog {
    seq: AtomicU64,
    capacity: usize,
    per_shard: usize,
    shards: [Mutex<VecDeque<LoggedRequest>>; SHARDS],
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> RequestLog {
        RequestLog {
            seq: AtomicU64::new(0),
            capacity: capacity.max(1),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            shards: std::array::from_fn(|_| Mutex::new(VecDeque::new())),
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub(crate) fn push(&self, entry: LoggedRequest) {
        let shard = &self.shards[(entry.seq as usize) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard {
            shard.pop_front();
        }
        shard.push_back(entry);
    }

    pub(crate) fn entries(&self) -> Vec<LoggedRequest> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(shard.iter().cloned());
        }
        all.sort_by_key(|e| e.seq);
        // Shards round the capacity up; readers see exactly the newest `capacity` entries.
        let excess = all.len().saturating_sub(self.capacity);
        all.drain(..excess);
        all
    }

    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// Header names whose values are secrets.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
];

/// The redacted form of a secret header value (the `Authorization` scheme is kept).
fn redact(name: &str, value: &HeaderValue) -> std::borrow::Cow<'static, str> {
    let scheme = value
        .to_str()
        .ok()
        .filter(|_| name.ends_with("authorization"))
        .and_then(|v| v.split_once(' '))
        .map(|(scheme, _)| scheme);
    match scheme {
        Some("Bearer") | Some("bearer") => "Bearer [redacted]".into(),
        Some("Basic") => "Basic [redacted]".into(),
        _ => "[redacted]".into(),
    }
}

/// Redacts `key=` in a query string.
pub(crate) fn redact_query(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("key", _)) => "key=[redacted]".to_owned(),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer sk-1"));
        h.insert("x-api-key", HeaderValue::from_static("sk-ant"));
        h.insert("x-goog-api-key", HeaderValue::from_static("AIza"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        let r = LoggedRequest::new(1, None, Method::POST, "/".into(), &h, b"{}", Duration::ZERO);
        assert_eq!(r.header("authorization"), Some("Bearer [redacted]"));
        assert_eq!(r.header("X-Api-Key"), Some("[redacted]"));
        assert_eq!(r.header("x-goog-api-key"), Some("[redacted]"));
        assert_eq!(r.header("accept"), Some("application/json"));
        assert_eq!(r.headers().count(), 4);
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("sk-1") && !json.contains("sk-ant") && !json.contains("AIza"));
        assert_eq!(
            redact_query("/v1/models/g:generateContent?alt=sse&key=AIza"),
            "/v1/models/g:generateContent?alt=sse&key=[redacted]"
        );
    }

    #[test]
    fn bounded_and_ordered() {
        let log = RequestLog::new(16);
        for _ in 0..40 {
            let seq = log.next_seq();
            log.push(LoggedRequest::new(
                seq,
                None,
                Method::GET,
                "/".into(),
                &HeaderMap::new(),
                b"",
                Duration::ZERO,
            ));
        }
        let e = log.entries();
        assert_eq!(e.len(), 16);
        assert!(e.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(e.last().unwrap().seq, 40);
    }
}
