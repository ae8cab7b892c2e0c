//! The access log: one line per chat call (target `seawall_gateway::access`, level `info`),
//! and the subscriber that writes every event as a JSON line, filtered with the usual
//! `RUST_LOG` syntax.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::{Cost, TargetId, Trail};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

pub use crate::log_writer::{LineWriter, LogGuard, line_writer};
use crate::telemetry::Telemetry;

/// The target of the access lines, for `RUST_LOG` (`seawall_gateway::access=off` turns
/// them off).
pub const ACCESS_TARGET: &str = "seawall_gateway::access";

/// What one chat call did, gathered as it goes and written when it ends (for a stream:
/// when the stream ends). Never a key: only the virtual key's name.
#[derive(Debug, Default)]
pub(crate) struct Access {
    /// The request's `x-request-id`: the client's, or the one the gateway made.
    pub(crate) request_id: Option<http::HeaderValue>,
    pub(crate) key: Option<Arc<str>>,
    /// The model asked for, at most its first 128 bytes.
    pub(crate) requested: Option<Arc<str>>,
    pub(crate) answered: Option<String>,
    pub(crate) stream: bool,
    /// Each target tried once, in order (shared names: nothing copied per call).
    targets: Vec<TargetId>,
    attempts: usize,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cost: Option<Cost>,
    pub(crate) ttft: Option<Duration>,
    pub(crate) error: Option<String>,
}

impl Access {
    /// Whether anybody listens: the record is not gathered otherwise.
    pub(crate) fn wanted() -> bool {
        tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
    }

    /// Takes the targets tried, the attempts, the tokens and the cost from the call's trail.
    pub(crate) fn follow(&mut self, trail: &Trail) {
        self.targets.clear();
        for attempt in &trail.attempts {
            if !self.targets.contains(&attempt.target) {
                self.targets.push(attempt.target.clone());
            }
        }
        self.attempts = trail.attempts.len();
        if !trail.charges.is_empty() {
            let (input, output) = trail.charges.iter().fold((0, 0), |(i, o), charge| {
                (
                    i + charge.usage.input_tokens,
                    o + charge.usage.output_tokens,
                )
            });
            self.input_tokens = Some(input);
            self.output_tokens = Some(output);
        }
        self.cost = trail.cost.or(self.cost);
        if let Some(model) = &trail.final_model {
            self.answered.get_or_insert_with(|| model.clone());
        }
    }

    /// Writes the line.
    pub(crate) fn log(&self, path: &str, status: u16, latency: Duration) {
        // To the microsecond.
        let millis = |d: Duration| d.as_micros() as f64 / 1e3;
        // Joined only when there are several: most calls try one target.
        let targets = match self.targets.as_slice() {
            [] => Cow::Borrowed(""),
            [target] => Cow::Borrowed(target.as_str()),
            several => Cow::Owned(
                several
                    .iter()
                    .map(TargetId::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        tracing::info!(
            target: ACCESS_TARGET,
            method = "POST",
            path,
            status,
            request_id = self.request_id.as_ref().and_then(|id| id.to_str().ok()),
            key = self.key.as_deref(),
            model = self.requested.as_deref(),
            answered_by = self.answered.as_deref(),
            targets = &*targets,
            attempts = self.attempts,
            stream = self.stream,
            latency_ms = millis(latency),
            ttft_ms = self.ttft.map(millis),
            input_tokens = self.input_tokens,
            output_tokens = self.output_tokens,
            cost_usd = self.cost.map(Cost::usd),
            error = self.error.as_deref(),
            "access"
        );
    }
}

/// The gateway's subscriber: every event as one JSON line on `writer`, filtered by
/// `filter` (`RUST_LOG` syntax; `info` shows the access lines and the layers' warnings).
///
/// Events only: the lines carry no span fields, so the log asks for no spans, and the
/// layers' call and attempt spans are not built for it (building and recording them for
/// a JSON log costs ~12 µs per call, see BENCHMARKS.md).
pub fn subscriber<W>(filter: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Registry::default().with(log_layer(filter, writer))
}

/// The JSON-lines layer of [`subscriber`], with its filter.
fn log_layer<S, W>(filter: &str, writer: W) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .event_format(crate::jsonl::JsonLines)
        .with_writer(writer)
        .with_filter(EnvFilter::new(filter).and(filter_fn(|meta| !meta.is_span())))
}

/// [`subscriber`], and with `telemetry` its exporting layer beside the log lines: `filter`
/// applies to the lines only, the exporter has its own (see [`Telemetry::layer`]).
pub fn subscriber_with<W>(
    filter: &str,
    writer: W,
    telemetry: Option<&Telemetry>,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let Some(telemetry) = telemetry else {
        return Box::new(subscriber(filter, writer));
    };
    Box::new(
        Registry::default()
            .with(log_layer(filter, writer))
            .with(telemetry.layer()),
    )
}

/// Installs [`subscriber`] on stdout with `RUST_LOG` (default `info`), for the binary.
/// Lines go through a bounded queue to a writer thread ([`line_writer`]), so a stdout nobody
/// reads drops lines rather than blocking calls; keep the guard until exit (it writes what
/// is queued).
pub fn init_from_env() -> LogGuard {
    init_from_env_with(None)
}

/// As [`init_from_env`], with `telemetry`'s exporting layer when there is one
/// ([`subscriber_with`]).
pub fn init_from_env_with(telemetry: Option<&Telemetry>) -> LogGuard {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let (writer, guard) = line_writer(std::io::stdout(), "seawall-log")
        .expect("the log's writer thread could not be started");
    if tracing::subscriber::set_global_default(subscriber_with(&filter, writer, telemetry)).is_err()
    {
        let _ = writeln!(
            std::io::stderr(),
            "seawall-gateway: a log subscriber was already set"
        );
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A callsite for hand-made metadata: the test asks the subscriber itself, so other
    /// tests' subscribers in the same process (and the interest they leave cached) do not
    /// matter.
    struct Site;

    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}

        fn metadata(&self) -> &tracing::Metadata<'_> {
            &CHAT_SPAN
        }
    }

    static SITE: Site = Site;

    static CHAT_SPAN: tracing::Metadata<'static> = tracing::Metadata::new(
        "chat",
        "seawall::failover",
        tracing::Level::INFO,
        None,
        None,
        None,
        tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&SITE)),
        tracing::metadata::Kind::SPAN,
    );

    static ACCESS_EVENT: tracing::Metadata<'static> = tracing::Metadata::new(
        "access",
        ACCESS_TARGET,
        tracing::Level::INFO,
        None,
        None,
        None,
        tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&SITE)),
        tracing::metadata::Kind::EVENT,
    );

    #[test]
    fn the_log_builds_no_span_but_writes_events() {
        use tracing::Subscriber as _;

        let lines = crate::log_writer::Captured::default();
        let sink = lines.clone();
        let writer = move || sink.clone();
        let log = subscriber("trace", writer);
        // What a callsite asks once: a span the log never shows is never built.
        let interest = log.register_callsite(&CHAT_SPAN);
        assert!(
            interest.is_never(),
            "a span no line shows is not built: {interest:?}"
        );
        assert!(!log.register_callsite(&ACCESS_EVENT).is_never());
        tracing::subscriber::with_default(log, || {
            tracing::info!(target: ACCESS_TARGET, status = 200, "access");
        });
        let text = lines.text();
        assert!(text.contains(r#""status":200"#), "{text}");
    }
}
