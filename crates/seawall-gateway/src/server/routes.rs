//! Request dispatch: [`Routes`], the service that answers each request after the front
//! layers (`front`): the chat routes, the count routes and the small GET routes (models,
//! health, metrics, status, usage).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Shared;
use super::chat::chat;
use super::count::count_tokens;
use super::errors::{error_code, error_reply, in_dialect};
use super::front::X_REQUEST_ID;
use super::inbound::admit;
use super::relay::{BodyKind, GatewayBody, Reply, full, json_reply};
use crate::access::Access;
use crate::dialect::Dialect;
use crate::metrics::{Scraped, TargetCounts};

/// The service that answers a request: the host and admin checks, then the route. Cloned
/// per request (one reference count).
#[derive(Clone)]
pub(super) struct Routes {
    /// The config in force; a reload swaps it.
    pub(super) current: Arc<arc_swap::ArcSwap<Shared>>,
}

impl tower_service::Service<Request<Incoming>> for Routes {
    type Response = Reply;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Answer {
        route(&self.current.load_full(), request)
    }
}

/// The reply to a request: made at once, or still to come from a call that reads the body
/// (and, for the chat routes, goes upstream).
pub(super) enum Answer {
    Ready(Option<Reply>),
    /// Boxed: hyper keeps a slot the size of this future for each connection's whole life,
    /// and a call's state (the stack's futures, ~2.7 KB) is needed only until the response
    /// head; open streams and idle keep-alive connections then hold a pointer, not the
    /// state.
    Pending(Pin<Box<dyn Future<Output = Reply> + Send>>),
}

impl Future for Answer {
    type Output = Result<Reply, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Ready(reply) => match reply.take() {
                Some(reply) => Poll::Ready(Ok(reply)),
                // Polled again after it answered: a bug of the caller's, answered, not a
                // panic.
                None => Poll::Ready(Ok(full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "answered already\n",
                ))),
            },
            Answer::Pending(call) => call.as_mut().poll(cx).map(Ok),
        }
    }
}

/// The answer of the route `request` names.
fn route(shared: &Arc<Shared>, request: Request<Incoming>) -> Answer {
    if let Err(refused) = shared.check_host(request.headers()) {
        return Answer::Ready(Some(refused));
    }
    let chat_dialect = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => Some(Dialect::Chat),
        (&Method::POST, "/v1/messages") => Some(Dialect::Messages),
        (&Method::POST, "/v1/responses") => Some(Dialect::Responses),
        _ => None,
    };
    if let Some(dialect) = chat_dialect {
        // Admitted before the call is boxed: a refusal costs no allocation.
        return match admit(shared) {
            Ok(permit) => {
                Answer::Pending(Box::pin(call(Arc::clone(shared), dialect, request, permit)))
            }
            Err(refused) => Answer::Ready(Some(in_dialect(refused, dialect))),
        };
    }
    let count_dialect = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/messages/count_tokens") => Some(Dialect::Messages),
        (&Method::POST, "/v1/responses/input_tokens") => Some(Dialect::Responses),
        _ => None,
    };
    if let Some(dialect) = count_dialect {
        let shared = Arc::clone(shared);
        return Answer::Pending(Box::pin(async move {
            let reply = count_tokens(&shared, dialect, request).await;
            shared.metrics.request(reply.status().as_u16());
            in_dialect(reply, dialect)
        }));
    }
    Answer::Ready(Some(answer_now(shared, &request)))
}

/// The routes answered without reading the body.
fn answer_now(shared: &Shared, request: &Request<Incoming>) -> Reply {
    if request.method() == Method::GET
        && matches!(
            request.uri().path(),
            "/metrics" | "/status.json" | "/admin/usage"
        )
        && let Err(refused) = shared.admin.check(request.headers())
    {
        return refused;
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/models") => json_reply(StatusCode::OK, shared.models.clone()),
        (&Method::GET, "/healthz") => full(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => {
            if shared.ready.load(Relaxed) {
                full(StatusCode::OK, "text/plain", "ready\n")
            } else {
                full(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
            }
        }
        (&Method::GET, "/metrics") => full(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render_metrics(shared),
        ),
        // The page holds no data: it reads /status.json with the admin key it is given.
        (&Method::GET, "/status") => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::status::PAGE,
        ),
        (&Method::GET, "/status.json") => json_reply(StatusCode::OK, crate::status::json(shared)),
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
    }
}

/// A chat call on `dialect`'s route, admitted under the in-flight bound (`permit`):
/// answered, counted and logged; its errors in the dialect's shape.
async fn call(
    shared: Arc<Shared>,
    dialect: Dialect,
    request: Request<Incoming>,
    permit: OwnedSemaphorePermit,
) -> Reply {
    let started = tokio::time::Instant::now();
    let mut access = Access::wanted().then(|| {
        let mut access = Box::<Access>::default();
        // Set by the front layers when the client sent none.
        access.request_id = request.headers().get(X_REQUEST_ID).cloned();
        access
    });
    let span = if shared.traced {
        crate::telemetry::server_span(request.headers())
    } else {
        tracing::Span::none()
    };
    let reply = chat(&shared, dialect, request, started, access.as_deref_mut())
        .instrument(span.clone())
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
