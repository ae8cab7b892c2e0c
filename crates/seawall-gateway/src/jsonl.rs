//! The log's line format: one JSON object per event, its fields at the top level
//! (`{"timestamp":..,"level":..,"message":..,<fields>,"target":..}`), written straight
//! into the line.
//!
//! Written by hand for a measured reason: `tracing-subscriber`'s JSON formatter collects
//! each event's fields into a map of JSON values before writing them; an access line took
//! 1.83 µs with it and takes 0.72 µs here (`cargo bench -p seawall-gateway --bench encode
//! -- access_line`), and the governed gateway's extra CPU per request fell with it
//! (BENCHMARKS.md).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as JSON lines.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(384);
        line.push_str("{\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        line.push_str("\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push('"');
        event.record(&mut Fields(&mut line));
        line.push_str(",\"target\":");
        string(&mut line, event.metadata().target());
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'a>(&'a mut String);

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(',');
        string(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        string(self.0, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            // Rust's shortest round-trip form is valid JSON for a finite number.
            let _ = write!(self.0, "{value}");
        } else {
            self.0.push_str("null");
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        string(self.0, &format!("{value:?}"));
    }
}

/// `text` as a JSON string.
fn string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..i]);
        let c = rest[i..].chars().next().unwrap_or(' ');
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => {
                let _ = write!(out, "\\u{:04x}", u32::from(other));
            }
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::log_writer::Captured;

    #[test]
    fn each_event_is_one_json_object_with_its_fields_typed_and_escaped() {
        let lines = Captured::default();
        let sink = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(JsonLines)
            .with_writer(move || sink.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!(
                target: "seawall_gateway::access",
                text = "a \"quoted\" \\ line\nand\ttabs \u{1}",
                count = 42u64,
                delta = -7i64,
                ok = true,
                latency_ms = 1.25f64,
                nan = f64::NAN,
                missing = None::<&str>,
                debug = ?vec![1, 2],
                "access"
            );
            tracing::warn!("second");
        });
        let text = lines.text();
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert_eq!(parsed.len(), 2, "{text}");
        let access = &parsed[0];
        assert_eq!(access["message"], "access");
        assert_eq!(access["level"], "INFO");
        assert_eq!(access["target"], "seawall_gateway::access");
        assert_eq!(access["text"], "a \"quoted\" \\ line\nand\ttabs \u{1}");
        assert_eq!(access["count"], 42);
        assert_eq!(access["delta"], -7);
        assert_eq!(access["ok"], true);
        assert_eq!(access["latency_ms"], 1.25);
        assert!(access["nan"].is_null());
        assert!(access.get("missing").is_none(), "a None field is left out");
        assert_eq!(access["debug"], "[1, 2]");
        assert!(
            access["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{access}"
        );
        assert_eq!(parsed[1]["level"], "WARN");
        assert_eq!(parsed[1]["message"], "second");
    }
}
