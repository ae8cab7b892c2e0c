//! The layers every request passes before its route: a request id (`x-request-id`, kept
//! when the client sent one, made otherwise, echoed on the reply), credential headers
//! marked sensitive, and a panic in a handler answered as a 500 instead of a dropped
//! connection.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue, SET_COOKIE};
use http::{Request, Response, StatusCode};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestId, RequestId, SetRequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeaders, SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeaders,
    SetSensitiveResponseHeadersLayer,
};
use tower_layer::Layer;
use tower_service::Service;

use super::relay::{GatewayBody, full};

/// The request id header, read from the client and written on every reply.
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The body of the reply to a request whose handler panicked, in OpenAI's error shape.
const PANIC_BODY: &[u8] = br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":"internal_error"}}"#;

/// The request headers that carry credentials: marked sensitive, so that nothing that
/// prints headers (a `Debug` of the request, a tracing layer) shows their values.
static SENSITIVE_REQUEST: LazyLock<Arc<[HeaderName]>> = LazyLock::new(|| {
    Arc::new([
        AUTHORIZATION,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("api-key"),
        HeaderName::from_static("x-goog-api-key"),
        COOKIE,
    ])
});

/// The response headers marked sensitive.
static SENSITIVE_RESPONSE: LazyLock<Arc<[HeaderName]>> = LazyLock::new(|| Arc::new([SET_COOKIE]));

/// The service `inner` wrapped in the front layers, outermost first: credential headers
/// marked, the request id set and echoed, response cookies marked, panics caught.
pub(super) type Front<S> = SetSensitiveRequestHeaders<
    SetRequestId<
        PropagateRequestId<SetSensitiveResponseHeaders<CatchPanic<S>>>,
        MakeGatewayRequestId,
    >,
>;

/// Wraps `inner` in the front layers ([`Front`]).
pub(super) fn front<S>(inner: S) -> Front<S> {
    let inner = CatchPanic { inner };
    let inner =
        SetSensitiveResponseHeadersLayer::from_shared(Arc::clone(&SENSITIVE_RESPONSE)).layer(inner);
    let inner = PropagateRequestId::new(inner, X_REQUEST_ID);
    let inner = SetRequestIdLayer::new(X_REQUEST_ID, MakeGatewayRequestId).layer(inner);
    SetSensitiveRequestHeadersLayer::from_shared(Arc::clone(&SENSITIVE_REQUEST)).layer(inner)
}

/// Makes the id of a request that came without one: a random per-process prefix and a
/// counter (`3f9c2a7d5e81b046-17`), unique across processes without a UUID generator.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MakeGatewayRequestId;

/// The per-process prefix of made request ids: random, from the standard library's
/// randomly seeded hasher, mixed with the process id and the start time.
static PREFIX: LazyLock<u64> = LazyLock::new(|| {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
});

/// The count of ids made by this process.
static MADE: AtomicU64 = AtomicU64::new(0);

impl MakeRequestId for MakeGatewayRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let count = MADE.fetch_add(1, Relaxed);
        // Written on the stack: 16 hex digits, a dash and at most 20 decimal ones.
        let mut id = [0u8; 37];
        let mut len = 0;
        let prefix = *PREFIX;
        for shift in (0..16).rev() {
            id[len] = b"0123456789abcdef"[((prefix >> (shift * 4)) & 0xf) as usize];
            len += 1;
        }
        id[len] = b'-';
        len += 1;
        let mut digits = [0u8; 20];
        let mut rest = count;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let tail = &digits[start..];
        id[len..len + tail.len()].copy_from_slice(tail);
        len += tail.len();
        HeaderValue::from_bytes(&id[..len]).ok().map(RequestId::new)
    }
}

/// Answers a request whose handler panicked (while called or while polled) with a 500 and
/// an OpenAI-shaped error body, instead of the dropped connection hyper would leave; the
/// connection stays open for the client's next request.
///
/// Written here rather than taken from `tower-http`, whose `CatchPanic` boxes every
/// response body into a type-erased one: this keeps [`GatewayBody`], with no allocation
/// per request.
#[derive(Debug, Clone)]
pub(super) struct CatchPanic<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response<GatewayBody>>,
{
    type Response = Response<GatewayBody>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => CatchPanicFuture {
                future: Some(future),
            },
            Err(panic) => {
                report(&*panic);
                CatchPanicFuture { future: None }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`CatchPanic`]: the inner future, or none once it panicked.
    pub(super) struct CatchPanicFuture<F> {
        #[pin]
        future: Option<F>,
    }
}

impl<F, E> Future for CatchPanicFuture<F>
where
    F: Future<Output = Result<Response<GatewayBody>, E>>,
{
    type Output = Result<Response<GatewayBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut future = self.project().future;
        let Some(inner) = future.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(panic_reply()));
        };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(polled) => polled,
            Err(panic) => {
                report(&*panic);
                // Dropped now, not with the connection: what the call held (its in-flight
                // permit, its upstream call) is released at once.
                future.set(None);
                Poll::Ready(Ok(panic_reply()))
            }
        }
    }
}

