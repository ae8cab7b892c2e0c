//! Per-key request and token quotas: fixed windows, or token buckets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{QuotaConfig, QuotaRefill};
use crate::reply::fnv1a;

const SHARDS: usize = 16;

/// What a key has spent: in its current window, or (for token buckets) what it has spent
/// less what has refilled, as of `window_start`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    window_start: Instant,
    requests: f64,
    input_tokens: f64,
    output_tokens: f64,
    tokens: f64,
}

impl Bucket {
    fn empty(now: Instant) -> Bucket {
        Bucket {
            window_start: now,
            requests: 0.0,
            input_tokens: 0.0,
            output_tokens: 0.0,
            tokens: 0.0,
        }
    }
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
    bucket: AtomicBool,
    shards: [Mutex<HashMap<u64, Bucket>>; SHARDS],
}

impl Quotas {
    pub(crate) fn new(config: &QuotaConfig) -> Quotas {
        let q = Quotas {
            requests: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            window_ms: AtomicU64::new(1),
            bucket: AtomicBool::new(false),
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
        self.bucket
            .store(config.refill == QuotaRefill::Bucket, Ordering::Release);
        self.reset();
    }

    pub(crate) fn config(&self) -> QuotaConfig {
        QuotaConfig {
            requests: self.requests.load(Ordering::Acquire),
            tokens: self.tokens.load(Ordering::Acquire),
            window_ms: self.window_ms.load(Ordering::Acquire),
            refill: if self.bucket.load(Ordering::Acquire) {
                QuotaRefill::Bucket
            } else {
                QuotaRefill::Window
            },
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
        let bucket = shard.entry(hash).or_insert(Bucket::empty(now));
        let continuous = self.bucket.load(Ordering::Acquire);
        let elapsed = now.duration_since(bucket.window_start);
        if continuous {
            // Spent units drain at the limit's rate: what has refilled since.
            let drained = elapsed.as_secs_f64() / window.as_secs_f64();
            bucket.requests = (bucket.requests - drained * limit_requests as f64).max(0.0);
            let tokens = drained * limit_tokens as f64;
            bucket.tokens = (bucket.tokens - tokens).max(0.0);
            bucket.input_tokens = (bucket.input_tokens - tokens).max(0.0);
            bucket.output_tokens = (bucket.output_tokens - tokens).max(0.0);
            bucket.window_start = now;
        } else if elapsed >= window {
            *bucket = Bucket::empty(now);
        }
        let (input_f, output_f) = (input as f64, output as f64);
        let refused_for_requests = bucket.requests + 1.0 > limit_requests as f64;
        let refused_for_tokens =
            !refused_for_requests && bucket.tokens + input_f + output_f > limit_tokens as f64;
        let admitted = !refused_for_requests && !refused_for_tokens;
        if admitted {
            bucket.requests += 1.0;
            bucket.input_tokens += input_f;
            bucket.output_tokens += output_f;
            bucket.tokens += input_f + output_f;
        }
        let b = *bucket;
        drop(shard);
        let left = |limit: u64, spent: f64| limit.saturating_sub(spent.ceil() as u64);
        let reset_in = if continuous {
            // Until the fullest-spent dimension has drained: the bucket is full again.
            let share = (b.requests / limit_requests.max(1) as f64)
                .max(b.tokens / limit_tokens.max(1) as f64);
            window.mul_f64(share.clamp(0.0, 1.0))
        } else {
            window.saturating_sub(now.duration_since(b.window_start))
        };
        QuotaView {
            limit_requests,
            remaining_requests: left(limit_requests, b.requests),
            limit_tokens,
            remaining_tokens: left(limit_tokens, b.tokens),
            remaining_input_tokens: left(limit_tokens, b.input_tokens),
            remaining_output_tokens: left(limit_tokens, b.output_tokens),
            reset_in,
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
            refill: QuotaRefill::Window,
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

    #[tokio::test(start_paused = true)]
    async fn a_token_bucket_refills_continuously_and_resets_when_full() {
        let q = Quotas::new(&QuotaConfig {
            requests: 10,
            tokens: 1_000,
            window_ms: 10_000,
            refill: QuotaRefill::Bucket,
        });
        let a = q.admit("k", 400, 100);
        assert!(a.admitted);
        assert_eq!((a.remaining_requests, a.remaining_tokens), (9, 500));
        // Half the limit spent: full again in half the window.
        assert_eq!(a.reset_in, Duration::from_secs(5));
        assert!(!q.admit("k", 400, 200).admitted, "600 do not fit in 500");
        // A tenth of the window refills a tenth of the limit.
        tokio::time::advance(Duration::from_secs(1)).await;
        let b = q.admit("k", 50, 50);
        assert!(b.admitted);
        assert_eq!(b.remaining_tokens, 500);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(q.admit("k", 0, 0).remaining_tokens, 1_000);
    }
}
