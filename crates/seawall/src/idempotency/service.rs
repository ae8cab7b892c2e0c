use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, ChatRequest, ChatResponse};
use tower_service::Service;

use super::error::IdempotencyConflict;
use super::future::ResponseFuture;
use super::store::{Claim, Store};
use crate::cache::key::Key;

/// The service of [`IdempotencyLayer`](super::IdempotencyLayer).
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    store: Arc<Store>,
}

impl<S> Idempotency<S> {
    pub(crate) fn from_parts(inner: S, store: Arc<Store>) -> Self {
        Self { inner, store }
    }

    inner_service_accessors!();
}

impl<S: std::fmt::Debug> std::fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Service<ChatRequest> for Idempotency<S>
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: Into<BoxError>,
{
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let Some(key) = request.context.options().idempotency_key.clone() else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        // The request's normalised form: the same key with another request is a conflict.
        let fingerprint = Key::of(&request).map(|key| key.bytes).unwrap_or_default();
        let streamed = request.stream;
        match self.store.claim(&key, &fingerprint) {
            Claim::First(flight) => ResponseFuture::first(
                self.inner.call(request),
                Arc::clone(&self.store),
                key,
                fingerprint,
                flight,
            ),
            Claim::Join(flight) => ResponseFuture::join(flight, streamed),
            Claim::Replay(answer) => ResponseFuture::replay(&answer, streamed),
            Claim::Conflict => ResponseFuture::refused(IdempotencyConflict {
                key: key.to_string(),
            }),
        }
    }
}
