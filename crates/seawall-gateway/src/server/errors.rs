//! Error replies: OpenAI-shaped bodies, the mapping of upstream failures and budget
//! refusals to statuses, and the `x-seawall-*` headers of every reply.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use seawall::budget::{BudgetExceeded, BudgetUnavailable, RequestCapExceeded, Unpriced};
use seawall::cache::CacheUnavailable;
use seawall::idempotency::{FirstCallFailed, IdempotencyConflict, IdempotencyUnavailable};
use seawall_core::{
    AttemptOutcome, BoxError, Cause, Classifier, Cost, ErrorKind, ErrorWithTrail, Trail,
};

use super::relay::{BodyKind, GatewayBody, Reply, json_reply};
use super::{Shared, VirtualKey};
use crate::dialect::Dialect;
use crate::wire::{self, BadRequest};

/// An OpenAI-shaped error reply: `{"error": {"message", "type", "param", "code"}}`.
pub(super) fn error_reply(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Reply {
    let body = wire::error_body(message, kind, param, code);
    json_reply(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// The 404 for a model no group answers to.
pub(super) fn unknown_model(model: &str) -> Reply {
    error_reply(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("model_not_found"),
        Some("model"),
        &format!(
            "the model `{}` does not exist",
            // Named back only in part: the client sent it, and it may be huge.
            prefix(model, 128)
        ),
    )
}

/// The 400 for a request body its dialect does not accept.
pub(super) fn bad_request(bad: &BadRequest) -> Reply {
    error_reply(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        None,
        bad.param.as_deref(),
        &bad.message,
    )
}

/// An error reply in `dialect`'s shape: the replies above are written in OpenAI's, and a
/// call on another dialect's route gets the same status, headers and message in its own.
pub(super) fn in_dialect(reply: Reply, dialect: Dialect) -> Reply {
    if dialect == Dialect::Chat || reply.status().as_u16() < 400 {
        return reply;
    }
    let (parts, body) = reply.into_parts();
    let GatewayBody(BodyKind::Full(Some(bytes))) = &body else {
        return Reply::from_parts(parts, body);
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Reply::from_parts(parts, body);
    };
    let field = |name: &str| value.pointer(name).and_then(serde_json::Value::as_str);
    let body = dialect.error_body(
        parts.status.as_u16(),
        field("/error/type").unwrap_or("server_error"),
        field("/error/code"),
        field("/error/param"),
        field("/error/message").unwrap_or_default(),
    );
    Reply::from_parts(parts, GatewayBody(BodyKind::Full(Some(body.into()))))
}

/// The `error.code` (or, without one, `error.type`) of an error reply's body.
pub(super) fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    error
        .get("code")
        .and_then(serde_json::Value::as_str)
        .or_else(|| error.get("type").and_then(serde_json::Value::as_str))
        .map(str::to_owned)
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
pub(super) fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

// Header names written on every reply, parsed once.
pub(super) static X_SEAWALL_ATTEMPTS: HeaderName = HeaderName::from_static("x-seawall-attempts");
pub(super) static X_SEAWALL_TARGET: HeaderName = HeaderName::from_static("x-seawall-target");
pub(super) static X_SEAWALL_MODEL: HeaderName = HeaderName::from_static("x-seawall-model");
pub(super) static X_SEAWALL_CACHE: HeaderName = HeaderName::from_static("x-seawall-cache");
pub(super) static X_SEAWALL_DOWNGRADED_FROM: HeaderName =
    HeaderName::from_static("x-seawall-downgraded-from");
pub(super) static X_SEAWALL_DROPPED_FIELDS: HeaderName =
    HeaderName::from_static("x-seawall-dropped-fields");
pub(super) static X_SEAWALL_COST: HeaderName = HeaderName::from_static("x-seawall-cost-usd");
pub(super) static X_SEAWALL_BUDGET_USD: HeaderName =
    HeaderName::from_static("x-seawall-budget-remaining-usd");
pub(super) static X_SEAWALL_BUDGET_TOKENS: HeaderName =
    HeaderName::from_static("x-seawall-budget-remaining-tokens");
pub(super) static X_SEAWALL_BUDGET_RESET: HeaderName =
    HeaderName::from_static("x-seawall-budget-reset");

/// The call's cost in dollars, or `unknown` when its model has no price.
pub(super) fn cost_header(cost: Option<Cost>) -> HeaderValue {
    match cost {
        Some(cost) => usd_header(cost),
        None => HeaderValue::from_static("unknown"),
    }
}

/// `cost` in dollars to nine decimals, as a header value.
fn usd_header(cost: Cost) -> HeaderValue {
    // The text's own buffer becomes the value's: no second copy.
    HeaderValue::from_maybe_shared(Bytes::from(usd_text(cost)))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// Below this many nanodollars ($4M) a cost's float in dollars is within half a
/// nanodollar of the exact amount, so both texts below agree.
const EXACT_NANOS: u64 = 4_000_000_000_000_000;

/// `cost` in dollars to nine decimals, the text `format!("{:.9}", cost.usd())` writes:
/// from the integer nanodollars where the two agree (float formatting to a precision is
/// the slow path of `fmt`), through the float above.
fn usd_text(cost: Cost) -> String {
    let nanos = cost.nanos();
    if nanos >= EXACT_NANOS {
        return format!("{:.9}", cost.usd());
    }
    let mut text = String::with_capacity(24);
    let _ = write!(
        text,
        "{}.{:09}",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000
    );
    text
}

/// What the key's tightest budgets have left (in dollars and in tokens, when it has such
/// budgets), and when the tightest resets (seconds since the epoch).
pub(super) fn budget_headers(
    shared: &Shared,
    key: Option<&VirtualKey>,
    headers: &mut http::HeaderMap,
) {
    let Some(key) = key.filter(|key| key.budgeted) else {
        return;
    };
    let left = crate::spend::remaining(&shared.budgets, &key.name);
    let mut reset = None;
    if let Some((usd, resets)) = left.usd {
        headers.insert(&X_SEAWALL_BUDGET_USD, usd_header(usd));
        reset = resets;
    }
    if let Some((tokens, resets)) = left.tokens {
        headers.insert(&X_SEAWALL_BUDGET_TOKENS, HeaderValue::from(tokens));
        reset = match (reset, resets) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if let Some(at) = reset.and_then(|at| at.duration_since(UNIX_EPOCH).ok()) {
        headers.insert(&X_SEAWALL_BUDGET_RESET, HeaderValue::from(at.as_secs()));
    }
}

pub(super) fn trail_headers(headers: &mut http::HeaderMap, trail: &Trail, model: &str) {
    headers.insert(
        &X_SEAWALL_ATTEMPTS,
        HeaderValue::from(trail.sent_attempts() as u64),
    );
    if let Some(target) = &trail.final_target
        && let Ok(value) = HeaderValue::from_str(target.as_str())
    {
        headers.insert(&X_SEAWALL_TARGET, value);
    }
    if let Ok(value) = HeaderValue::from_str(model) {
        headers.insert(&X_SEAWALL_MODEL, value);
    }
    if let Some(status) = trail.cache {
        headers.insert(&X_SEAWALL_CACHE, HeaderValue::from_static(status.as_str()));
    }
    if let Some(downgrade) = &trail.downgrade
        && let Ok(value) = HeaderValue::from_str(&downgrade.from)
    {
        headers.insert(&X_SEAWALL_DOWNGRADED_FROM, value);
    }
    // The client's fields a target of another dialect could not take.
    if !trail.dropped_fields().is_empty()
        && let Ok(value) = HeaderValue::from_str(&trail.dropped_fields().join(","))
    {
        headers.insert(&X_SEAWALL_DROPPED_FIELDS, value);
    }
}

/// The reply to a call refused because the shared state (Redis) cannot be reached and
/// `[state] on_redis_down = "fail_closed"`: nothing was sent upstream.
pub(super) fn state_unavailable() -> Reply {
    let mut reply = error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        Some("state_unavailable"),
        None,
        "the gateway's shared state is unavailable; nothing was sent upstream",
    );
    reply
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    reply
}

/// The reply to a call the budget layer refused before sending it: 429 for a spent budget
/// (with `retry-after` until its window resets, and no SDK retry before that), 400 for a
/// request above a per-request cap or for a model without a price.
pub(super) fn spend_refusal(shared: &Shared, error: &BoxError) -> Option<Reply> {
    if seawall_core::find_error::<BudgetUnavailable>(&**error).is_some()
        || seawall_core::find_error::<CacheUnavailable>(&**error).is_some()
        || seawall_core::find_error::<IdempotencyUnavailable>(&**error).is_some()
    {
        return Some(state_unavailable());
    }
    if let Some(exceeded) = seawall_core::find_error::<BudgetExceeded>(&**error) {
        shared.metrics.inbound_rejected.inc();
        let mut reply = error_reply(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("budget_exceeded"),
            None,
            &exceeded.to_string(),
        );
        let headers = reply.headers_mut();
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
        if let Some(wait) = exceeded.retry_after(SystemTime::now()) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert("retry-after", HeaderValue::from(secs.max(1)));
        }
        return Some(reply);
    }
    if let Some(cap) = seawall_core::find_error::<RequestCapExceeded>(&**error) {
        return Some(error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("request_cap_exceeded"),
            cap.param(),
            &cap.to_string(),
        ));
    }
    if let Some(unpriced) = seawall_core::find_error::<Unpriced>(&**error) {
        return Some(error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("model_not_priced"),
            Some("model"),
            &format!(
                "the gateway has no price for model {:?}, and this key's spending is limited; \
                 ask its operator to add one under [prices]",
                prefix(&unpriced.model, 128)
            ),
        ));
    }
    None
}

/// Maps an upstream failure to an OpenAI-shaped error through the group's classifier.
pub(super) fn upstream_error(shared: &Shared, classifier: &Classifier, error: &BoxError) -> Reply {
    if let Some(conflict) = seawall_core::find_error::<IdempotencyConflict>(&**error) {
        return error_reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            Some("idempotency_key_conflict"),
            None,
            &conflict.to_string(),
        );
    }
    if let Some(failed) = seawall_core::find_error::<FirstCallFailed>(&**error) {
        return error_reply(
            StatusCode::CONFLICT,
            "invalid_request_error",
            Some("idempotent_call_failed"),
            None,
            &failed.to_string(),
        );
    }
    let trail = ErrorWithTrail::find(&**error).map(ErrorWithTrail::trail);
    let classification = classifier.classify(&**error);
    let (status, kind, code) = match classification.cause {
        Cause::InvalidRequest => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
        ),
        Cause::Provider(kind) => match kind {
            ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::RequestTooLarge => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                kind.as_str(),
            ),
            ErrorKind::ContentFiltered => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                kind.as_str(),
            ),
            ErrorKind::RateLimited | ErrorKind::QuotaExhausted => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                kind.as_str(),
            ),
            ErrorKind::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                kind.as_str(),
            ),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "server_error", kind.as_str()),
            _ => (StatusCode::BAD_GATEWAY, "server_error", kind.as_str()),
        },
        Cause::CircuitOpen | Cause::RateLimitRejected => (
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            classification.cause.as_str(),
        ),
        Cause::TimedOut(_) | Cause::DeadlineExceeded => (
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            classification.cause.as_str(),
        ),
        Cause::AllTargetsFailed => all_failed_status(trail),
        _ => (
            StatusCode::BAD_GATEWAY,
            "server_error",
            classification.cause.as_str(),
        ),
    };
    let mut message = error.to_string();
    if let Some(trail) = trail
        && classification.cause != Cause::AllTargetsFailed
        && !trail.attempts.is_empty()
    {
        message.push_str(" (attempts: ");
        for (i, attempt) in trail.attempts.iter().enumerate() {
            if i > 0 {
                message.push_str("; ");
            }
            message.push_str(&attempt.to_string());
        }
        message.push(')');
    }
    // Upstream text may echo credentials: none reaches the client.
    let message = crate::redact::redact(&message, &shared.secrets);
    let mut reply = error_reply(status, kind, Some(code), None, &message);
    let headers = reply.headers_mut();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // The gateway already retried and failed over: a client retry would multiply that.
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
    }
    let retry_after = classification.retry_after.or_else(|| {
        (classification.cause == Cause::AllTargetsFailed
            && matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ))
        .then(|| trail.and_then(|trail| soonest_refill(shared, trail)))
        .flatten()
    });
    if let Some(wait) = retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        headers.insert("retry-after", HeaderValue::from(secs.max(1)));
    }
    if let Some(trail) = trail {
        headers.insert(
            &X_SEAWALL_ATTEMPTS,
            HeaderValue::from(trail.sent_attempts() as u64),
        );
    }
    reply
}

