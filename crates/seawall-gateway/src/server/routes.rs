//! Request dispatch: the chat route and the small GET routes (models, health, metrics,
//! status, usage).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use super::Shared;
use super::chat::chat;
use super::count::count_tokens;
use super::errors::{error_code, error_reply, in_dialect};
use super::inbound::admit;
use super::relay::{BodyKind, GatewayBody, Reply, full, json_reply};
use crate::access::Access;
use crate::dialect::Dialect;
use crate::metrics::{Scraped, TargetCounts};

/// Answers one request: the host and admin checks, then the route.
pub(super) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Reply, Infallible> {
    if let Err(refused) = shared.check_host(request.headers()) {
        return Ok(refused);
    }
    if request.method() == Method::GET
        && matches!(
            request.uri().path(),
            "/metrics" | "/status.json" | "/admin/usage"
        )
        && let Err(refused) = shared.admin.check(request.headers())
    {
        return Ok(refused);
    }
    let reply = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => {
            return Ok(call(shared, Dialect::Chat, request).await);
        }
        (&Method::POST, "/v1/messages") => {
            return Ok(call(shared, Dialect::Messages, request).await);
        }
        (&Method::POST, "/v1/responses") => {
            return Ok(call(shared, Dialect::Responses, request).await);
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            let reply = count_tokens(&shared, Dialect::Messages, request).await;
            shared.metrics.request(reply.status().as_u16());
            return Ok(in_dialect(reply, Dialect::Messages));
        }
        (&Method::POST, "/v1/responses/input_tokens") => {
            let reply = count_tokens(&shared, Dialect::Responses, request).await;
            shared.metrics.request(reply.status().as_u16());
            return Ok(in_dialect(reply, Dialect::Responses));
        }
        (&Method::GET, "/v1/models") => json_reply(StatusCode::OK, shared.models.clone()),
        (&Method::GET, "/healthz") => full(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => {
            if shared.ready.load(Relaxed) {
                full(StatusCode::OK, "text/plain", "ready\n")
            } else {
                full(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
            }
        }
        (&Method::GET, "/metrics" | "/status.json" | "/admin/usage")
            if let Err(refused) = shared.admin.check(request.headers()) =>
        {
            refused
        }
        (&Method::GET, "/metrics") => full(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render_metrics(&shared),
        ),
        // The page holds no data: it reads /status.json with the admin key it is given.
        (&Method::GET, "/status") => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::status::PAGE,
        ),
        (&Method::GET, "/status.json") => json_reply(StatusCode::OK, crate::status::json(&shared)),
        (&Method::GET, "/admin/usage") => json_reply(
            StatusCode::OK,
            serde_json::to_vec(&shared.report.to_json()).unwrap_or_default(),
        ),
        (
            _,
            "/v1/chat/completions"
            | "/v1/messages"
            | "/v1/messages/count_tokens"
            | "/v1/responses"
            | "/v1/responses/input_tokens"
            | "/v1/models"
            | "/healthz"
            | "/readyz"
            | "/metrics"
            | "/status"
            | "/status.json"
            | "/admin/usage",
        ) => error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            Some("method_not_allowed"),
            None,
            "method not allowed",
        ),
        (_, path) => error_reply(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("unknown_url"),
            None,
            &format!("unknown path {path}"),
        ),
    };
    Ok(reply)
}

/// A chat call on `dialect`'s route: admitted under the in-flight bound, answered, counted
/// and logged; its errors in the dialect's shape.
async fn call(shared: Arc<Shared>, dialect: Dialect, request: Request<Incoming>) -> Reply {
    let started = tokio::time::Instant::now();
    let permit = match admit(&shared) {
        Ok(permit) => permit,
        Err(refused) => return in_dialect(refused, dialect),
    };
    let mut access = Access::wanted().then(Box::<Access>::default);
    let span = if shared.traced {
        crate::telemetry::server_span(request.headers())
    } else {
        tracing::Span::none()
    };
    // Boxed: hyper keeps a slot the size of this future for each connection's whole life,
    // and the call's state (the stack's futures, ~2.7 KB) is needed only until the response
    // head; open streams and idle keep-alive connections then hold a pointer, not the state.
    let reply = Box::pin(
        chat(&shared, dialect, request, started, access.as_deref_mut()).instrument(span.clone()),
    )
    .await;
    crate::telemetry::record_status(&span, reply.status().as_u16());
    // A stream holds its permit until the relay ends, and writes its access line then.
    let reply = match reply.into_parts() {
        (parts, GatewayBody(BodyKind::Sse(mut relay))) => {
            relay.permit = Some(permit);
            relay.access = access.take();
            relay.span = span;
            Response::from_parts(parts, GatewayBody(BodyKind::Sse(relay)))
        }
        (parts, body) => Response::from_parts(parts, body),
    };
    if !matches!(reply.body().0, BodyKind::Sse(_)) {
        let latency = started.elapsed();
        shared.metrics.latency.observe(latency.as_secs_f64());
        if let Some(mut access) = access {
            if let BodyKind::Full(Some(body)) = &reply.body().0
                && reply.status().as_u16() >= 400
            {
                access.error = error_code(body);
            }
            access.log(dialect.path(), reply.status().as_u16(), latency);
        }
    }
    shared.metrics.request(reply.status().as_u16());
    in_dialect(reply, dialect)
}

/// The Prometheus text of `/metrics`.
fn render_metrics(shared: &Shared) -> String {
    let scraped = Scraped {
        targets: shared
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| TargetCounts {
                name: t.name.clone(),
                sent: t.sent.load(Relaxed),
                attempts: shared.board.attempts(i),
            })
            .collect(),
        alerts: shared.alerts.counts(),
        state: shared.state.stats(),
    };
    let mut out = String::with_capacity(16 * 1024);
    shared.metrics.render(&mut out, scraped);
    out
}
