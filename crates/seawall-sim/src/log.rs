//! The request log: every request the simulator received, with secrets redacted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::config::Provider;

/// One received request. API keys are replaced by `[redacted]` in headers and the query.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// Arrival order across all providers, from 1.
    pub seq: u64,
    /// The provider whose routes matched (`None` for unknown paths).
    pub provider: Option<Provider>,
    /// HTTP method.
    pub method: String,
    /// Path and query as received, without the provider prefix removed.
    pub path: String,
    /// Header names (lowercase) and values, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body (lossy UTF-8).
    pub body: String,
    /// Arrival time since the simulator started (tokio's monotonic clock).
    #[serde(serialize_with = "as_secs")]
    pub at: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl LoggedRequest {
    /// The first value of a header (name is matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const SHARDS: usize = 8;

/// A bounded, sharded log: writers lock one of several shards (chosen by sequence number),
/// so concurrent requests rarely contend; readers merge the shards in arrival order.
#[derive(Debug)]
pub(crate) struct RequestLog {
    seq: AtomicU64,
    per_shard: usize,
    shards: [Mutex<VecDeque<LoggedRequest>>; SHARDS],
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> RequestLog {
        RequestLog {
            seq: AtomicU64::new(0),
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
        all
    }

    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// Header names whose values are secrets.
pub(crate) fn is_secret_header(name: &str) -> bool {
    matches!(
        name,
        "authorization" | "x-api-key" | "x-goog-api-key" | "api-key" | "proxy-authorization"
    )
}

/// Redacts a secret header value, keeping the scheme of `Authorization`.
pub(crate) fn redact_value(name: &str, value: &str) -> String {
    if name == "authorization" || name == "proxy-authorization" {
        match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} [redacted]"),
            None => "[redacted]".to_owned(),
        }
    } else {
        "[redacted]".to_owned()
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
        assert_eq!(
            redact_value("authorization", "Bearer sk-1"),
            "Bearer [redacted]"
        );
        assert_eq!(redact_value("x-api-key", "sk-ant"), "[redacted]");
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
            log.push(LoggedRequest {
                seq,
                provider: None,
                method: "GET".into(),
                path: "/".into(),
                headers: vec![],
                body: String::new(),
                at: Duration::ZERO,
            });
        }
        let e = log.entries();
        assert_eq!(e.len(), 16);
        assert!(e.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(e.last().unwrap().seq, 40);
    }
}
