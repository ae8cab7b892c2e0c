//! Per-key request and token quotas with fixed windows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::QuotaConfig;
use crate::reply::fnv1a;

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    window_start: Instant,
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
}

/// Usage after a request was admitted or refused, for the rate-limit headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuotaView {
    pub(crate) limit_requests: u64,
    pub(crate) remaining_requests: u64,
    pub(crate) limit_tokens: u64,
    pub(crate) remaining_tokens: u64,
    pub(crate) remaining_input_tokens: u64,
    pub(crate) remaining_output_tokens: u64,
    /// Time until the window resets.
    pub(crate) reset_in: Duration,
    /// Whether the request was admitted.
    pub(crate) admitted: bool,
    /// Whether the request was refused for tokens (not requests).
    pub(crate) refused_for_tokens: bool,
}

/// Quota state of one provider. Keys are hashed, never stored; each key's bucket lives in one
/// of several shards so that concurrent keys do not contend.
#[derive(Debug)]
pub(crate) struct Quotas {
    requests: AtomicU64,
    tokens: AtomicU64,
    window_ms: AtomicU64,
    shards: [Mutex<HashMap<u64, Bucket>>; SHARDS],
}

impl Quotas {
    pub(crate) fn new(config: &QuotaConfig) -> Quotas {
        let q = Quotas {
            requests: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            window_ms: AtomicU64::new(1),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        };
        q.configure(config);
        q
    }

    /// Replaces the limits and forgets all usage.
    pub(crate) fn configure(&self, config: &QuotaConfig) {
        self.requests.store(config.requests, Ordering::Release);
        self.tokens.store(config.tokens, Ordering::Release);
        self.window_ms
            .store(config.window_ms.max(1), Ordering::Release);
        self.reset();
    }

    pub(crate) fn config(&self) -> QuotaConfig {
        QuotaConfig {
            requests: self.requests.load(Ordering::Acquire),
            tokens: self.tokens.load(Ordering::Acquire),
            window_ms: self.window_ms.load(Ordering::Acquire),
        }
    }

    pub(crate) fn reset(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Charges one request of `input + output` tokens to `key` if it fits.
    pub(crate) fn admit(&self, key: &str, input: u64, output: u64) -> QuotaView {
        let limit_requests = self.requests.load(Ordering::Acquire);
        let limit_tokens = self.tokens.load(Ordering::Acquire);
        let window = Duration::from_millis(self.window_ms.load(Ordering::Acquire));
        let hash = fnv1a(0, key.as_bytes());
        let now = Instant::now();
        let mut shard = self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let bucket = shard.entry(hash).or_insert(Bucket {
            window_start: now,
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
        });
        if now.duration_since(bucket.window_start) >= window {
            *bucket = Bucket {
                window_start: now,
                requests: 0,
                input_tokens: 0,
                output_tokens: 0,
            };
        }
        let used_tokens = bucket.input_tokens + bucket.output_tokens;
        let refused_for_requests = bucket.requests >= limit_requests;
        let refused_for_tokens =
            !refused_for_requests && used_tokens + input + output > limit_tokens;
        let admitted = !refused_for_requests && !refused_for_tokens;
        if admitted {
            bucket.requests += 1;
            bucket.input_tokens += input;
            bucket.output_tokens += output;
        }
        let b = *bucket;
        drop(shard);
        let used = b.input_tokens + b.output_tokens;
        QuotaView {
            limit_requests,
            remaining_requests: limit_requests.saturating_sub(b.requests),
            limit_tokens,
            remaining_tokens: limit_tokens.saturating_sub(used),
            remaining_input_tokens: limit_tokens.saturating_sub(b.input_tokens),
            remaining_output_tokens: limit_tokens.saturating_sub(b.output_tokens),
            reset_in: window.saturating_sub(now.duration_since(b.window_start)),
            admitted,
            refused_for_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_and_tokens_per_window() {
        let q = Quotas::new(&QuotaConfig {
            requests: 2,
            tokens: 100,
            window_ms: 1000,
        });
        let a = q.admit("k", 10, 5);
        assert!(a.admitted);
        assert_eq!((a.remaining_requests, a.remaining_tokens), (1, 85));
        assert!(q.admit("k", 10, 5).admitted);
        let refused = q.admit("k", 1, 1);
        assert!(!refused.admitted && !refused.refused_for_tokens);
        assert!(q.admit("other", 10, 5).admitted, "keys are independent");
        assert!(!q.admit("other", 90, 1).admitted, "token limit");
        tokio::time::advance(Duration::from_millis(1000)).await;
        let after = q.admit("k", 1, 1);
        assert!(after.admitted);
        assert_eq!(after.remaining_requests, 1);
    }
}
