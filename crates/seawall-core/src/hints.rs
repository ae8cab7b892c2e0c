//! Retry and quota hints from provider responses: `retry-after-ms`, `retry-after` (seconds,
//! fractional seconds or an HTTP date), `x-should-retry`, OpenAI `x-ratelimit-*` (Go-style
//! durations such as `6m0s` or `12ms`), Anthropic `anthropic-ratelimit-*` (RFC 3339
//! resets) and Gemini `RetryInfo.retryDelay` in error bodies.
//!
//! Parsed on success and error responses alike; every parser is lenient (a value it cannot
//! read is ignored, never an error) and takes the current wall-clock time as an argument so
//! that dates become durations without reading a clock here.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::HeaderMap;
//! use seawall_core::hints;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("retry-after-ms", "300".parse().unwrap());
//! headers.insert("retry-after", "5".parse().unwrap());
//! headers.insert("x-ratelimit-remaining-tokens", "0".parse().unwrap());
//! headers.insert("x-ratelimit-reset-tokens", "6m0s".parse().unwrap());
//!
//! let retry = hints::retry_hints(&headers, SystemTime::now());
//! assert_eq!(retry.retry_after, Some(Duration::from_millis(300)), "retry-after-ms wins");
//! assert_eq!(retry.quota_reset, Some(Duration::from_secs(360)));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::error::RetryHints;
use crate::quota::{QuotaSnapshot, QuotaWindow};

/// The retry hints of a response: the server's wait, its explicit yes or no, and the reset
/// of an exhausted quota window.
pub fn retry_hints(headers: &HeaderMap, now: SystemTime) -> RetryHints {
    RetryHints {
        retry_after: retry_after(headers, now),
        should_retry: header(headers, "x-should-retry").and_then(|value| {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        }),
        quota_reset: quota_snapshot(headers, now).exhausted_until(),
    }
}

/// The server's wait: `retry-after-ms` (milliseconds, possibly fractional) if present,
/// otherwise `retry-after` as (possibly fractional) seconds or as an HTTP date. A date in the
/// past gives zero.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(parse_non_negative_f64) {
        return seconds(ms / 1000.0);
    }
    let value = header(headers, "retry-after")?.trim();
    if let Some(value) = parse_non_negative_f64(value) {
        return seconds(value);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
    )
}

/// The longest wait a hint can ask for. A server that asks for more (a garbled or hostile
/// value: `retry-after: 11406509395579377545` is more seconds than a clock can add) gets
/// this, which parks the target past any deadline without overflowing anyone's arithmetic.
pub const MAX_HINT: Duration = Duration::from_secs(366 * 86_400);

/// `value` seconds as a wait, at most [`MAX_HINT`].
fn seconds(value: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(value.min(MAX_HINT.as_secs_f64())).ok()
}

