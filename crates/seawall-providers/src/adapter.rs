use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use http_body_util::Full;
use seawall_core::{BoxError, ChatRequest, ChatResponse, TraceParent};
use tower_service::Service;

use crate::dialect::Dialect;
use crate::future::ResponseFuture;
use crate::stream::{MalformedPolicy, StreamMetrics};

/// A provider adapter: a `Service<ChatRequest, Response = ChatResponse, Error = BoxError>`
/// over an HTTP service `S`, speaking the wire format of dialect `D`.
///
/// Use it through its aliases: [`OpenAi`](crate::OpenAi), [`Anthropic`](crate::Anthropic),
/// [`Gemini`](crate::Gemini) and [`OpenAiCompatible`](crate::OpenAiCompatible).
///
/// `call` validates the request ([`ChatRequest::validate`]) and encodes it before anything
/// is sent: an invalid request fails with [`InvalidRequest`](seawall_core::InvalidRequest)
/// (or an [`LlmError`](seawall_core::LlmError) of kind `InvalidRequest`) and never reaches
/// the HTTP service. Errors are [`LlmError`](seawall_core::LlmError)s boxed into
/// [`BoxError`], ready for [`classify`](seawall_core::classify()).
///
/// `poll_ready` delegates to the HTTP service (hyper-util's client is always ready).
///
/// # Clone
///
/// Clones share the dialect's configuration and the [`StreamMetrics`] counters.
#[derive(Debug, Clone)]
pub struct Adapter<D, S> {
    dialect: D,
    http: S,
    policy: MalformedPolicy,
    metrics: StreamMetrics,
}

impl<D: Dialect, S> Adapter<D, S> {
    /// An adapter speaking `dialect` over the HTTP service `http`.
    pub fn with_dialect(dialect: D, http: S) -> Self {
        Self {
            dialect,
            http,
            policy: MalformedPolicy::default(),
            metrics: StreamMetrics::new(),
        }
    }

    /// Sets what streams do with malformed events (skip and count, by default).
    #[must_use]
    pub fn with_malformed_policy(mut self, policy: MalformedPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The counters of this adapter's streams, including the malformed events skipped.
    pub fn stream_metrics(&self) -> &StreamMetrics {
        &self.metrics
    }

    /// The wire format and its configuration.
    pub fn dialect(&self) -> &D {
        &self.dialect
    }

    /// The HTTP service below.
    pub fn get_ref(&self) -> &S {
        &self.http
    }

    /// The HTTP service below, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.http
    }

    /// The HTTP service below.
    pub fn into_inner(self) -> S {
        self.http
    }
}

impl<D, S, B> Service<ChatRequest> for Adapter<D, S>
where
    D: Dialect,
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, D, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: ChatRequest) -> Self::Future {
        if let Err(invalid) = request.validate() {
            return ResponseFuture::failed(invalid.into());
        }
        let provider = self.dialect.provider();
        let narrowed;
        let sent = if request.extra.is_empty() || request.extra_applies_to(provider) {
            &request
        } else {
            // Fields written for another wire format mean something else here, or nothing:
            // left out, and named in the trail.
            request.context.trail().update(|trail| {
                for field in request.extra.keys() {
                    trail.record_dropped_field(field);
                }
            });
            narrowed = ChatRequest {
                extra: Arc::default(),
                ..request.clone()
            };
            &narrowed
        };
        let mut http_request = match self.dialect.encode(sent) {
            Ok(http_request) => http_request,
            Err(error) => return ResponseFuture::failed(error.into()),
        };
        forward_traceparent(
            &mut http_request,
            request.context.options().traceparent.as_ref(),
        );
        // Call the instance that was readied, leave a fresh clone in its place.
        let fresh = self.http.clone();
        let mut ready = std::mem::replace(&mut self.http, fresh);
        ResponseFuture::sending(
            ready.call(http_request),
            self.dialect.clone(),
            request.stream,
            self.policy,
            self.metrics.clone(),
        )
    }
}

/// Carries the caller's trace on to the provider: `traceparent` was validated when it was
/// taken, so it always makes a header value.
pub(crate) fn forward_traceparent<T>(
    outgoing: &mut http::Request<T>,
    traceparent: Option<&TraceParent>,
) {
    if let Some(traceparent) = traceparent
        && let Ok(value) = http::HeaderValue::from_str(traceparent.as_str())
    {
        outgoing.headers_mut().insert("traceparent", value);
    }
}
