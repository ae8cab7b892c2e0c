//! Listening, the accept loop, the per-thread server pool and graceful shutdown.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use seawall_providers::http::HttpClient;
use seawall_providers::http::default_client;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::front::front;
use super::routes::Routes;
use super::{Gateway, GatewayHandle, Shared};
use crate::spend::TargetAlert;

thread_local! {
    /// The index of the gateway server thread this is (0 on any other thread).
    pub(super) static SERVER_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// The upstream HTTP service of every adapter: one pooled client per server thread, the
/// calling thread's own. A request served on thread `i` goes upstream through pool `i`,
/// whose connections that thread's runtime drives, so a call never crosses threads.
/// Cloned per call by the adapters: one reference count, not a client clone.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    pub(super) pools: Arc<[HttpClient]>,
    /// With trace export on, each request carries its attempt span's `traceparent`.
    pub(super) traced: bool,
}

impl UpstreamClient {
    fn current(&self) -> &HttpClient {
        &self.pools[SERVER_THREAD.with(Cell::get) % self.pools.len()]
    }
}

impl tower_service::Service<Request<Full<Bytes>>> for UpstreamClient {
    type Response = <HttpClient as tower_service::Service<Request<Full<Bytes>>>>::Response;
    type Error = <HttpClient as tower_service::Service<Request<Full<Bytes>>>>::Error;
    type Future = <HttpClient as tower_service::Service<Request<Full<Bytes>>>>::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // hyper-util's pooled client is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Full<Bytes>>) -> Self::Future {
        if self.traced {
            crate::telemetry::inject_current(request.headers_mut());
        }
        self.current().request(request)
    }
}