/// The rate-limit state in the headers, OpenAI's and Anthropic's families both.
///
/// One pass over the headers (every response is read, and most carry a dozen or two):
/// no header name is built or hashed. Where a header repeats, its first value counts.
pub fn quota_snapshot(headers: &HeaderMap, now: SystemTime) -> QuotaSnapshot {
    // OpenAI: requests, tokens. Anthropic: requests, tokens, input-tokens, output-tokens.
    let mut openai = [WindowFields::default(); 2];
    let mut anthropic = [WindowFields::default(); 4];
    for (name, value) in headers {
        let name = name.as_str();
        let (fields, field) = if let Some(rest) = name.strip_prefix("x-ratelimit-") {
            // `limit-requests`, `remaining-tokens`, `reset-requests`.
            let Some((field, family)) = rest.split_once('-') else {
                continue;
            };
            let slot = match family {
                "requests" => 0,
                "tokens" => 1,
                _ => continue,
            };
            (&mut openai[slot], field)
        } else if let Some(rest) = name.strip_prefix("anthropic-ratelimit-") {
            // `requests-limit`, `input-tokens-remaining`, `output-tokens-reset`.
            let Some((family, field)) = rest.rsplit_once('-') else {
                continue;
            };
            let slot = match family {
                "requests" => 0,
                "tokens" => 1,
                "input-tokens" => 2,
                "output-tokens" => 3,
                _ => continue,
            };
            (&mut anthropic[slot], field)
        } else {
            continue;
        };
        let slot = match field {
            "limit" => &mut fields.limit,
            "remaining" => &mut fields.remaining,
            "reset" => &mut fields.reset,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }
    let openai = openai.map(|fields| fields.window(parse_go_duration));
    let anthropic = anthropic.map(|fields| {
        fields.window(|value| {
            let at = parse_rfc3339(value)?;
            Some(at.duration_since(now).unwrap_or(Duration::ZERO))
        })
    });
    QuotaSnapshot {
        requests: openai[0].or(anthropic[0]),
        tokens: openai[1].or(anthropic[1]),
        input_tokens: anthropic[2],
        output_tokens: anthropic[3],
    }
}

/// The raw values of one rate-limit window's headers.
#[derive(Clone, Copy, Default)]
struct WindowFields<'a> {
    limit: Option<&'a HeaderValue>,
    remaining: Option<&'a HeaderValue>,
    reset: Option<&'a HeaderValue>,
}

impl WindowFields<'_> {
    fn window(self, parse_reset: impl Fn(&str) -> Option<Duration>) -> Option<QuotaWindow> {
        fn text(value: Option<&HeaderValue>) -> Option<&str> {
            value?.to_str().ok()
        }
        let number = |value| text(value).and_then(|v| v.trim().parse::<u64>().ok());
        let window = QuotaWindow {
            limit: number(self.limit),
            remaining: number(self.remaining),
            reset_after: text(self.reset).and_then(|v| parse_reset(v.trim())),
        };
        (window != QuotaWindow::default()).then_some(window)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn parse_non_negative_f64(value: &str) -> Option<f64> {
    let value: f64 = value.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value)
}

/// A Go-style duration as OpenAI sends in `x-ratelimit-reset-*`: `6m0s`, `12ms`, `1s`,
/// `34.337s`, `1h2m3.5s`, `250us`. A bare number is read as seconds.
pub fn parse_go_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Some(value) = parse_non_negative_f64(value) {
        return seconds(value);
    }
    let mut rest = value;
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    seconds(total)
}

/// A protobuf `Duration` in its JSON form, as Gemini's `RetryInfo.retryDelay`: `"26s"`,
/// `"34.4s"`.
pub fn parse_protobuf_duration(value: &str) -> Option<Duration> {
    seconds(parse_non_negative_f64(value.trim().strip_suffix('s')?)?)
}

/// Gemini's retry hint: the `retryDelay` of the `google.rpc.RetryInfo` entry in an error
/// body's `error.details`.
pub fn gemini_retry_delay(body: &Value) -> Option<Duration> {
    body.get("error")?
        .get("details")?
        .as_array()?
        .iter()
        .find(|detail| {
            detail
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|kind| kind.ends_with("google.rpc.RetryInfo"))
        })?
        .get("retryDelay")?
        .as_str()
        .and_then(parse_protobuf_duration)
}

/// An RFC 3339 timestamp as Anthropic sends in `anthropic-ratelimit-*-reset`:
/// `2025-08-21T12:40:59Z`, with optional fractional seconds and a numeric offset.
pub fn parse_rfc3339(value: &str) -> Option<SystemTime> {
    let bytes = value.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let text = value.get(range)?;
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())?
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &value[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        let digits = &fraction[..end];
        if digits.is_empty() {
            return None;
        }
        let padded: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        nanos = padded.parse().ok()?;
        rest = &fraction[end..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Both in range: checked above.
    let days = crate::calendar::days_from_civil(year, month as u32, day as u32);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}
