//! A chat call in any dialect: from the checked request to the reply.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use seawall_core::{ChatResponse, ErrorWithTrail};
use tower::ServiceExt;

use super::Shared;
use super::errors::{
    X_SEAWALL_COST, bad_request, budget_headers, cost_header, prefix, spend_refusal, trail_headers,
    unknown_model, upstream_error,
};
use super::inbound::{
    authenticate, cache_directives, idempotency_key, read_body, require_json, traceparent,
};
use super::relay::{BodyKind, GatewayBody, Reply, SseRelay, json_reply};
use crate::access::Access;
use crate::dialect::Dialect;

/// Seconds since the epoch: the `created` of an answer.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One chat call in `dialect`: the inbound checks, the body decoded, the call through the
/// budget layer and the group its model names, and the reply (a JSON answer or an SSE relay
/// in the dialect, or an OpenAI-shaped error the route puts in the dialect's shape).
pub(super) async fn chat(
    shared: &Arc<Shared>,
    dialect: Dialect,
    request: Request<Incoming>,
    started: tokio::time::Instant,
    mut access: Option<&mut Access>,
) -> Reply {
    let headers = request.headers();
    let key = match authenticate(shared, headers).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    if let Err(refused) = require_json(headers) {
        return refused;
    }
    let cache_directives = cache_directives(headers);
    let idempotency_key = match idempotency_key(headers) {
        Ok(given) => given,
        Err(refused) => return refused,
    };
    let traceparent = traceparent(headers);
    let body = match read_body(shared, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let inbound = match dialect.decode(&body) {
        Ok(inbound) => inbound,
        Err(bad) => return bad_request(&bad),
    };

    if shared.traced
        && let Some(key) = &key
    {
        // The key's name, never the key.
        tracing::Span::current().record("seawall.key.name", &*key.name);
    }
    if let Some(access) = access.as_deref_mut() {
        access.key = key.as_ref().map(|k| Arc::clone(&k.name));
        // Named only in part: the client sent it, and it may be huge.
        let model = &inbound.request.model;
        access.requested = Some(if model.len() <= 128 {
            Arc::clone(model)
        } else {
            Arc::from(prefix(model, 128))
        });
        access.stream = inbound.request.stream;
    }

    // Which group.
    let model = &*inbound.request.model;
    let Some(group) = shared.groups.find(model) else {
        return unknown_model(model);
    };
    let classifier = group.classifier.clone();
    let mut inbound = inbound;
    if cache_directives.is_some()
        || idempotency_key.is_some()
        || key.is_some()
        || traceparent.is_some()
    {
        let options = inbound.request.context.options_mut();
        if let Some(directives) = cache_directives {
            options.cache = directives;
        }
        options.idempotency_key = idempotency_key;
        options.virtual_key = key.as_ref().map(|k| Arc::clone(&k.name));
        options.traceparent = traceparent;
    }
    let requested = inbound.request.model.clone();
    let stream = inbound.request.stream;

    // A stream's cost is known when it ends: its usage chunk reads it from the trail.
    let trail = stream.then(|| inbound.request.context.trail().clone());

    // The budget layer, then the group the (possibly downgraded) model names.
    match shared.service.clone().oneshot(inbound.request).await {
        Ok(response) => {
            shared.board.record(&response.trail);
            let id = format!(
                "{}{:x}",
                dialect.id_prefix(),
                shared.next_id.fetch_add(1, Relaxed)
            );
            let answered = answering_model(&response, &requested);
            if let Some(access) = access {
                access.answered = Some(answered.clone());
                access.follow(&response.trail);
            }
            if stream {
                let mut response = response;
                let relay = SseRelay {
                    stream: response.stream.take(),
                    dialect,
                    writer: dialect.stream_writer(
                        id,
                        answered.clone(),
                        unix_now(),
                        inbound.include_usage,
                    ),
                    usage: None,
                    finished: false,
                    first_content: false,
                    started,
                    shared: Arc::clone(shared),
                    trail: trail.unwrap_or_default(),
                    started_frames: false,
                    permit: None,
                    access: None,
                    span: tracing::Span::none(),
                    cut: {
                        let mut cut = shared.cut_streams.subscribe();
                        Box::pin(async move {
                            let _ = cut.wait_for(|cut| *cut).await;
                        })
                    },
                };
                let mut reply = Response::new(GatewayBody(BodyKind::Sse(Box::new(relay))));
                let headers = reply.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                trail_headers(headers, &response.trail, &answered);
                budget_headers(shared, key.as_deref(), headers);
                reply
            } else {
                let body = dialect.encode_response(&response, &id, &answered, unix_now());
                let mut reply = json_reply(StatusCode::OK, body);
                let headers = reply.headers_mut();
                trail_headers(headers, &response.trail, &answered);
                headers.insert(&X_SEAWALL_COST, cost_header(response.cost));
                budget_headers(shared, key.as_deref(), headers);
                reply
            }
        }
        Err(error) => {
            if let Some(failed) = ErrorWithTrail::find(&*error) {
                shared.board.record(failed.trail());
                if let Some(access) = access {
                    access.follow(failed.trail());
                }
            }
            spend_refusal(shared, &error)
                .unwrap_or_else(|| upstream_error(shared, &classifier, &error))
        }
    }
}

/// The model that answered: the provider's own name for it when it gave one, else the
/// name the gateway sent to the answering target.
pub(super) fn answering_model(response: &ChatResponse, requested: &str) -> String {
    if !response.model.is_empty() {
        return response.model.clone();
    }
    match &response.trail.final_model {
        Some(model) if !model.is_empty() => model.clone(),
        _ => requested.to_owned(),
    }
}
