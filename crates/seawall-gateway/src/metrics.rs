//! Counters and histograms as atomics, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use seawall_core::{AttemptOutcome, Trail};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// The status codes the gateway answers with, for the requests counter.
const STATUSES: [u16; 11] = [200, 400, 401, 404, 405, 413, 429, 500, 502, 503, 504];

/// The gateway's metrics (one per gateway, shared by every connection).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: [AtomicU64; STATUSES.len()],
    pub(crate) latency: Histogram,
    pub(crate) ttft: Histogram,
    pub(crate) upstream_attempts: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) stream_errors: AtomicU64,
    pub(crate) limiter_wait_micros: AtomicU64,
    pub(crate) tokens_in: AtomicU64,
    pub(crate) tokens_out: AtomicU64,
    /// Cost in millionths of a dollar.
    pub(crate) cost_micro_usd: AtomicU64,
    pub(crate) inbound_rejected: AtomicU64,
}

impl Metrics {
    /// Counts a finished request by its status.
    pub(crate) fn request(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 4); // 500: anything unexpected.
        self.requests[i].fetch_add(1, Relaxed);
    }

    /// Counts the attempts (targets tried) and failovers of one call from its trail.
    pub(crate) fn trail(&self, trail: &Trail) {
        let mut previous: Option<&str> = None;
        for attempt in &trail.attempts {
            if matches!(attempt.outcome, AttemptOutcome::Skipped { .. }) {
                continue;
            }
            self.upstream_attempts.fetch_add(1, Relaxed);
            if previous.is_some_and(|p| p != attempt.target.as_str()) {
                self.failovers.fetch_add(1, Relaxed);
            }
            previous = Some(attempt.target.as_str());
        }
        let wait = trail.limiter_wait.as_micros().min(u64::MAX as u128) as u64;
        self.limiter_wait_micros.fetch_add(wait, Relaxed);
    }

    /// Renders every metric; `targets` adds the per-target gauges.
    pub(crate) fn render(&self, out: &mut String, targets: &[TargetGauges]) {
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_requests_total Requests answered, by HTTP status.\n\
             # TYPE seawall_gateway_requests_total counter"
        );
        for (status, count) in STATUSES.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "seawall_gateway_requests_total{{status=\"{status}\"}} {}",
                count.load(Relaxed)
            );
        }
        self.latency.render(
            out,
            "seawall_gateway_request_duration_seconds",
            "Time from request to the end of the response (streams: to the last event).",
        );
        self.ttft.render(
            out,
            "seawall_gateway_time_to_first_token_seconds",
            "Time from request to the first content of a stream.",
        );
        let attempts = self.upstream_attempts.load(Relaxed);
        let sent: u64 = targets.iter().map(|t| t.sent).sum();
        let counters: [(&str, &str, u64); 8] = [
            (
                "seawall_gateway_upstream_attempts_total",
                "Targets tried by the failover router (a target's retries count once).",
                attempts,
            ),
            (
                "seawall_gateway_retries_total",
                "Requests the retry layers sent again to the same target.",
                sent.saturating_sub(attempts),
            ),
            (
                "seawall_gateway_failovers_total",
                "Attempts that moved to another target.",
                self.failovers.load(Relaxed),
            ),
            (
                "seawall_gateway_stream_errors_total",
                "Streams that ended with an in-band error.",
                self.stream_errors.load(Relaxed),
            ),
            (
                "seawall_gateway_tokens_input_total",
                "Input tokens reported by the providers.",
                self.tokens_in.load(Relaxed),
            ),
            (
                "seawall_gateway_tokens_output_total",
                "Output tokens reported by the providers.",
                self.tokens_out.load(Relaxed),
            ),
            (
                "seawall_gateway_inbound_rejected_total",
                "Calls refused by a virtual key's request limit or token budget.",
                self.inbound_rejected.load(Relaxed),
            ),
            (
                "seawall_gateway_cost_micro_usd_total",
                "Cost of the answered calls in millionths of a US dollar, from configured prices.",
                self.cost_micro_usd.load(Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let wait = self.limiter_wait_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_limiter_wait_seconds_total Time calls waited in target rate limiters.\n\
             # TYPE seawall_gateway_limiter_wait_seconds_total counter\n\
             seawall_gateway_limiter_wait_seconds_total {wait}"
        );
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_breaker_state Breaker state per target: 0 closed, 1 half-open, 2 open.\n\
             # TYPE seawall_gateway_breaker_state gauge"
        );
        for t in targets {
            let _ = writeln!(
                out,
                "seawall_gateway_breaker_state{{target=\"{}\"}} {}",
                t.name, t.breaker
            );
        }
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_upstream_requests_total Requests sent to a target, retries included.\n\
             # TYPE seawall_gateway_upstream_requests_total counter"
        );
        for t in targets {
            let _ = writeln!(
                out,
                "seawall_gateway_upstream_requests_total{{target=\"{}\"}} {}",
                t.name, t.sent
            );
        }
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_limiter_queue_length Calls waiting in a target's rate limiter.\n\
             # TYPE seawall_gateway_limiter_queue_length gauge"
        );
        for t in targets {
            let _ = writeln!(
                out,
                "seawall_gateway_limiter_queue_length{{target=\"{}\"}} {}",
                t.name, t.queue
            );
        }
    }
}

/// One target's gauges at scrape time.
#[derive(Debug)]
pub(crate) struct TargetGauges {
    pub(crate) name: String,
    pub(crate) breaker: u8,
    pub(crate) queue: usize,
    pub(crate) sent: u64,
}
