//! The checks made before a call is sent: host and origin, the admin key, the virtual
//! key and its request limit, the content type, the idempotency key, the trace context and
//! the bounded body read. Each refusal is a ready [`Reply`].

// A refusal is the reply itself, built once on a cold path and returned as is: boxing it
// would only add an allocation to each refused call.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use seawall_core::{CacheDirectives, RejectReason, TokenEstimate, TraceParent};

use super::errors::{error_reply, state_unavailable};
use super::relay::Reply;
use super::{Shared, VirtualKey};
use crate::origin::Refusal;

/// Who may read `/status` and `/metrics`: they name every virtual key and its usage.
pub(super) enum Admin {
    Open,
    Key(String),
    /// Virtual keys are configured and no admin key: closed.
    Closed,
}

impl Admin {
    /// The refusal of a caller that may not read them.
    pub(super) fn check(&self, headers: &http::HeaderMap) -> Result<(), Reply> {
        let bearer = bearer(headers).map(str::trim);
        match self {
            Self::Open => Ok(()),
            Self::Key(key) if bearer.is_some_and(|given| constant_time_eq(given, key)) => Ok(()),
            Self::Key(_) => Err(error_reply(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_admin_key"),
                None,
                "this route needs the admin key: Authorization: Bearer <key>",
            )),
            Self::Closed => Err(error_reply(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                Some("admin_key_not_configured"),
                None,
                "this route lists every virtual key's usage: set server.admin_key_env to open it",
            )),
        }
    }
}

/// Compares two keys in time that depends on their lengths only.
pub(super) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

impl Shared {
    /// The refusal of a request whose `Host` or `Origin` this gateway does not answer, if
    /// the listener is bound and that is so.
    pub(super) fn check_host(&self, headers: &http::HeaderMap) -> Result<(), Reply> {
        let Some(allowed) = self.allowed.get() else {
            return Ok(());
        };
        let Err(refusal) = allowed.check(headers) else {
            return Ok(());
        };
        let (status, code, message) = match refusal {
            Refusal::Host => (
                StatusCode::BAD_REQUEST,
                "invalid_host",
                "a request names exactly one Host",
            ),
            Refusal::ForeignHost => (
                StatusCode::FORBIDDEN,
                "forbidden_host",
                "this gateway does not answer to that Host (see server.allowed_hosts)",
            ),
            Refusal::ForeignOrigin => (
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "calls from that Origin are not allowed (see server.allowed_origins)",
            ),
        };
        Err(error_reply(
            status,
            "invalid_request_error",
            Some(code),
            None,
            message,
        ))
    }
}

/// A permit for one more chat call in flight, or the 503 for a gateway at its limit.
/// Taken before the body is read: the bodies in memory are bounded by
/// `max_in_flight × max_body_bytes`.
pub(super) fn admit(shared: &Shared) -> Result<tokio::sync::OwnedSemaphorePermit, Reply> {
    Arc::clone(&shared.in_flight)
        .try_acquire_owned()
        .map_err(|_| {
            shared.metrics.request(503);
            let mut reply = error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("overloaded"),
                None,
                "the gateway is at its limit of calls in flight; retry shortly",
            );
            reply
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            reply
        })
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    value
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .map(|_| &value[7..])
}

/// The virtual key calling (`None` when none are configured), admitted by its request
/// limit; or the 401, 429 or 503 refusing the call.
pub(super) async fn authenticate(
    shared: &Shared,
    headers: &http::HeaderMap,
) -> Result<Option<Arc<VirtualKey>>, Reply> {
    if shared.keys.is_empty() {
        return Ok(None);
    }
    let bearer = bearer(headers)
        // Anthropic's SDKs send the key in `x-api-key`.
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(bearer) = bearer else {
        return Err(error_reply(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("missing_api_key"),
            None,
            "missing API key: send Authorization: Bearer <key> or x-api-key: <key>",
        ));
    };
    let Some(key) = shared.keys.get(bearer.trim()) else {
        return Err(error_reply(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            None,
            "invalid API key",
        ));
    };
    if let Some(limiter) = &key.limiter
        && let Err(refused) = limiter.acquire_now(&TokenEstimate::default()).await
    {
        if refused.reason == RejectReason::StateUnavailable {
            return Err(state_unavailable());
        }
        shared.metrics.inbound_rejected.inc();
        let wait = refused.wait().unwrap_or(Duration::from_secs(1));
        let mut reply = error_reply(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            None,
            &format!("request limit of key {:?} reached", key.name),
        );
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        reply
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs.max(1)));
        return Err(reply);
    }
    Ok(Some(Arc::clone(key)))
}

/// A chat call is JSON: a cross-site page cannot send that without the browser asking.
pub(super) fn require_json(headers: &http::HeaderMap) -> Result<(), Reply> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/json"))
        });
    if json {
        Ok(())
    } else {
        Err(error_reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            Some("unsupported_media_type"),
            None,
            "send the request body as Content-Type: application/json",
        ))
    }
}

/// What the caller asks of the cache (`Cache-Control`).
pub(super) fn cache_directives(headers: &http::HeaderMap) -> Option<CacheDirectives> {
    headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(CacheDirectives::from_header)
}

/// The caller's `Idempotency-Key`, if it sent one; a 400 for one that is not 1 to 255
/// visible ASCII characters.
pub(super) fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<Arc<str>>, Reply> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok(key)
                if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Ok(Some(Arc::<str>::from(key)))
            }
            _ => Err(error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("invalid_idempotency_key"),
                None,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )),
        },
    }
}

/// The caller's W3C trace context, sent on to the provider; one that is not valid is
/// dropped (a receiver restarts the trace then).
pub(super) fn traceparent(headers: &http::HeaderMap) -> Option<TraceParent> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
}

/// The request body, read within `server.body_read_timeout` and `server.max_body_bytes`;
/// a 413 for a larger one (refused before reading when its `Content-Length` says so), a
/// 408 for one too slow, a 400 for one that breaks off.
pub(super) async fn read_body(shared: &Shared, request: Request<Incoming>) -> Result<Bytes, Reply> {
    let too_large = || {
        error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            None,
            &format!("request body larger than {} bytes", shared.max_body),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(
        shared.body_read_timeout,
        Limited::new(request.into_body(), shared.max_body).collect(),
    )
    .await;
    let Ok(read) = read else {
        return Err(error_reply(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            Some("body_read_timeout"),
            None,
            "the request body did not arrive in time",
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            None,
            &format!("could not read the request body: {e}"),
        )),
    }
}