impl Gateway {
    /// Binds the listen address and starts serving: on the configured number of dedicated
    /// server threads (`server.threads`, [`GatewayBuilder::threads`](crate::GatewayBuilder::threads)), or, with none, on
    /// the current runtime.
    pub async fn serve(self) -> std::io::Result<GatewayHandle> {
        self.shared.alerts.start(default_client()?);
        let current = Arc::new(ArcSwap::from(self.shared));
        tokio::spawn(watch_queues(Arc::downgrade(&current)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let running = tokio::sync::Mutex::new(self.running);
        if self.threads == 0 {
            let listener = listen(self.listen)?;
            let addr = listener.local_addr()?;
            current.load().bound(addr);
            let task = tokio::spawn(accept_loop(
                listener,
                Arc::clone(&current),
                stop_rx,
                self.grace,
            ));
            return Ok(GatewayHandle {
                addr,
                current,
                running,
                stop: stop_tx,
                serving: Serving::Task(task),
            });
        }

        // One socket, shared by the threads' runtimes.
        let listener = listen(self.listen)?.into_std()?;
        let addr = listener.local_addr()?;
        current.load().bound(addr);
        // Each thread holds a sender; the channel closes when the last thread is done.
        let (done_tx, done_rx) = mpsc::channel::<()>(1);
        let mut threads = Vec::with_capacity(self.threads);
        for index in 0..self.threads {
            let listener = listener.try_clone()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let shared = Arc::clone(&current);
            let stop = stop_rx.clone();
            let done = done_tx.clone();
            let grace = self.grace;
            let thread = std::thread::Builder::new()
                .name(format!("seawall-gw-{index}"))
                .spawn(move || {
                    SERVER_THREAD.with(|thread| thread.set(index));
                    runtime.block_on(async move {
                        if let Ok(listener) = TcpListener::from_std(listener) {
                            accept_loop(listener, shared, stop, grace).await;
                        }
                    });
                    drop(done);
                });
            match thread {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    // Stop the threads already started before reporting.
                    let _ = stop_tx.send(true);
                    return Err(error);
                }
            }
        }
        Ok(GatewayHandle {
            addr,
            current,
            running,
            stop: stop_tx,
            serving: Serving::Threads { threads, done_rx },
        })
    }
}

/// The most connections the kernel queues before they are accepted. tokio's and std's
/// `bind` ask for 128: a burst of connections beyond it (a thousand clients opening streams
/// at once) has its SYNs dropped, and each waits a second or more for a retransmit.
const BACKLOG: u32 = 1024;

/// A listening socket with a backlog of [`BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Where the accept loops run.
pub(super) enum Serving {
    /// One task on the caller's runtime.
    Task(JoinHandle<()>),
    /// Dedicated threads, each with its own runtime; `done_rx` closes when all are done.
    Threads {
        threads: Vec<std::thread::JoinHandle<()>>,
        done_rx: mpsc::Receiver<()>,
    },
}

impl GatewayHandle {
    /// Stops accepting, lets in-flight requests and streams finish for up to the grace
    /// period, then closes what is left. `/readyz` answers 503 from the start of the drain.
    pub async fn shutdown(self) {
        self.current.load().ready.store(false, Relaxed);
        let _ = self.stop.send(true);
        match self.serving {
            Serving::Task(task) => {
                let _ = task.await;
            }
            Serving::Threads {
                threads,
                mut done_rx,
            } => {
                while done_rx.recv().await.is_some() {}
                for thread in threads {
                    // Each has dropped its sender at its very end: these joins do not wait.
                    let _ = thread.join();
                }
            }
        }
        // No call is left: what the leases hold goes back to the other replicas now.
        self.current.load().state.give_back_leases().await;
    }
}

/// Accepts connections until `stop` changes, then shuts down gracefully: the listener
/// closes, every connection is told to finish (an idle kept-alive one closes at once, one
/// with a call in flight closes after its response, a stream included), and whatever is
/// still open when `grace` runs out is cut: open streams end with an in-band error event,
/// and a connection still open a second later is dropped.
async fn accept_loop(
    listener: TcpListener,
    current: Arc<ArcSwap<Shared>>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    // The connection cap, header timeout and stream cut are the server's: the same in every
    // config a reload puts in force.
    let shared = current.load_full();
    // The front layers and the routes, built once; each connection gets a clone, and each
    // request reads the config in force when it arrives, and keeps it to its end.
    let service = TowerToHyperService::new(front(Routes {
        current: Arc::clone(&current),
    }));
    let graceful = GracefulShutdown::new();
    // The connection tasks, to drop those still open after the cut.
    let mut connections = JoinSet::new();
    loop {
        // At the connection cap, further clients wait in the listen backlog.
        let permit = tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            permit = Arc::clone(&shared.connections).acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors or similar: back off briefly instead of spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let header_read_timeout = shared.header_read_timeout;
        // A client that sends no (or a trickle of) headers, on a new connection or an idle
        // kept-alive one, is closed after the header read timeout.
        let connection = http1::Builder::new()
            .keep_alive(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _permit = permit;
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        // Open streams end with an in-band error event; their connections then close.
        shared.cut_streams.send_replace(true);
        let ended = tokio::time::timeout(Duration::from_secs(1), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if ended.is_err() {
            connections.shutdown().await;
        }
    } else {
        // Every connection has closed; its task ends with it.
        while connections.join_next().await.is_some() {}
    }
}

/// Every second, raises a `queue_growth` alert for each target whose limiter queue reached
/// the configured threshold; once per crossing: raised again only after the queue fell
/// below half of it. Follows reloads; ends with the gateway.
pub(super) async fn watch_queues(current: std::sync::Weak<ArcSwap<Shared>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut raised = Vec::new();
    loop {
        tick.tick().await;
        let Some(current) = current.upgrade() else {
            return;
        };
        let shared = current.load();
        let Some(threshold) = shared.queue_alert else {
            continue;
        };
        raised.resize(shared.targets.len(), false);
        for (target, raised) in shared.targets.iter().zip(&mut raised) {
            let Some(limiter) = &target.limiter else {
                continue;
            };
            let waiting = limiter.snapshot().queue_len;
            if !*raised && waiting >= threshold {
                *raised = true;
                shared.alerts.target(
                    &target.name,
                    TargetAlert::QueueGrowth { waiting, threshold },
                );
            } else if *raised && waiting * 2 < threshold {
                *raised = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpStream;

    /// How many connections the kernel queues on a listener of ours before any is accepted:
    /// our backlog, capped by the host's `net.core.somaxconn`. `None` where that is unknown.
    fn kernel_queue() -> Option<usize> {
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(somaxconn.min(super::BACKLOG as usize))
    }

    /// The burst to send: more than std's 128, within what the host queues. `None` (and the
    /// reason printed) on a host that cannot tell the two backlogs apart.
    fn burst() -> Option<usize> {
        match kernel_queue() {
            Some(queue) if queue > 160 => Some(queue.min(400) - 8),
            other => {
                eprintln!(
                    "skipped: this host queues {other:?} connections per listener \
                     (net.core.somaxconn), too few to tell our backlog from std's 128"
                );
                None
            }
        }
    }

    /// A burst of clients beyond 128 connecting at once all complete their handshakes
    /// before anything is accepted: none waits for a SYN retransmit (a second at least,
    /// against the 900 ms each is given).
    #[tokio::test]
    async fn the_listener_queues_a_burst_of_connections_beyond_128() {
        let Some(burst) = burst() else { return };
        let listener = super::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects: Vec<_> = (0..burst)
            .map(|_| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_millis(900),
                    TcpStream::connect(addr),
                ))
            })
            .collect();
        let mut handshakes = 0;
        let mut open = Vec::new();
        for connect in connects {
            if let Ok(Ok(Ok(stream))) = connect.await {
                handshakes += 1;
                open.push(stream);
            }
        }
        assert_eq!(handshakes, burst);
    }
}
