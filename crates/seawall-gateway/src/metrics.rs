//! The gateway's metrics, in the OpenMetrics text format of `prometheus-client`: the
//! library's call metrics per target and model (`seawall::metrics`), and the gateway's own
//! (requests by status, latency, inbound refusals, alerts, shared state), all under the
//! `seawall_gateway_` prefix.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use seawall::metrics::{CallMetrics, prometheus_client};
use seawall_core::Prices;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// The gateway's metrics (one per gateway, shared by every connection).
pub(crate) struct Metrics {
    registry: Registry,
    /// Every call, per target and model: counted by the `MetricsLayer` in front of the
    /// budget layer.
    pub(crate) calls: Arc<CallMetrics>,
    requests: Family<StatusLabels, Counter>,
    pub(crate) latency: Histogram,
    pub(crate) ttft: Histogram,
    pub(crate) stream_errors: Counter,
    pub(crate) inbound_rejected: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The families, registered; `prices` price each call's charges.
    pub(crate) fn new(prices: Prices) -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("seawall_gateway"),
            calls: Arc::new(CallMetrics::new().prices(prices)),
            requests: Family::default(),
            latency: Histogram::new(BUCKETS),
            ttft: Histogram::new(BUCKETS),
            stream_errors: Counter::default(),
            inbound_rejected: Counter::default(),
        };
        let registry = &mut metrics.registry;
        metrics.calls.register(registry);
        registry.register(
            "requests",
            "Requests answered, by HTTP status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from request to the end of the response (streams: to the last event)",
            Unit::Seconds,
            metrics.latency.clone(),
        );
        registry.register_with_unit(
            "time_to_first_token",
            "Time from request to the first content of a stream",
            Unit::Seconds,
            metrics.ttft.clone(),
        );
        registry.register(
            "stream_errors",
            "Streams that ended with an in-band error",
            metrics.stream_errors.clone(),
        );
        registry.register(
            "inbound_rejected",
            "Calls refused by a virtual key's request limit or budget",
            metrics.inbound_rejected.clone(),
        );
        metrics
    }

    /// Counts a finished request by its status.
    pub(crate) fn request(&self, status: u16) {
        self.requests.get_or_create(&StatusLabels { status }).inc();
    }

    /// Renders every metric, then `scraped`: the figures read at scrape time.
    pub(crate) fn render(&self, out: &mut String, scraped: Scraped) {
        let mut now = Registry::with_prefix("seawall_gateway");
        now.register_collector(Box::new(scraped));
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
        let _ = prometheus_client::encoding::text::encode(out, &now);
    }
}

/// One target's request counts at scrape time.
#[derive(Debug)]
pub(crate) struct TargetCounts {
    pub(crate) name: String,
    /// Requests sent, retries included.
    pub(crate) sent: u64,
    /// Attempts the router made (a target's retries count once).
    pub(crate) attempts: u64,
}

/// The figures read when `/metrics` is scraped.
#[derive(Debug)]
pub(crate) struct Scraped {
    pub(crate) targets: Vec<TargetCounts>,
    /// Alerts raised by kind, then those the webhook delivered and those given up on.
    pub(crate) alerts: (Vec<(&'static str, u64)>, u64, u64),
    pub(crate) state: Option<seawall_redis::StateStats>,
}

/// Writes one counter family with one label.
fn counters<'v>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (&'v str, u64)>,
) -> fmt::Result {
    // Unlike a registry, a collector's descriptors are written as given: the period the
    // registry adds to every help text is added here.
    let help = format!("{help}.");
    let mut family =
        encoder.encode_descriptor(name, &help, None, ConstCounter::new(0u64).metric_type())?;
    for (value, count) in values {
        ConstCounter::new(count).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        counters(
            &mut encoder,
            "upstream_requests",
            "Requests sent to a target, retries included",
            "target",
            self.targets.iter().map(|t| (t.name.as_str(), t.sent)),
        )?;
        counters(
            &mut encoder,
            "retries",
            "Requests the retry layers sent again to the same target",
            "target",
            self.targets
                .iter()
                .map(|t| (t.name.as_str(), t.sent.saturating_sub(t.attempts))),
        )?;
        let (raised, delivered, undelivered) = &self.alerts;
        counters(
            &mut encoder,
            "alerts",
            "Alerts raised, by kind",
            "kind",
            raised.iter().copied(),
        )?;
        counters(
            &mut encoder,
            "alert_webhook",
            "Alerts the webhook accepted, or that were given up on (queue full, retries spent)",
            "result",
            [("delivered", *delivered), ("undelivered", *undelivered)],
        )?;
        if let Some(stats) = &self.state {
            let up = ConstGauge::new(i64::from(stats.up));
            up.encode(encoder.encode_descriptor(
                "state_up",
                "Whether the last call to the shared state (Redis) got an answer.",
                None,
                up.metric_type(),
            )?)?;
            counters(
                &mut encoder,
                "state_calls",
                "Calls to the shared state, by result",
                "result",
                [
                    (
                        "answered",
                        stats.calls.saturating_sub(stats.errors + stats.timeouts),
                    ),
                    ("error", stats.errors),
                    ("timeout", stats.timeouts),
                ],
            )?;
            counters(
                &mut encoder,
                "state_unreachable",
                "Decisions taken while the shared state could not answer: on in-process state (fail_open) or refused (fail_closed)",
                "mode",
                [
                    ("fail_open", stats.fallbacks),
                    ("fail_closed", stats.refusals),
                ],
            )?;
        }
        Ok(())
    }
}
