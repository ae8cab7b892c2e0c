//! A bare HTTP/1.1 pass-through proxy: the floor under the gateway's cost per request.
//!
//! It is served and calls upstream exactly as the gateway does (hyper's HTTP/1.1 server,
//! hyper-util's pooled client, server threads with a single-threaded runtime and a pool
//! each, `TCP_NODELAY` on both sides), but parses no JSON and runs no layer: the request
//! head and body go upstream as they came, the response comes back as it came. What the
//! gateway costs above this is its own work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use http::uri::{Authority, Scheme, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Thread-name prefix, so the proxy's CPU is counted apart from the gateway's.
pub(crate) const PROXY_THREAD: &str = "seawall-proxy";

/// A running proxy; stops (and joins its threads) when dropped.
#[derive(Debug)]
pub(crate) struct BareProxy {
    addr: SocketAddr,
    stop: Option<watch::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl BareProxy {
    /// Listens on 127.0.0.1 (an ephemeral port) with `threads` server threads, forwarding
    /// every request to `upstream`.
    pub(crate) fn start(threads: usize, upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let authority: Authority = upstream
            .to_string()
            .parse()
            .map_err(std::io::Error::other)?;
        let (stop_tx, stop_rx) = watch::channel(());
        let mut handles = Vec::new();
        for index in 0..threads.max(1) {
            let listener = listener.try_clone()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let authority = authority.clone();
            let mut stop = stop_rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("{PROXY_THREAD}-{index}"))
                    .spawn(move || {
                        runtime.block_on(async move {
                            let Ok(listener) = TcpListener::from_std(listener) else {
                                return;
                            };
                            let mut connector = HttpConnector::new();
                            connector.set_nodelay(true);
                            let client: Client<HttpConnector, Incoming> =
                                Client::builder(TokioExecutor::new()).build(connector);
                            loop {
                                let accepted = tokio::select! {
                                    _ = stop.changed() => break,
                                    accepted = listener.accept() => accepted,
                                };
                                let Ok((stream, _)) = accepted else { continue };
                                let _ = stream.set_nodelay(true);
                                let client = client.clone();
                                let authority = authority.clone();
                                let mut stop = stop.clone();
                                tokio::spawn(async move {
                                    let service = service_fn(move |request| {
                                        forward(client.clone(), authority.clone(), request)
                                    });
                                    let connection = http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service);
                                    tokio::select! {
                                        _ = connection => {}
                                        _ = stop.changed() => {}
                                    }
                                });
                            }
                        });
                    })?,
            );
        }
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            threads: handles,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BareProxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

type Reply = http::Response<http_body_util::Either<Incoming, http_body_util::Empty<bytes::Bytes>>>;

async fn forward(
    client: Client<HttpConnector, Incoming>,
    authority: Authority,
    mut request: http::Request<Incoming>,
) -> Result<Reply, Infallible> {
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    Ok(match client.request(request).await {
        Ok(response) => response.map(http_body_util::Either::Left),
        Err(_) => {
            let mut reply =
                http::Response::new(http_body_util::Either::Right(http_body_util::Empty::new()));
            *reply.status_mut() = http::StatusCode::BAD_GATEWAY;
            reply
        }
    })
}
