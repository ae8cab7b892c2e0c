//! The token-count routes: Anthropic's `POST /v1/messages/count_tokens` and the Responses
//! API's `POST /v1/responses/input_tokens`.

use std::sync::Arc;

use http::header::HeaderValue;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use seawall_core::{HeuristicEstimator, TokenEstimator};
use serde_json::json;

use super::Shared;
use super::errors::{bad_request, unknown_model, upstream_error};
use super::inbound::{authenticate, read_body, require_json};
use super::relay::{Reply, json_reply};
use crate::dialect::{Dialect, messages};

/// Counts the input tokens of a request body in `dialect`: exactly, by the first target of
/// the model's group whose provider has a count endpoint; otherwise by the gateway's own
/// upper-bound estimate. `x-seawall-token-count` says which (`exact` or `estimate`).
pub(super) async fn count_tokens(
    shared: &Arc<Shared>,
    dialect: Dialect,
    request: Request<Incoming>,
) -> Reply {
    let headers = request.headers();
    if let Err(refused) = authenticate(shared, headers).await {
        return refused;
    }
    if let Err(refused) = require_json(headers) {
        return refused;
    }
    let body = match read_body(shared, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let decoded = match dialect {
        Dialect::Messages => messages::decode_count_request(&body),
        _ => dialect.decode(&body).map(|inbound| inbound.request),
    };
    let request = match decoded {
        Ok(request) => request,
        Err(bad) => return bad_request(&bad),
    };
    let Some(group) = shared.groups.find(&request.model) else {
        return unknown_model(&request.model);
    };
    let (tokens, how) = match &group.counter {
        Some(counter) => match counter.count(request).await {
            Ok(tokens) => (tokens, "exact"),
            Err(error) => return upstream_error(shared, &group.classifier, &error),
        },
        None => (
            HeuristicEstimator::default().prompt_tokens(&request),
            "estimate",
        ),
    };
    let body = match dialect {
        Dialect::Messages => messages::encode_count(tokens),
        _ => {
            serde_json::to_vec(&json!({"object": "response.input_tokens", "input_tokens": tokens}))
                .unwrap_or_default()
        }
    };
    let mut reply = json_reply(StatusCode::OK, body);
    reply
        .headers_mut()
        .insert("x-seawall-token-count", HeaderValue::from_static(how));
    reply
}