/// The 500 a panicked request is answered with.
fn panic_reply() -> Response<GatewayBody> {
    full(
        StatusCode::INTERNAL_SERVER_ERROR,
        "application/json",
        Bytes::from_static(PANIC_BODY),
    )
}

/// Logs a caught panic's message.
fn report(panic: &(dyn Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "a request handler panicked");
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use http::header::CONTENT_LENGTH;
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tower::ServiceExt;

    use super::*;

    /// Answers 200 `ok`, except on `/panic-in-call` (panics making its future) and
    /// `/panic-in-poll` (panics when its future is polled).
    fn panicky() -> impl Service<
        Request<hyper::body::Incoming>,
        Response = Response<GatewayBody>,
        Error = Infallible,
        Future = impl Future + Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(|request: Request<hyper::body::Incoming>| {
            assert_ne!(request.uri().path(), "/panic-in-call", "a handler bug");
            async move {
                assert_ne!(request.uri().path(), "/panic-in-poll", "a handler bug");
                Ok::<_, Infallible>(full(StatusCode::OK, "text/plain", "ok"))
            }
        })
    }

    /// Serves `front(panicky())` on a loopback port, one connection after another.
    async fn serve_panicky() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TowerToHyperService::new(front(panicky()));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service.clone());
                tokio::spawn(connection);
            }
        });
        addr
    }

    /// A response read off a kept-alive connection: its head, and its body of
    /// `content-length` bytes.
    async fn exchange(stream: &mut TcpStream, path: &str) -> (String, String) {
        let request = format!("GET {path} HTTP/1.1\r\nhost: gateway\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the connection closed: {raw:?}");
            raw.extend_from_slice(&chunk[..read]);
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8(raw[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str())
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a content-length");
            if raw.len() >= end + 4 + length {
                let body = String::from_utf8(raw[end + 4..end + 4 + length].to_vec()).unwrap();
                return (head, body);
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_and_the_connection_serves_the_next_request() {
        let addr = serve_panicky().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        for path in ["/panic-in-poll", "/panic-in-call"] {
            let (head, body) = exchange(&mut stream, path).await;
            assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            assert!(head.contains("x-request-id: "), "{head}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"error": {
                    "message": "internal error",
                    "type": "server_error",
                    "param": null,
                    "code": "internal_error",
                }})
            );
            // The same connection answers the next request.
            let (head, body) = exchange(&mut stream, "/fine").await;
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
            assert_eq!(body, "ok");
        }
    }

    #[tokio::test]
    async fn credential_headers_are_marked_sensitive_on_the_way_in_and_cookies_on_the_way_out() {
        let inner = tower::service_fn(|request: Request<()>| async move {
            let credentials = [
                "authorization",
                "x-api-key",
                "api-key",
                "x-goog-api-key",
                "cookie",
            ];
            for name in credentials {
                let value = request.headers().get(name).expect(name);
                assert!(value.is_sensitive(), "{name} is not marked sensitive");
            }
            assert!(!request.headers()["content-type"].is_sensitive());
            let mut reply = full(StatusCode::OK, "text/plain", "ok");
            reply
                .headers_mut()
                .insert(SET_COOKIE, HeaderValue::from_static("session=secret"));
            Ok::<_, Infallible>(reply)
        });
        let request = Request::builder()
            .header("authorization", "Bearer sk-secret")
            .header("x-api-key", "sk-secret")
            .header("api-key", "sk-secret")
            .header("x-goog-api-key", "sk-secret")
            .header("cookie", "session=secret")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let reply = front(inner).oneshot(request).await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "the inner checks passed");
        assert!(reply.headers()[SET_COOKIE].is_sensitive());
        assert!(!format!("{:?}", reply.headers()).contains("session=secret"));
    }

    #[tokio::test]
    async fn a_request_id_is_made_when_absent_and_kept_when_given() {
        let echo = tower::service_fn(|request: Request<()>| async move {
            // The handler sees the id it is answered with.
            let seen = request.headers()[X_REQUEST_ID].clone();
            let mut reply = full(StatusCode::OK, "text/plain", "ok");
            reply.headers_mut().insert("x-seen-id", seen);
            Ok::<_, Infallible>(reply)
        });
        let service = front(echo);
        let mut made = Vec::new();
        for _ in 0..2 {
            let reply = service.clone().oneshot(Request::new(())).await.unwrap();
            let id = reply.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
            assert_eq!(reply.headers()["x-seen-id"], id.as_str());
            let (prefix, count) = id.split_once('-').expect("prefix-count");
            assert_eq!(prefix.len(), 16, "{id}");
            assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert!(count.parse::<u64>().is_ok(), "{id}");
            made.push(id);
        }
        assert_ne!(made[0], made[1]);

        let given = Request::builder()
            .header(X_REQUEST_ID, "client-id-42")
            .body(())
            .unwrap();
        let reply = service.oneshot(given).await.unwrap();
        assert_eq!(reply.headers()[X_REQUEST_ID], "client-id-42");
        assert_eq!(reply.headers()["x-seen-id"], "client-id-42");
    }
}
