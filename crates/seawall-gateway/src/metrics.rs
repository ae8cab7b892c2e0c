//! Counters and histograms as atomics, rendered in the Prometheus text format.

use std::fmt::{self, Write as _};
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

    /// The `q` quantile (0 to 1) in seconds, as the upper bound of its bucket (the last
    /// bound for values past it); `None` before the first value.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count.load(Relaxed);
        if count == 0 {
            return None;
        }
        let rank = (q * count as f64).ceil().max(1.0) as u64;
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            if cumulative >= rank {
                return Some(*bound);
            }
        }
        BUCKETS.last().copied()
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
    /// Cost in nano-dollars.
    pub(crate) cost_nano_usd: AtomicU64,
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
    /// Renders every metric; `alerts` are the alerts raised by kind (spend, expensive call,
    /// budget share), then those the webhook delivered and those given up on.
    pub(crate) fn render(
        &self,
        out: &mut String,
        targets: &[TargetGauges],
        alerts: ([u64; 3], u64, u64),
    ) {
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
        let counters: [(&str, &str, u64); 7] = [
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
                "Calls refused by a virtual key's request limit or budget.",
                self.inbound_rejected.load(Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let cost = self.cost_nano_usd.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_cost_usd_total Cost of the calls' attempts at their models' prices (unpriced models excluded).\n\
             # TYPE seawall_gateway_cost_usd_total counter\n\
             seawall_gateway_cost_usd_total {cost}"
        );
        let (raised, delivered, undelivered) = alerts;
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_alerts_total Spending alerts raised, by kind.\n\
             # TYPE seawall_gateway_alerts_total counter"
        );
        for (kind, count) in ["spend", "expensive_call", "budget_share"]
            .iter()
            .zip(raised)
        {
            let _ = writeln!(
                out,
                "seawall_gateway_alerts_total{{kind=\"{kind}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP seawall_gateway_alert_webhook_total Alerts the webhook accepted, or that were given up on (queue full, retries spent).\n\
             # TYPE seawall_gateway_alert_webhook_total counter\n\
             seawall_gateway_alert_webhook_total{{result=\"delivered\"}} {delivered}\n\
             seawall_gateway_alert_webhook_total{{result=\"undelivered\"}} {undelivered}"
        );
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
                LabelValue(&t.name),
                t.breaker
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
                LabelValue(&t.name),
                t.sent
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
                LabelValue(&t.name),
                t.queue
            );
        }
    }
}

/// A label value as the Prometheus text format writes it between its double quotes:
/// backslash, double quote and line feed escaped as `\\`, `\"` and `\n`.
struct LabelValue<'a>(&'a str);

impl fmt::Display for LabelValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
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

/// The shared state's figures: whether Redis answers, and what was decided without it.
pub(crate) fn render_state(out: &mut String, stats: &seawall_redis::StateStats) {
    let _ = writeln!(
        out,
        "# HELP seawall_gateway_state_up Whether the last call to the shared state (Redis) got an answer.\n\
         # TYPE seawall_gateway_state_up gauge\n\
         seawall_gateway_state_up {}\n\
         # HELP seawall_gateway_state_calls_total Calls to the shared state, by result.\n\
         # TYPE seawall_gateway_state_calls_total counter\n\
         seawall_gateway_state_calls_total{{result=\"answered\"}} {}\n\
         seawall_gateway_state_calls_total{{result=\"error\"}} {}\n\
         seawall_gateway_state_calls_total{{result=\"timeout\"}} {}\n\
         # HELP seawall_gateway_state_unreachable_total Decisions taken while the shared state could not answer: on in-process state (fail_open) or refused (fail_closed).\n\
         # TYPE seawall_gateway_state_unreachable_total counter\n\
         seawall_gateway_state_unreachable_total{{mode=\"fail_open\"}} {}\n\
         seawall_gateway_state_unreachable_total{{mode=\"fail_closed\"}} {}",
        u8::from(stats.up),
        stats.calls.saturating_sub(stats.errors + stats.timeouts),
        stats.errors,
        stats.timeouts,
        stats.fallbacks,
        stats.refusals,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample's metric name, labels (values unescaped) and value.
    type Sample<'a> = (&'a str, Vec<(&'a str, String)>, f64);

    /// One sample line of the Prometheus text format, read strictly.
    fn sample(line: &str) -> Result<Sample<'_>, String> {
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .ok_or("no value")?;
        let (name, mut rest) = line.split_at(name_end);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("bad metric name in {line:?}"));
        }
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            rest = inner;
            while !rest.starts_with('}') {
                let (label, tail) = rest.split_once("=\"").ok_or("no label value")?;
                if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(format!("bad label name {label:?}"));
                }
                let mut value = String::new();
                let mut chars = tail.char_indices();
                rest = loop {
                    match chars.next().ok_or("unterminated label value")? {
                        (i, '"') => break &tail[i + 1..],
                        (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => return Err(format!("bad escape \\{other}")),
                        },
                        (_, '\n') => return Err("a line feed in a label value".into()),
                        (_, c) => value.push(c),
                    }
                };
                labels.push((label, value));
                rest = rest.strip_prefix(',').unwrap_or(rest);
                if !(rest.starts_with('}') || rest.starts_with(|c: char| c.is_ascii_alphabetic())) {
                    return Err(format!("bad label list in {line:?}"));
                }
            }
            rest = &rest[1..];
        }
        let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .map_err(|_| format!("bad value {other:?} in {line:?}"))?,
        };
        Ok((name, labels, value))
    }

    #[test]
    fn label_values_are_escaped_so_the_exposition_parses() {
        let name = "a \"quoted\" \\ name\nand a second line";
        let metrics = Metrics::default();
        let mut out = String::new();
        metrics.render(
            &mut out,
            &[TargetGauges {
                name: name.to_owned(),
                breaker: 2,
                queue: 3,
                sent: 4,
            }],
            ([1, 2, 3], 4, 5),
        );
        let mut per_target = Vec::new();
        for line in out.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (metric, labels, value) =
                sample(line).unwrap_or_else(|e| panic!("{e}\nin:\n{out}"));
            if let [("target", target)] = labels.as_slice() {
                assert_eq!(target, name);
                per_target.push((metric, value));
            }
        }
        assert_eq!(
            per_target,
            [
                ("seawall_gateway_breaker_state", 2.0),
                ("seawall_gateway_upstream_requests_total", 4.0),
                ("seawall_gateway_limiter_queue_length", 3.0),
            ]
        );
        assert!(
            out.contains(r#"{target="a \"quoted\" \\ name\nand a second line"} 2"#),
            "{out}"
        );
    }
}
