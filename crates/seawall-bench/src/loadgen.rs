//! The load generator: runs in a child process (so the server process's CPU is measured
//! alone), drives plain hyper HTTP/1.1 connections and prints one JSON report on stdout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::histogram::Histogram;

/// Longest wait for one non-streaming response before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Errors after which a connection gives up (a misconfigured run stops quickly).
const MAX_ERRORS_PER_CONNECTION: u64 = 100;
/// Longest a whole stream may take.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// What the child is told to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) addr: SocketAddr,
    /// The `Host` header.
    pub(crate) host: String,
    pub(crate) path: String,
    /// Headers every request carries (the credentials among them).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) model: String,
    pub(crate) stream: bool,
    /// Connections for a closed loop of requests; streams for a stream job.
    pub(crate) connections: usize,
    pub(crate) duration_ms: u64,
}

/// A closed-loop run's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoadReport {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// A streaming run's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamReport {
    pub(crate) completed: u64,
    pub(crate) errors: u64,
    /// Most streams open (headers received, end not yet) at one time.
    pub(crate) peak_open: u64,
    pub(crate) first_chunk_p50_us: f64,
    pub(crate) first_chunk_p99_us: f64,
    pub(crate) gap_mean_us: f64,
    pub(crate) gap_p50_us: f64,
    pub(crate) gap_p99_us: f64,
    pub(crate) chunks: u64,
}

fn request(job: &Job) -> http::Request<Full<Bytes>> {
    let body = format!(
        r#"{{"model":"{}","messages":[{{"role":"user","content":"Say hello to the harbor."}}],"stream":{}}}"#,
        job.model, job.stream
    );
    let mut request = http::Request::post(job.path.as_str())
        .header(http::header::HOST, job.host.as_str())
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in &job.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    // The headers were checked when the options were read.
    request
        .body(Full::new(Bytes::from(body)))
        .expect("request parts are valid")
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Runs `job` on a fresh runtime and returns the JSON report.
pub(crate) fn run(job: Job) -> std::io::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("seawall-loadgen")
        .build()?;
    let json = runtime.block_on(async move {
        if job.stream {
            serde_json::to_string(&streams(job).await)
        } else {
            serde_json::to_string(&closed_loop(job).await)
        }
    });
    json.map_err(std::io::Error::other)
}

async fn closed_loop(job: Job) -> LoadReport {
    let start = Instant::now();
    let end = start + Duration::from_millis(job.duration_ms);
    let mut tasks = Vec::new();
    for _ in 0..job.connections.max(1) {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::new();
            let mut errors = 0u64;
            let mut sender = None;
            while Instant::now() < end && errors < MAX_ERRORS_PER_CONNECTION {
                let mut current = match sender.take() {
                    Some(s) => s,
                    None => match connect(job.addr).await {
                        Ok(s) => s,
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    },
                };
                let sent = Instant::now();
                let outcome = timeout(REQUEST_TIMEOUT, async {
                    let response = current.send_request(request(&job)).await?;
                    let ok = response.status().is_success();
                    let _body = response.into_body().collect().await?;
                    Ok::<_, hyper::Error>(ok)
                })
                .await;
                match outcome {
                    Ok(Ok(true)) => {
                        histogram.record(sent.elapsed());
                        sender = Some(current);
                    }
                    Ok(Ok(false)) => {
                        errors += 1;
                        sender = Some(current);
                    }
                    _ => errors += 1,
                }
            }
            (histogram, errors)
        }));
    }
    let mut histogram = Histogram::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((h, e)) = task.await {
            histogram.merge(&h);
            errors += e;
        } else {
            errors += 1;
        }
    }
    LoadReport {
        requests: histogram.count(),
        errors,
        elapsed_s: start.elapsed().as_secs_f64(),
        p50_us: histogram.quantile_us(0.5),
        p99_us: histogram.quantile_us(0.99),
    }
}

/// One stream's timings.
#[derive(Debug)]
struct StreamTimes {
    first_chunk: Duration,
    gaps: Histogram,
    chunks: u64,
}

async fn one_stream(
    job: &Job,
    open: &std::sync::atomic::AtomicU64,
    peak: &std::sync::atomic::AtomicU64,
) -> Option<StreamTimes> {
    use std::sync::atomic::Ordering;
    let mut sender = connect(job.addr).await.ok()?;
    let sent = Instant::now();
    let response = sender.send_request(request(job)).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
    peak.fetch_max(now_open, Ordering::Relaxed);
    let mut body = response.into_body();
    let mut first_chunk = None;
    let mut last = None;
    let mut gaps = Histogram::new();
    let mut chunks = 0u64;
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            failed = true;
            break;
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let events = data.windows(5).filter(|w| w == b"data:").count() as u64;
        if events == 0 {
            continue;
        }
        let now = Instant::now();
        if let Some(previous) = last {
            gaps.record(now - previous);
        } else {
            first_chunk = Some(now - sent);
        }
        last = Some(now);
        chunks += events;
    }
    open.fetch_sub(1, Ordering::Relaxed);
    if failed {
        return None;
    }
    Some(StreamTimes {
        first_chunk: first_chunk?,
        gaps,
        chunks,
    })
}

async fn streams(job: Job) -> StreamReport {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    let open = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..job.connections.max(1) {
        let job = job.clone();
        let (open, peak) = (Arc::clone(&open), Arc::clone(&peak));
        tasks.push(tokio::spawn(async move {
            timeout(STREAM_TIMEOUT, one_stream(&job, &open, &peak))
                .await
                .ok()
                .flatten()
        }));
    }
    let mut first = Histogram::new();
    let mut gaps = Histogram::new();
    let (mut completed, mut errors, mut chunks) = (0, 0, 0);
    for task in tasks {
        match task.await {
            Ok(Some(times)) => {
                completed += 1;
                chunks += times.chunks;
                first.record(times.first_chunk);
                gaps.merge(&times.gaps);
            }
            _ => errors += 1,
        }
    }
    StreamReport {
        completed,
        errors,
        peak_open: peak.load(std::sync::atomic::Ordering::Relaxed),
        first_chunk_p50_us: first.quantile_us(0.5),
        first_chunk_p99_us: first.quantile_us(0.99),
        gap_mean_us: gaps.mean_us(),
        gap_p50_us: gaps.quantile_us(0.5),
        gap_p99_us: gaps.quantile_us(0.99),
        chunks,
    }
}
