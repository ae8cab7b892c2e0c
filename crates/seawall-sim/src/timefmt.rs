//! Time formats the providers put in headers: Go durations (OpenAI), RFC 3339 (Anthropic),
//! protobuf durations (Gemini `RetryInfo`) and HTTP dates (`retry-after`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats a duration the way Go's `time.Duration.String` does: `12ms`, `1s`, `6m0s`, `1h0m0s`,
/// `1.5s`. OpenAI's `x-ratelimit-reset-*` headers use this form.
pub(crate) fn go_duration(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return "0s".to_owned();
    }
    if total_ms < 1000 {
        return format!("{total_ms}ms");
    }
    let hours = total_ms / 3_600_000;
    let minutes = (total_ms / 60_000) % 60;
    let millis_in_minute = total_ms % 60_000;
    let seconds = trim_seconds(millis_in_minute);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `1500` ms → `1.5`, `2000` → `2`.
fn trim_seconds(millis: u128) -> String {
    let whole = millis / 1000;
    let frac = millis % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        let s = format!("{whole}.{frac:03}");
        s.trim_end_matches('0').to_owned()
    }
}

/// Formats a protobuf `Duration` JSON string: `26s`, `34.400s` → `34.4s`.
pub(crate) fn proto_duration(d: Duration) -> String {
    format!("{}s", trim_seconds(d.as_millis()))
}

/// Formats a wall-clock time as RFC 3339 in UTC with second precision: `2025-08-21T12:40:59Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = seawall_core::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Formats an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Now plus `d`, capped at ten years ahead: absurd configured values must not overflow the
/// clock or the date formats (HTTP dates stop at year 9999).
pub(crate) fn now_plus(d: Duration) -> SystemTime {
    const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 86_400);
    SystemTime::now() + d.min(TEN_YEARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_match_go_formatting() {
        assert_eq!(go_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(go_duration(Duration::from_millis(1000)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(61_250)), "1m1.25s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn rfc3339_and_proto_durations() {
        let t = UNIX_EPOCH + Duration::from_secs(1_755_780_059);
        assert_eq!(rfc3339(t), "2025-08-21T12:40:59Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(proto_duration(Duration::from_millis(34_400)), "34.4s");
        assert_eq!(proto_duration(Duration::from_secs(26)), "26s");
    }
}