/// When the soonest of the targets a failed call tried has room again, by its limiter
/// (what the provider reported, and the configured limits): the time actually left.
pub(super) fn soonest_refill(shared: &Shared, trail: &Trail) -> Option<Duration> {
    trail
        .attempts
        .iter()
        .filter_map(|attempt| shared.target_index.get(attempt.target.as_str()))
        .filter_map(|&i| shared.targets[i].limiter.as_ref())
        .map(|limiter| limiter.snapshot().capacity.time_to_refill)
        .filter(|wait| !wait.is_zero())
        .min()
}

/// A status for a call every target failed: 429 when each attempt was rate limited, 504
/// when each timed out, 503 when no target could be tried, 502 otherwise.
pub(super) fn all_failed_status(trail: Option<&Trail>) -> (StatusCode, &'static str, &'static str) {
    let causes: Vec<Cause> = trail
        .map(|t| {
            t.attempts
                .iter()
                .filter_map(|a| match &a.outcome {
                    AttemptOutcome::Failed { cause, .. } => Some(*cause),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let all = |f: fn(&Cause) -> bool| !causes.is_empty() && causes.iter().all(f);
    if causes.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "all_targets_unavailable",
        )
    } else if all(|c| {
        matches!(
            c,
            Cause::Provider(ErrorKind::RateLimited | ErrorKind::QuotaExhausted)
                | Cause::RateLimitRejected
        )
    }) {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "all_targets_rate_limited",
        )
    } else if all(|c| matches!(c, Cause::TimedOut(_) | Cause::Provider(ErrorKind::Timeout))) {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "all_targets_timed_out",
        )
    } else {
        (
            StatusCode::BAD_GATEWAY,
            "server_error",
            "all_targets_failed",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_read_from_nanodollars_as_from_the_float() {
        let float = |nanos: u64| format!("{:.9}", Cost::from_nanos(nanos).usd());
        let mut samples = vec![
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            123_456_789_012,
            1_000_000_000_000_000,
            EXACT_NANOS - 1,
            EXACT_NANOS,
            EXACT_NANOS + 1,
            u64::MAX,
        ];
        // Spread over every magnitude below and above the exact range (a fixed sequence).
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x >> (x % 64));
        }
        for nanos in samples {
            let cost = Cost::from_nanos(nanos);
            assert_eq!(usd_text(cost), float(nanos), "{nanos} nanodollars");
            assert_eq!(
                cost_header(Some(cost)).to_str().ok(),
                Some(float(nanos).as_str())
            );
        }
    }
}
