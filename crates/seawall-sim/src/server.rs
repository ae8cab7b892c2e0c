//! The simulator: listener, routing, faults, quotas and the admin endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::body::{Aborted, SimBody, StreamEnd, TimedFrame};
use crate::config::{Provider, ProviderSettings, QuotaConfig, ScriptedReply, SimConfig};
use crate::fault::{Fault, FaultRule, FaultSlot, RateLimitKind, RetryAfter, RetryHeaders};
use crate::log::{LoggedRequest, RequestLog, redact_query};
use crate::quota::{QuotaView, Quotas};
use crate::reply;
use crate::timefmt;
use crate::wire::{
    self, ApiError, ResponseCtx, StreamParts, anthropic, embed, gemini, openai, responses,
};

/// Largest request body accepted (Anthropic's documented Messages limit); larger gets 413.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Pause between the two halves of a split event (`split_events`), so they leave in two writes.
const SPLIT_PAUSE: Duration = Duration::from_millis(1);

/// Default request-log capacity.
const DEFAULT_LOG_CAPACITY: usize = 10_000;

/// State shared by every connection.
#[derive(Debug)]
struct Shared {
    settings: [ProviderSettings; 6],
    faults: [FaultSlot; 6],
    quotas: [Quotas; 6],
    /// Live copy of `ProviderSettings::reject_prefill`, switchable while running.
    reject_prefill: [AtomicBool; 6],
    /// Live copy of `ProviderSettings::seed`, switchable while running.
    seeds: [AtomicU64; 6],
    log: RequestLog,
    /// New connections are reset until this many ms after `started` (0: never).
    refuse_until_ms: AtomicU64,
    started: Instant,
    base: String,
}

/// Builds a [`Simulator`].
#[derive(Debug, Clone)]
pub struct SimulatorBuilder {
    config: SimConfig,
    listen: SocketAddr,
}

impl SimulatorBuilder {
    /// Starts from a parsed configuration file.
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }

    /// The address to bind (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Replaces one provider's settings.
    pub fn provider(mut self, provider: Provider, settings: ProviderSettings) -> Self {
        *self.slot(provider) = Some(settings);
        self
    }

    /// Changes one provider's settings in place.
    pub fn configure(mut self, provider: Provider, f: impl FnOnce(&mut ProviderSettings)) -> Self {
        let slot = self.slot(provider);
        let mut s = slot.take().unwrap_or_default();
        f(&mut s);
        *slot = Some(s);
        self
    }

    /// Sets a setting on every provider.
    fn all(mut self, f: impl Fn(&mut ProviderSettings)) -> Self {
        for p in Provider::ALL {
            self = self.configure(p, &f);
        }
        self
    }

    /// Reply seed for every provider.
    pub fn seed(self, seed: u64) -> Self {
        self.all(|s| s.seed = seed)
    }

    /// Reply length (tokens) for every provider.
    pub fn reply_tokens(self, tokens: u32) -> Self {
        self.all(|s| s.reply_tokens = tokens)
    }

    /// Time to first token for every provider.
    pub fn first_token(self, delay: Duration) -> Self {
        self.all(|s| s.first_token_ms = delay.as_millis() as u64)
    }

    /// Delay between stream chunks for every provider.
    pub fn chunk_interval(self, delay: Duration) -> Self {
        self.all(|s| s.chunk_interval_ms = delay.as_millis() as u64)
    }

    /// Quota of one provider.
    pub fn quota(self, provider: Provider, quota: QuotaConfig) -> Self {
        self.configure(provider, |s| s.quota = quota)
    }

    /// Whether one provider rejects assistant prefill.
    pub fn reject_prefill(self, provider: Provider, reject: bool) -> Self {
        self.configure(provider, |s| s.reject_prefill = reject)
    }

    /// A scripted reply on every provider: a request whose last user message contains
    /// `phrase` is answered with `text` instead of generated words (see [`ScriptedReply`]).
    pub fn scripted_reply(self, phrase: &str, text: &str) -> Self {
        self.all(|s| {
            s.replies.push(ScriptedReply {
                when_prompt_contains: phrase.to_owned(),
                text: text.to_owned(),
            });
        })
    }

    /// Faults installed at start for one provider.
    pub fn faults(self, provider: Provider, rules: Vec<FaultRule>) -> Self {
        self.configure(provider, |s| s.faults = rules)
    }

    /// Request-log capacity (oldest entries are dropped beyond it).
    pub fn log_capacity(mut self, capacity: usize) -> Self {
        self.config.log_capacity = Some(capacity);
        self
    }

    fn slot(&mut self, provider: Provider) -> &mut Option<ProviderSettings> {
        let c = &mut self.config;
        match provider {
            Provider::OpenAi => &mut c.openai,
            Provider::Anthropic => &mut c.anthropic,
            Provider::Gemini => &mut c.gemini,
            Provider::Ollama => &mut c.ollama,
            Provider::Vllm => &mut c.vllm,
            Provider::LlamaCpp => &mut c.llamacpp,
        }
    }

    /// Binds the listener and starts serving.
    pub async fn start(self) -> std::io::Result<Simulator> {
        let listener = listen(self.listen)?;
        let addr = listener.local_addr()?;
        let shared = self.shared(addr);
        let (stop_tx, stop_rx) = watch::channel(());
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop_rx));
        Ok(Simulator {
            shared,
            addr,
            stop: Some(stop_tx),
            task: Some(Serving::Task(task)),
        })
    }

    /// Starts on `threads` dedicated OS threads, each running its own single-threaded tokio
    /// runtime and accepting from the same listening socket. Connections never migrate between
    /// threads, so there are no cross-thread wake-ups: the fastest layout for a standalone
    /// server (the binary uses it). Needs no runtime; call it outside async code.
    pub fn start_threaded(self, threads: usize) -> std::io::Result<Simulator> {
        let listener = bind_shared(self.listen)?;
        let addr = listener.local_addr()?;
        let shared = self.shared(addr);
        let (stop_tx, stop_rx) = watch::channel(());
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let listener = listener.try_clone()?;
            let shared = Arc::clone(&shared);
            let stop = stop_rx.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = std::thread::Builder::new()
                .name(format!("seawall-sim-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        if let Ok(listener) = TcpListener::from_std(listener) {
                            accept_loop(listener, shared, stop).await;
                        }
                    });
                })?;
            handles.push(handle);
        }
        Ok(Simulator {
            shared,
            addr,
            stop: Some(stop_tx),
            task: Some(Serving::Threads(handles)),
        })
    }

    fn shared(&self, addr: SocketAddr) -> Arc<Shared> {
        let settings: [ProviderSettings; 6] = Provider::ALL.map(|p| self.config.settings(p));
        let faults = std::array::from_fn(|_| FaultSlot::new());
        let quotas = std::array::from_fn(|i| Quotas::new(&settings[i].quota));
        let reject_prefill = std::array::from_fn(|i| AtomicBool::new(settings[i].reject_prefill));
        let seeds = std::array::from_fn(|i| AtomicU64::new(settings[i].seed));
        let shared = Arc::new(Shared {
            faults,
            reject_prefill,
            seeds,
            quotas,
            log: RequestLog::new(self.config.log_capacity.unwrap_or(DEFAULT_LOG_CAPACITY)),
            refuse_until_ms: AtomicU64::new(0),
            started: Instant::now(),
            base: format!("http://{addr}"),
            settings,
        });
        for p in Provider::ALL {
            let rules = shared.settings[p.index()].faults.clone();
            shared.faults[p.index()].set(rules);
        }
        shared
    }
}

/// The most connections the kernel queues before they are accepted. tokio's and std's
/// `bind` ask for 128: a burst of connections beyond it has its SYNs dropped, and each
/// waits a second or more for a retransmit.
const BACKLOG: u32 = 1024;

/// A listening socket with a backlog of [`BACKLOG`]. Needs a runtime's context.
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

/// A non-blocking listening socket (see [`listen`]) for several runtimes to accept from,
/// made on a runtime that lives only for the bind, on a thread of its own so that a caller
/// inside a runtime is served too.
fn bind_shared(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()?
                    .block_on(async { listen(addr)?.into_std() })
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("binding the listener panicked")))
    })
}

/// Where the accept loops run.
#[derive(Debug)]
enum Serving {
    /// One task on the caller's runtime.
    Task(JoinHandle<()>),
    /// Dedicated threads with their own runtimes.
    Threads(Vec<std::thread::JoinHandle<()>>),
}

/// A running simulator. Stops when dropped or on [`Simulator::shutdown`].
///
/// See the crate docs for the URL layout, fault scripting and the request log.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<watch::Sender<()>>,
    task: Option<Serving>,
}

impl Simulator {
    /// A builder with default settings, listening on `127.0.0.1:0`.
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder {
            config: SimConfig::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give a provider's SDK or adapter, e.g. `http://127.0.0.1:PORT/openai/v1`.
    pub fn base_url(&self, provider: Provider) -> String {
        format!("{}{}", self.shared.base, provider.base_path())
    }

    /// The admin endpoint's base URL (`…/__sim`).
    pub fn admin_url(&self) -> String {
        format!("{}/__sim", self.shared.base)
    }

    /// Replaces a provider's fault plan; request numbers and time windows restart at zero.
    pub fn set_faults(&self, provider: Provider, rules: Vec<FaultRule>) {
        self.shared.faults[provider.index()].set(rules);
    }

    /// Removes a provider's faults.
    pub fn clear_faults(&self, provider: Provider) {
        self.set_faults(provider, Vec::new());
    }

    /// The rules installed for a provider.
    pub fn faults(&self, provider: Provider) -> Vec<FaultRule> {
        self.shared.faults[provider.index()].rules()
    }

    /// Replaces a provider's quota and forgets its usage.
    pub fn set_quota(&self, provider: Provider, quota: QuotaConfig) {
        self.shared.quotas[provider.index()].configure(&quota);
    }

    /// Switches whether a provider rejects assistant prefill (see
    /// [`ProviderSettings::reject_prefill`]).
    pub fn set_reject_prefill(&self, provider: Provider, reject: bool) {
        self.shared.reject_prefill[provider.index()].store(reject, Ordering::Release);
    }

    /// Changes the seed of `provider`'s replies while running (see
    /// [`ProviderSettings::seed`]): a provider with another seed gives other text for the
    /// same conversation.
    pub fn set_seed(&self, provider: Provider, seed: u64) {
        self.shared.seeds[provider.index()].store(seed, Ordering::Release);
    }

    /// Resets every new connection (TCP RST right after accept, before any byte is read) for
    /// the given time: what a client sees when a server refuses connections. Connections
    /// already open keep working.
    pub fn refuse_connections(&self, duration: Duration) {
        refuse_for(&self.shared, duration);
    }

    /// Every logged request, in arrival order (bounded by the log capacity).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.entries()
    }

    /// Logged requests that reached one provider.
    pub fn requests_for(&self, provider: Provider) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.provider == Some(provider))
            .collect()
    }

    /// Empties the request log.
    pub fn clear_log(&self) {
        self.shared.log.clear();
    }

    /// Restores every provider to its configured state: no faults (not even the configured
    /// ones), configured quotas with no usage, configured prefill policy and seed; empties the
    /// log.
    pub fn reset(&self) {
        reset_all(&self.shared);
    }

    /// Stops accepting, closes idle connections at once, gives responses under way a
    /// moment to finish (100 ms), closes the rest and waits for the listener to close.
    pub async fn shutdown(mut self) {
        self.stop.take();
        match self.task.take() {
            Some(Serving::Task(task)) => {
                let _ = task.await;
            }
            Some(Serving::Threads(threads)) => {
                let _ = tokio::task::spawn_blocking(move || {
                    for t in threads {
                        let _ = t.join();
                    }
                })
                .await;
            }
            None => {}
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Dropping the sender wakes every connection task and the accept loop.
        self.stop.take();
    }
}

fn refuse_for(shared: &Shared, duration: Duration) {
    let until = shared.started.elapsed() + duration;
    shared
        .refuse_until_ms
        .store(until.as_millis() as u64, Ordering::Release);
}

fn reset_all(shared: &Shared) {
    shared.refuse_until_ms.store(0, Ordering::Release);
    for p in Provider::ALL {
        shared.faults[p.index()].set(Vec::new());
        shared.quotas[p.index()].configure(&shared.settings[p.index()].quota);
        shared.reject_prefill[p.index()]
            .store(shared.settings[p.index()].reject_prefill, Ordering::Release);
        shared.seeds[p.index()].store(shared.settings[p.index()].seed, Ordering::Release);
    }
    shared.log.clear();
}

/// How long responses under way at shutdown are given to finish before their connections
/// are closed: enough for an answer already being written, short of a hanging fault.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);

/// Accepts connections until `stop` changes or closes, then shuts down gracefully: idle
/// kept-alive connections close at once, responses under way get [`SHUTDOWN_GRACE`], and
/// the connections still open then are closed.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors or similar: back off briefly instead of spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let refuse_until = shared.refuse_until_ms.load(Ordering::Acquire);
        if refuse_until > 0 && (shared.started.elapsed().as_millis() as u64) < refuse_until {
            // Linger 0 turns the close into an immediate RST; it never blocks.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req| handle(Arc::clone(&shared), req));
        let conn = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        connections.shutdown().await;
    } else {
        while connections.join_next().await.is_some() {}
    }
}

type Reply = Result<Response<SimBody>, Aborted>;

fn respond(
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: SimBody,
) -> Response<SimBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = resp.headers_mut();
    map.reserve(headers.len());
    for (name, value) in headers {
        map.append(name, value);
    }
    resp
}

/// A header value from an owned string (takes the buffer, no copy); invalid bytes, which
/// the simulator never produces, become an empty value rather than a panic.
fn owned(value: String) -> HeaderValue {
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn json_response(status: u16, content_type: &'static str, body: Bytes) -> Response<SimBody> {
    respond(
        status,
        vec![(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        SimBody::full(body),
    )
}

/// Which endpoint a request is for.
#[derive(Debug)]
enum Endpoint {
    Chat,
    Responses,
    ResponsesInputTokens,
    Models,
    Health,
    Messages,
    CountMessageTokens,
    Generate {
        model: String,
        stream: bool,
    },
    CountGeminiTokens {
        model: String,
    },
    /// OpenAI `/v1/embeddings`.
    Embeddings,
    /// Gemini `:embedContent` (`batch: false`) and `:batchEmbedContents`.
    EmbedContent {
        model: String,
        batch: bool,
    },
    NotFound,
}

fn split_provider(path: &str) -> Option<(Provider, &str)> {
    for p in Provider::ALL {
        let prefix = match p {
            Provider::OpenAi => "/openai",
            Provider::Anthropic => "/anthropic",
            Provider::Gemini => "/gemini",
            Provider::Ollama => "/ollama",
            Provider::Vllm => "/vllm",
            Provider::LlamaCpp => "/llamacpp",
        };
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                return Some((p, rest));
            }
        }
    }
    // Unprefixed paths go to the provider that owns them.
    if path.starts_with("/v1/messages") {
        Some((Provider::Anthropic, path))
    } else if path.starts_with("/v1beta/")
        || (path.starts_with("/v1/models/") && path.contains(':'))
    {
        Some((Provider::Gemini, path))
    } else if path.starts_with("/v1/") {
        Some((Provider::OpenAi, path))
    } else {
        None
    }
}

fn route(provider: Provider, method: &Method, rest: &str) -> Endpoint {
    match provider {
        Provider::Anthropic => match (method, rest) {
            (&Method::POST, "/v1/messages") => Endpoint::Messages,
            (&Method::POST, "/v1/messages/count_tokens") => Endpoint::CountMessageTokens,
            _ => Endpoint::NotFound,
        },
        Provider::Gemini => {
            let tail = rest
                .strip_prefix("/v1beta/models/")
                .or_else(|| rest.strip_prefix("/v1/models/"));
            match (method, tail.and_then(|t| t.rsplit_once(':'))) {
                (&Method::POST, Some((model, "generateContent"))) if !model.is_empty() => {
                    Endpoint::Generate {
                        model: model.to_owned(),
                        stream: false,
                    }
                }
                (&Method::POST, Some((model, "streamGenerateContent"))) if !model.is_empty() => {
                    Endpoint::Generate {
                        model: model.to_owned(),
                        stream: true,
                    }
                }
                (
                    &Method::POST,
                    Some((model, method @ ("embedContent" | "batchEmbedContents"))),
                ) if !model.is_empty() => Endpoint::EmbedContent {
                    model: model.to_owned(),
                    batch: method == "batchEmbedContents",
                },
                (&Method::POST, Some((model, "countTokens"))) if !model.is_empty() => {
                    Endpoint::CountGeminiTokens {
                        model: model.to_owned(),
                    }
                }
                _ => Endpoint::NotFound,
            }
        }
        _ => match (method, rest) {
            (&Method::POST, "/v1/chat/completions") => Endpoint::Chat,
            (&Method::POST, "/v1/responses") if provider == Provider::OpenAi => Endpoint::Responses,
            (&Method::POST, "/v1/responses/input_tokens") if provider == Provider::OpenAi => {
                Endpoint::ResponsesInputTokens
            }
            (&Method::POST, "/v1/embeddings") if provider == Provider::OpenAi => {
                Endpoint::Embeddings
            }
            (&Method::GET, "/v1/models") => Endpoint::Models,
            (&Method::GET, "/health") if provider == Provider::LlamaCpp => Endpoint::Health,
            _ => Endpoint::NotFound,
        },
    }
}

/// The deployment and the endpoint path after it, for an Azure deployment path
/// (`/deployments/{name}/chat/completions` under the OpenAI prefix).
fn azure_deployment(rest: &str) -> Option<(&str, &str)> {
    let after = rest.strip_prefix("/deployments/")?;
    let (name, tail) = after.split_at(after.find('/')?);
    (!name.is_empty()).then_some((name, tail))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    header(headers, "authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn handle(shared: Arc<Shared>, req: http::Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(())
        }
        // The client went away mid-body: nothing to answer.
        Err(_) => return Err(Aborted),
    };
    if let Some(admin) = path.strip_prefix("/__sim") {
        return Ok(handle_admin(
            &shared,
            &parts.method,
            admin,
            &query,
            body.unwrap_or_default(),
        ));
    }
    let routed = split_provider(&path);
    let seq = shared.log.next_seq();
    shared.log.push(LoggedRequest::new(
        seq,
        routed.map(|(p, _)| p),
        parts.method.clone(),
        match parts.uri.path_and_query() {
            Some(pq) if pq.query().is_some() => redact_query(pq.as_str()),
            Some(pq) => pq.as_str().to_owned(),
            None => path.clone(),
        },
        &parts.headers,
        body.as_deref().unwrap_or_default(),
        shared.started.elapsed(),
    ));
    let Some((provider, rest)) = routed else {
        let err = ApiError::new(
            404,
            "invalid_request_error",
            format!("Invalid URL ({} {path})", parts.method),
        );
        // Unknown paths answer in OpenAI's shape, the most common client.
        return Ok(error_response(Provider::OpenAi, &err, seq, Vec::new()));
    };
    let Ok(body) = body else {
        let err = wire::default_error(provider, 413);
        return Ok(error_response(provider, &err, seq, Vec::new()));
    };
    // Azure OpenAI: a deployment path (`/openai/deployments/{name}/...`, which needs an
    // `api-version`), or the v1 path with the key in `api-key`.
    let deployment = (provider == Provider::OpenAi)
        .then(|| azure_deployment(rest))
        .flatten();
    let azure = deployment.is_some()
        || (provider == Provider::OpenAi && parts.headers.contains_key("api-key"));
    if deployment.is_some() && query_param(&query, "api-version").is_none_or(str::is_empty) {
        let err = ApiError {
            status: 404,
            error_type: None,
            message: "Resource not found".into(),
            code: Some("404".into()),
            param: None,
            extra: Vec::new(),
        };
        return Ok(error_response(provider, &err, seq, Vec::new()));
    }
    let endpoint = match deployment {
        Some((_, tail)) => route(provider, &parts.method, &format!("/v1{tail}")),
        None => route(provider, &parts.method, rest),
    };
    let ctx = ResponseCtx {
        provider,
        seq,
        created: now_unix(),
        azure,
    };
    match endpoint {
        Endpoint::NotFound => {
            let mut err = wire::default_error(provider, 404);
            if provider == Provider::OpenAi {
                err = ApiError::new(
                    404,
                    "invalid_request_error",
                    format!("Invalid URL ({} {rest})", parts.method),
                );
            }
            Ok(error_response(provider, &err, seq, Vec::new()))
        }
        Endpoint::Models => Ok(json_response(
            200,
            "application/json",
            openai::models(provider),
        )),
        _ => {
            serve(
                &shared,
                provider,
                endpoint,
                &parts.headers,
                &query,
                &body,
                ctx,
            )
            .await
        }
    }
}

fn error_response(
    provider: Provider,
    err: &ApiError,
    seq: u64,
    mut headers: Vec<(HeaderName, HeaderValue)>,
) -> Response<SimBody> {
    headers.insert(
        0,
        (
            CONTENT_TYPE,
            HeaderValue::from_static(wire::json_content_type(provider)),
        ),
    );
    identity_headers(provider, seq, &mut headers);
    respond(
        err.status,
        headers,
        SimBody::full(wire::error_body(provider, err, seq)),
    )
}

fn identity_headers(provider: Provider, seq: u64, headers: &mut Vec<(HeaderName, HeaderValue)>) {
    match provider {
        Provider::OpenAi => {
            headers.push((
                HeaderName::from_static("x-request-id"),
                owned(format!("req_{}", wire::filler(seq, 32))),
            ));
            headers.push((
                HeaderName::from_static("openai-version"),
                HeaderValue::from_static("2020-10-01"),
            ));
            headers.push((
                HeaderName::from_static("openai-organization"),
                HeaderValue::from_static("user-seawall-sim"),
            ));
            headers.push((
                HeaderName::from_static("openai-processing-ms"),
                HeaderValue::from_static("1"),
            ));
        }
        Provider::Anthropic => {
            headers.push((
                HeaderName::from_static("request-id"),
                owned(anthropic::request_id(seq)),
            ));
            headers.push((
                HeaderName::from_static("anthropic-organization-id"),
                HeaderValue::from_static("5eaa11a1-0000-4000-8000-5ea3a1151111"),
            ));
        }
        _ => {}
    }
}

fn retry_headers(
    provider: Provider,
    retry: &RetryHeaders,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
) {
    if provider != Provider::Gemini {
        if let Some(ra) = &retry.retry_after {
            let value = match ra {
                RetryAfter::Seconds(s) => s.to_string(),
                RetryAfter::Float(f) => f.to_string(),
                RetryAfter::HttpDateIn(s) => {
                    timefmt::http_date(timefmt::now_plus(Duration::from_secs(*s)))
                }
                RetryAfter::Raw(s) => s.clone(),
            };
            headers.push((HeaderName::from_static("retry-after"), owned(value)));
        }
    }
    if let Some(ms) = retry.retry_after_ms {
        headers.push((
            HeaderName::from_static("retry-after-ms"),
            owned(ms.to_string()),
        ));
    }
    if let Some(flag) = retry.should_retry {
        headers.push((
            HeaderName::from_static("x-should-retry"),
            HeaderValue::from_static(if flag { "true" } else { "false" }),
        ));
    }
}

fn retry_delay(ra: &RetryAfter) -> Option<Duration> {
    match ra {
        RetryAfter::Seconds(s) | RetryAfter::HttpDateIn(s) => Some(Duration::from_secs(*s)),
        RetryAfter::Float(f) => Duration::try_from_secs_f64(*f).ok(),
        RetryAfter::Raw(s) => s
            .parse::<f64>()
            .ok()
            .and_then(|f| Duration::try_from_secs_f64(f).ok()),
    }
}

fn rate_limit_headers(
    provider: Provider,
    q: &QuotaView,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
) {
    match provider {
        Provider::OpenAi => {
            let reset = timefmt::go_duration(q.reset_in);
            for (name, value) in [
                ("x-ratelimit-limit-requests", q.limit_requests.to_string()),
                ("x-ratelimit-limit-tokens", q.limit_tokens.to_string()),
                (
                    "x-ratelimit-remaining-requests",
                    q.remaining_requests.to_string(),
                ),
                (
                    "x-ratelimit-remaining-tokens",
                    q.remaining_tokens.to_string(),
                ),
                ("x-ratelimit-reset-requests", reset.clone()),
                ("x-ratelimit-reset-tokens", reset),
            ] {
                headers.push((HeaderName::from_static(name), owned(value)));
            }
        }
        Provider::Anthropic => {
            let reset = timefmt::rfc3339(timefmt::now_plus(
                q.reset_in.saturating_add(Duration::from_millis(999)),
            ));
            for (name, value) in [
                (
                    "anthropic-ratelimit-requests-limit",
                    q.limit_requests.to_string(),
                ),
                (
                    "anthropic-ratelimit-requests-remaining",
                    q.remaining_requests.to_string(),
                ),
                ("anthropic-ratelimit-requests-reset", reset.clone()),
                (
                    "anthropic-ratelimit-tokens-limit",
                    q.limit_tokens.to_string(),
                ),
                (
                    "anthropic-ratelimit-tokens-remaining",
                    q.remaining_tokens.to_string(),
                ),
                ("anthropic-ratelimit-tokens-reset", reset.clone()),
                (
                    "anthropic-ratelimit-input-tokens-limit",
                    q.limit_tokens.to_string(),
                ),
                (
                    "anthropic-ratelimit-input-tokens-remaining",
                    q.remaining_input_tokens.to_string(),
                ),
                ("anthropic-ratelimit-input-tokens-reset", reset.clone()),
                (
                    "anthropic-ratelimit-output-tokens-limit",
                    q.limit_tokens.to_string(),
                ),
                (
                    "anthropic-ratelimit-output-tokens-remaining",
                    q.remaining_output_tokens.to_string(),
                ),
                ("anthropic-ratelimit-output-tokens-reset", reset),
            ] {
                headers.push((HeaderName::from_static(name), owned(value)));
            }
        }
        _ => {}
    }
}

/// The body of a 429 of the given kind.
/// The figures a rate-limit message quotes: the configured limit, what was used and what
/// the refused request asked for.
#[derive(Debug, Clone, Copy)]
struct LimitFigures {
    limit: u64,
    used: u64,
    requested: u64,
}

impl LimitFigures {
    /// For an injected 429: the configured limit, spent.
    fn injected(quota: &QuotaConfig, kind: RateLimitKind) -> LimitFigures {
        let limit = match kind {
            RateLimitKind::Requests => quota.requests,
            _ => quota.tokens,
        };
        LimitFigures {
            limit,
            used: limit,
            requested: 1,
        }
    }
}

fn rate_limit_error(
    provider: Provider,
    kind: RateLimitKind,
    model: &str,
    retry_in: Option<Duration>,
    figures: LimitFigures,
) -> ApiError {
    let LimitFigures {
        limit,
        used,
        requested,
    } = figures;
    let wait = retry_in
        .map(|d| format!(" Please try again in {}.", timefmt::go_duration(d)))
        .unwrap_or_default();
    match provider {
        Provider::Anthropic => {
            let mut e = anthropic::default_error(429);
            match kind {
                RateLimitKind::QuotaExhausted => {
                    e.message = "You have reached your specified API usage limits. You will regain access on the first day of next month at 00:00 UTC.".into();
                    e = e.extra("details", json!({"error_code": "enforced_spend_limit_reached"}));
                }
                RateLimitKind::Tokens | RateLimitKind::RequestTooLarge => {
                    e.message = format!("This request would exceed the rate limit for your organization of {limit} input tokens per minute. For details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.");
                }
                RateLimitKind::Requests => {}
            }
            e
        }
        Provider::Gemini => {
            let quota_id = match kind {
                RateLimitKind::Requests => "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                RateLimitKind::Tokens | RateLimitKind::RequestTooLarge => {
                    "GenerateContentInputTokensPerModelPerMinute-FreeTier"
                }
                RateLimitKind::QuotaExhausted => "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            };
            let mut details = vec![
                json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": "10"
                }]}),
                json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"
                }]}),
            ];
            if let Some(d) = retry_in {
                details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": timefmt::proto_duration(d)}));
            }
            gemini::default_error(429).extra("details", Value::Array(details))
        }
        Provider::OpenAi => match kind {
            RateLimitKind::Requests => ApiError::new(
                429,
                "requests",
                format!("Rate limit reached for {model} in organization org-seawall-sim on requests per min (RPM): Limit {limit}, Used {used}, Requested {requested}.{wait} Visit https://platform.openai.com/account/rate-limits to learn more."),
            )
            .code("rate_limit_exceeded"),
            RateLimitKind::Tokens => ApiError::new(
                429,
                "tokens",
                format!("Rate limit reached for {model} in organization org-seawall-sim on tokens per min (TPM): Limit {limit}, Used {used}, Requested {requested}.{wait} Visit https://platform.openai.com/account/rate-limits to learn more."),
            )
            .code("rate_limit_exceeded"),
            RateLimitKind::RequestTooLarge => ApiError::new(
                429,
                "tokens",
                format!("Request too large for {model} in organization org-seawall-sim on tokens per min (TPM): Limit {limit}, Requested {requested}. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more."),
            )
            .code("rate_limit_exceeded"),
            RateLimitKind::QuotaExhausted => ApiError::new(
                429,
                "insufficient_quota",
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            )
            .code("insufficient_quota"),
        },
        local => {
            let mut e = wire::default_error(local, 429);
            e.message = "Too many requests".into();
            e
        }
    }
}

/// The provider's overload error.
fn overload_error(provider: Provider) -> ApiError {
    match provider {
        Provider::Anthropic => anthropic::default_error(529),
        _ => wire::default_error(provider, 503),
    }
}

/// Extracts the API key and checks it; `Err` is the provider's auth error. An Azure
/// request (`azure`) carries its key in `api-key` (or a Microsoft Entra token as Bearer).
fn authenticate(
    provider: Provider,
    settings: &ProviderSettings,
    headers: &HeaderMap,
    query: &str,
    azure: bool,
) -> Result<String, ApiError> {
    if azure {
        let key = header(headers, "api-key")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .or_else(|| bearer(headers));
        let valid = key.filter(|k| {
            settings
                .valid_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|v| v == k))
        });
        return valid.map(str::to_owned).ok_or_else(|| ApiError {
            status: 401,
            error_type: None,
            message: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.".into(),
            code: Some("401".into()),
            param: None,
            extra: Vec::new(),
        });
    }
    let key = match provider {
        Provider::OpenAi => bearer(headers),
        Provider::Anthropic => header(headers, "x-api-key")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .or_else(|| bearer(headers)),
        Provider::Gemini => header(headers, "x-goog-api-key")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .or_else(|| query_param(query, "key").filter(|k| !k.is_empty())),
        // Local servers run without keys unless `valid_keys` asks for one.
        _ => bearer(headers),
    };
    let valid = |k: &str| {
        settings
            .valid_keys
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|v| v == k))
    };
    match (provider, key) {
        (_, Some(k)) if valid(k) => Ok(k.to_owned()),
        (Provider::Gemini, None) => Err(gemini::missing_key()),
        (Provider::Gemini, Some(_)) => Err(gemini::invalid_key()),
        (Provider::Anthropic, None) => Err(ApiError::new(401, "authentication_error", "x-api-key header is required")),
        (Provider::Anthropic, Some(_)) => Err(anthropic::default_error(401)),
        (Provider::OpenAi, None) => Err(ApiError {
            status: 401,
            error_type: Some("invalid_request_error".into()),
            message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username. You can obtain an API key from https://platform.openai.com/account/api-keys.".into(),
            code: None,
            param: None,
            extra: Vec::new(),
        }),
        (_, None) if settings.valid_keys.is_none() => Ok("anonymous".to_owned()),
        (p, _) => Err(wire::default_error(p, 401)),
    }
}

/// The provider's context-length error, if the request does not fit `window`.
fn context_error(
    provider: Provider,
    window: u64,
    prompt: u64,
    max_tokens: Option<u64>,
) -> Option<ApiError> {
    let requested = max_tokens.unwrap_or(0);
    match provider {
        Provider::Anthropic if prompt > window => Some(ApiError::new(
            400,
            "invalid_request_error",
            format!("prompt is too long: {prompt} tokens > {window} maximum"),
        )),
        Provider::Anthropic if prompt + requested > window => Some(ApiError::new(
            400,
            "invalid_request_error",
            format!("input length and `max_tokens` exceed context limit: {prompt} + {requested} > {window}, decrease input length or `max_tokens` and try again"),
        )),
        _ if prompt <= window => None,
        Provider::OpenAi => Some(
            ApiError::new(
                400,
                "invalid_request_error",
                format!("This model's maximum context length is {window} tokens. However, your messages resulted in {prompt} tokens. Please reduce the length of the messages."),
            )
            .param("messages")
            .code("context_length_exceeded"),
        ),
        Provider::Gemini => Some(ApiError::new(
            400,
            "INVALID_ARGUMENT",
            format!("The input token count ({prompt}) exceeds the maximum number of tokens allowed ({window})."),
        )),
        Provider::Vllm => Some(
            ApiError::new(
                400,
                "BadRequestError",
                format!("This model's maximum context length is {window} tokens. However, your request has {prompt} input tokens. Please reduce the length of the input messages."),
            )
            .param("input_tokens"),
        ),
        Provider::LlamaCpp => Some(
            ApiError::new(
                400,
                "exceed_context_size_error",
                format!("request ({prompt} tokens) exceeds the available context size ({window} tokens), try increasing it"),
            )
            .extra("n_prompt_tokens", json!(prompt))
            .extra("n_ctx", json!(window)),
        ),
        // Ollama truncates the prompt instead of refusing it.
        _ => None,
    }
}

fn prefill_error(provider: Provider) -> ApiError {
    match provider {
        Provider::Anthropic => {
            ApiError::new(400, "invalid_request_error", anthropic::PREFILL_REJECTED)
        }
        Provider::Gemini => ApiError::new(
            400,
            "INVALID_ARGUMENT",
            "Please ensure that multiturn requests end with a user role or a function response.",
        ),
        p => {
            let mut e = wire::default_error(p, 400);
            e.message = "This model does not support assistant message prefill. The conversation must end with a user or tool message.".into();
            e.param = Some("messages".into());
            if p == Provider::OpenAi {
                e.code = Some("invalid_value".into());
            }
            e
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Shared,
    provider: Provider,
    endpoint: Endpoint,
    headers: &HeaderMap,
    query: &str,
    body: &Bytes,
    ctx: ResponseCtx,
) -> Reply {
    let settings = &shared.settings[provider.index()];
    let seq = ctx.seq;
    let counted = matches!(
        endpoint,
        Endpoint::Chat
            | Endpoint::Responses
            | Endpoint::Messages
            | Endpoint::Generate { .. }
            | Endpoint::Embeddings
            | Endpoint::EmbedContent { .. }
            | Endpoint::Health
    );
    let fault = if counted {
        shared.faults[provider.index()].next()
    } else {
        None
    };
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let model = match &endpoint {
        Endpoint::Generate { model, .. }
        | Endpoint::CountGeminiTokens { model }
        | Endpoint::EmbedContent { model, .. } => model.clone(),
        _ => json
            .as_ref()
            .and_then(|v| v.get("model"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
    };

    // Faults that replace the response entirely.
    let mut stream_fault = None;
    match fault {
        None => {}
        Some(Fault::Disconnect) => return Err(Aborted),
        Some(Fault::Hang { ms }) => {
            match ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending::<()>().await,
            }
            return Err(Aborted);
        }
        Some(Fault::SlowFirstByte { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(Fault::HtmlPage { status }) => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let page = format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
            );
            return Ok(respond(
                status,
                vec![(CONTENT_TYPE, HeaderValue::from_static("text/html"))],
                SimBody::full(page),
            ));
        }
        Some(Fault::EmptyBody { status }) => {
            return Ok(respond(status, Vec::new(), SimBody::full(Bytes::new())));
        }
        Some(Fault::Status {
            status,
            error_type,
            message,
            code,
            retry,
        }) => {
            let mut err = wire::default_error(provider, status);
            if let Some(t) = error_type {
                err.error_type = Some(t);
            }
            if let Some(m) = message {
                err.message = m;
            }
            if code.is_some() {
                err.code = code;
            }
            if provider == Provider::Gemini && status == 429 {
                if let Some(d) = retry.retry_after.as_ref().and_then(retry_delay) {
                    let kind = RateLimitKind::Requests;
                    let quota = shared.quotas[provider.index()].config();
                    let figures = LimitFigures::injected(&quota, kind);
                    err = rate_limit_error(provider, kind, &model, Some(d), figures);
                }
            }
            let mut h = Vec::new();
            retry_headers(provider, &retry, &mut h);
            return Ok(error_response(provider, &err, seq, h));
        }
        Some(Fault::Overloaded { retry }) => {
            let mut h = Vec::new();
            retry_headers(provider, &retry, &mut h);
            return Ok(error_response(provider, &overload_error(provider), seq, h));
        }
        Some(Fault::RateLimited { limit, retry }) => {
            let delay = retry.retry_after.as_ref().and_then(retry_delay);
            let figures = LimitFigures::injected(&shared.quotas[provider.index()].config(), limit);
            let err = rate_limit_error(provider, limit, &model, delay, figures);
            let mut h = Vec::new();
            retry_headers(provider, &retry, &mut h);
            return Ok(error_response(provider, &err, seq, h));
        }
        Some(other) => stream_fault = Some(other),
    }

    if let Endpoint::Health = endpoint {
        return Ok(json_response(
            200,
            "application/json",
            Bytes::from_static(b"{\"status\":\"ok\"}"),
        ));
    }

    let key = match authenticate(provider, settings, headers, query, ctx.azure) {
        Ok(k) => k,
        Err(e) => return Ok(error_response(provider, &e, seq, Vec::new())),
    };
    if provider == Provider::Anthropic {
        match header(headers, "anthropic-version") {
            None => {
                let e = ApiError::new(
                    400,
                    "invalid_request_error",
                    "anthropic-version: header is required",
                );
                return Ok(error_response(provider, &e, seq, Vec::new()));
            }
            Some(v) if !anthropic::VERSIONS.contains(&v) => {
                let e = ApiError::new(
                    400,
                    "invalid_request_error",
                    format!("anthropic-version: invalid version {v:?}"),
                );
                return Ok(error_response(provider, &e, seq, Vec::new()));
            }
            Some(_) => {}
        }
    }
    let Some(json) = json else {
        let e = match provider {
            Provider::Anthropic => ApiError::new(
                400,
                "invalid_request_error",
                "There was an error parsing the body of your request as JSON.",
            ),
            Provider::Gemini => ApiError::new(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. Unexpected token.",
            ),
            p => openai::invalid_json(p),
        };
        return Ok(error_response(provider, &e, seq, Vec::new()));
    };
    let embedded = match &endpoint {
        Endpoint::Embeddings => Some(embed::openai(&json)),
        Endpoint::EmbedContent {
            model,
            batch: false,
        } => Some(embed::gemini_single(&json, model)),
        Endpoint::EmbedContent { model, batch: true } => Some(embed::gemini_batch(&json, model)),
        _ => None,
    };
    match embedded {
        Some(Ok(answer)) => {
            let mut h = vec![(
                CONTENT_TYPE,
                HeaderValue::from_static(wire::json_content_type(provider)),
            )];
            identity_headers(provider, seq, &mut h);
            return Ok(respond(200, h, SimBody::full(answer)));
        }
        Some(Err(e)) => return Ok(error_response(provider, &e, seq, Vec::new())),
        None => {}
    }
    let parsed = match &endpoint {
        Endpoint::Chat => openai::parse(provider, &json),
        Endpoint::Responses => responses::parse(&json),
        Endpoint::ResponsesInputTokens => responses::parse_input_tokens(&json),
        Endpoint::Messages => anthropic::parse(&json),
        Endpoint::CountMessageTokens => anthropic::parse_count(&json),
        Endpoint::Generate { model, stream } => gemini::parse(
            &json,
            model,
            *stream,
            query_param(query, "alt") == Some("sse"),
        ),
        Endpoint::CountGeminiTokens { model } => gemini::parse_count(&json, model),
        _ => Err(wire::default_error(provider, 404)),
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(error_response(provider, &e, seq, Vec::new())),
    };
    let is_responses = matches!(endpoint, Endpoint::Responses);
    match endpoint {
        Endpoint::ResponsesInputTokens => {
            return Ok(json_response(
                200,
                "application/json",
                responses::input_tokens(&parsed.prompt),
            ));
        }
        Endpoint::CountMessageTokens => {
            return Ok(json_response(
                200,
                "application/json",
                anthropic::count_tokens(&parsed.prompt),
            ));
        }
        Endpoint::CountGeminiTokens { .. } => {
            return Ok(json_response(
                200,
                wire::json_content_type(provider),
                gemini::count_tokens(&parsed.prompt),
            ));
        }
        _ => {}
    }
    if shared.reject_prefill[provider.index()].load(Ordering::Acquire)
        && parsed.prompt.prefill().is_some()
    {
        return Ok(error_response(
            provider,
            &prefill_error(provider),
            seq,
            Vec::new(),
        ));
    }

    if let Some(window) = settings.context_window {
        let prompt_tokens = parsed.prompt.prompt_tokens();
        if let Some(err) = context_error(provider, window, prompt_tokens, parsed.max_tokens) {
            return Ok(error_response(provider, &err, seq, Vec::new()));
        }
    }
    let mut reply = reply::generate(
        &parsed.prompt,
        shared.seeds[provider.index()].load(Ordering::Acquire),
        settings.reply_tokens,
        parsed.max_tokens,
        &settings.replies,
    );
    if stream_fault == Some(Fault::ContentFiltered) {
        let kept = reply.pieces.len() / 2;
        reply.pieces.truncate(kept);
        reply.tool_call = None;
        reply.completion_tokens = kept as u64;
        reply.finish = reply::Finish::ContentFilter;
    }
    let quota =
        shared.quotas[provider.index()].admit(&key, reply.prompt_tokens, reply.completion_tokens);
    let mut h = Vec::new();
    identity_headers(provider, seq, &mut h);
    rate_limit_headers(provider, &quota, &mut h);
    if !quota.admitted {
        let kind = if quota.refused_for_tokens {
            RateLimitKind::Tokens
        } else {
            RateLimitKind::Requests
        };
        let wait = quota.reset_in;
        let figures = match kind {
            RateLimitKind::Requests => LimitFigures {
                limit: quota.limit_requests,
                used: quota.limit_requests - quota.remaining_requests,
                requested: 1,
            },
            _ => LimitFigures {
                limit: quota.limit_tokens,
                used: quota.limit_tokens - quota.remaining_tokens,
                requested: reply.prompt_tokens + reply.completion_tokens,
            },
        };
        let err = rate_limit_error(provider, kind, &parsed.model, Some(wait), figures);
        if provider != Provider::Gemini {
            h.push((
                HeaderName::from_static("retry-after"),
                owned(wait.as_secs_f64().ceil().max(1.0).to_string()),
            ));
        }
        h.insert(
            0,
            (
                CONTENT_TYPE,
                HeaderValue::from_static(wire::json_content_type(provider)),
            ),
        );
        return Ok(respond(
            429,
            h,
            SimBody::full(wire::error_body(provider, &err, seq)),
        ));
    }

    let first = Duration::from_millis(settings.first_token_ms);
    let interval = Duration::from_millis(settings.chunk_interval_ms);
    if !parsed.stream {
        let body = match provider {
            Provider::Anthropic => anthropic::message(&ctx, &parsed, &reply),
            Provider::Gemini => gemini::generate(&ctx, &parsed, &reply),
            _ if is_responses => responses::response(&ctx, &parsed, &reply),
            _ => openai::completion(&ctx, &parsed, &reply),
        };
        let tokens = u32::try_from(reply.completion_tokens).unwrap_or(u32::MAX);
        let generation = first.saturating_add(interval.saturating_mul(tokens));
        if !generation.is_zero() {
            tokio::time::sleep(generation).await;
        }
        h.insert(
            0,
            (
                CONTENT_TYPE,
                HeaderValue::from_static(wire::json_content_type(provider)),
            ),
        );
        let body = match stream_fault {
            Some(Fault::CutAfter { .. }) => half_body(body, StreamEnd::Abort, Duration::ZERO),
            Some(Fault::EndWithoutTerminal { .. }) => {
                half_body(body, StreamEnd::Clean, Duration::ZERO)
            }
            Some(Fault::StallAfter { ms, .. }) => SimBody::stream(
                vec![TimedFrame {
                    delay: Duration::from_millis(ms),
                    bytes: body,
                }],
                StreamEnd::Clean,
            ),
            _ => SimBody::full(body),
        };
        return Ok(respond(200, h, body));
    }

    let mut parts = match provider {
        Provider::Anthropic => anthropic::stream(&ctx, &parsed, &reply),
        Provider::Gemini => gemini::stream(&ctx, &parsed, &reply),
        _ if is_responses => responses::stream(&ctx, &parsed, &reply),
        _ => openai::stream(&ctx, &parsed, &reply),
    };
    if let Some(every) = settings
        .ping_every
        .filter(|n| *n > 0 && provider != Provider::Gemini)
    {
        // Anthropic interleaves `ping` events; for OpenAI-style streams an SSE comment line,
        // which decoders must ignore.
        let ping = if provider == Provider::Anthropic {
            Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
        } else {
            Bytes::from_static(b": ping\n\n")
        };
        let mut with_pings = Vec::with_capacity(parts.events.len() * 2);
        for (i, event) in parts.events.into_iter().enumerate() {
            with_pings.push(event);
            if (i + 1) % every as usize == 0 {
                with_pings.push(ping.clone());
            }
        }
        parts.events = with_pings;
    }
    let content_type = match provider {
        Provider::Gemini if parsed.sse => "text/event-stream",
        Provider::Gemini => "application/json; charset=UTF-8",
        _ => "text/event-stream; charset=utf-8",
    };
    h.insert(0, (CONTENT_TYPE, HeaderValue::from_static(content_type)));
    let error_frame = |sent: usize| match provider {
        Provider::Anthropic => anthropic::error_frame(),
        Provider::Gemini => gemini::error_frame(&parsed, false),
        _ if is_responses => responses::error_frames(&ctx, &parsed, &reply, sent),
        p => openai::error_frame(p),
    };
    let (frames, end) = apply_stream_fault(parts, stream_fault, error_frame);
    let mut timed = Vec::with_capacity(frames.len() * 2);
    for (i, (bytes, extra)) in frames.into_iter().enumerate() {
        let delay = if i == 0 { first } else { interval }.saturating_add(extra);
        if settings.split_events && bytes.len() > 1 {
            let mid = bytes.len() / 2;
            timed.push(TimedFrame {
                delay,
                bytes: bytes.slice(..mid),
            });
            // A short pause makes the server flush the first half on its own.
            timed.push(TimedFrame {
                delay: SPLIT_PAUSE,
                bytes: bytes.slice(mid..),
            });
        } else {
            timed.push(TimedFrame { delay, bytes });
        }
    }
    Ok(respond(200, h, SimBody::stream(timed, end)))
}

fn half_body(body: Bytes, end: StreamEnd, delay: Duration) -> SimBody {
    let half = body.slice(..body.len() / 2);
    SimBody::stream(vec![TimedFrame { delay, bytes: half }], end)
}

/// Applies a stream fault to the events: frames with an extra delay each, and how to end.
fn apply_stream_fault(
    parts: StreamParts,
    fault: Option<Fault>,
    error_frame: impl Fn(usize) -> Bytes,
) -> (Vec<(Bytes, Duration)>, StreamEnd) {
    let plain = |v: Vec<Bytes>| {
        v.into_iter()
            .map(|b| (b, Duration::ZERO))
            .collect::<Vec<_>>()
    };
    let n_events = parts.events.len();
    let mut all = parts.events;
    all.extend(parts.terminal);
    match fault {
        Some(Fault::CutAfter { events }) => {
            all.truncate(events);
            (plain(all), StreamEnd::Abort)
        }
        Some(Fault::EndWithoutTerminal { events }) => {
            all.truncate(events.unwrap_or(n_events).min(n_events));
            (plain(all), StreamEnd::Clean)
        }
        Some(Fault::StallAfter { events, ms }) => {
            let mut frames = plain(all);
            let stall = Duration::from_millis(ms);
            match frames.get_mut(events) {
                Some(f) => f.1 = f.1.saturating_add(stall),
                None => frames.push((Bytes::new(), stall)),
            }
            (frames, StreamEnd::Clean)
        }
        Some(Fault::ErrorFrameAfter { events }) => {
            all.truncate(events);
            all.push(error_frame(all.len()));
            (plain(all), StreamEnd::Clean)
        }
        Some(Fault::DuplicateFirstEvent) => {
            if let Some(first) = all.first().cloned() {
                all.insert(1, first);
            }
            (plain(all), StreamEnd::Clean)
        }
        Some(Fault::MalformedChunkAfter { events }) => {
            let at = events.min(all.len());
            all.insert(at, Bytes::from_static(b"data: {\"id\":\"chatcmpl-broken\",\"choices\":[{\"delta\":{\"content\":\"unterminated\n\n"));
            (plain(all), StreamEnd::Clean)
        }
        _ => (plain(all), StreamEnd::Clean),
    }
}

fn admin_json(status: u16, v: &impl serde::Serialize) -> Response<SimBody> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    json_response(status, "application/json", Bytes::from(body))
}

fn admin_error(status: u16, message: impl Into<String>) -> Response<SimBody> {
    admin_json(status, &json!({"error": message.into()}))
}

/// `/__sim/...`: script faults and quotas, read and clear the log.
fn handle_admin(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    body: Bytes,
) -> Response<SimBody> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["log"]) => {
            let filter = query_param(query, "provider").and_then(Provider::from_name);
            let entries: Vec<LoggedRequest> = shared
                .log
                .entries()
                .into_iter()
                .filter(|e| filter.is_none() || e.provider == filter)
                .collect();
            admin_json(200, &entries)
        }
        (&Method::DELETE, ["log"]) => {
            shared.log.clear();
            respond(204, Vec::new(), SimBody::full(Bytes::new()))
        }
        (&Method::POST, ["reset"]) => {
            reset_all(shared);
            respond(204, Vec::new(), SimBody::full(Bytes::new()))
        }
        (&Method::GET, ["urls"]) => {
            let urls: serde_json::Map<String, Value> = Provider::ALL
                .iter()
                .map(|p| {
                    (
                        p.name().to_owned(),
                        json!(format!("{}{}", shared.base, p.base_path())),
                    )
                })
                .collect();
            admin_json(200, &urls)
        }
        (m, ["faults", name]) => {
            let Some(provider) = Provider::from_name(name) else {
                return admin_error(404, format!("unknown provider {name:?}"));
            };
            let slot = &shared.faults[provider.index()];
            match *m {
                Method::GET => admin_json(200, &slot.rules()),
                Method::DELETE => {
                    slot.set(Vec::new());
                    respond(204, Vec::new(), SimBody::full(Bytes::new()))
                }
                Method::PUT | Method::POST => match serde_json::from_slice::<Vec<FaultRule>>(&body)
                {
                    Ok(rules) => {
                        slot.set(rules);
                        respond(204, Vec::new(), SimBody::full(Bytes::new()))
                    }
                    Err(e) => admin_error(400, format!("invalid fault rules: {e}")),
                },
                _ => admin_error(405, "use GET, PUT or DELETE"),
            }
        }
        (m, ["quota", name]) => {
            let Some(provider) = Provider::from_name(name) else {
                return admin_error(404, format!("unknown provider {name:?}"));
            };
            let quotas = &shared.quotas[provider.index()];
            match *m {
                Method::GET => admin_json(200, &quotas.config()),
                Method::PUT | Method::POST => match serde_json::from_slice::<QuotaConfig>(&body) {
                    Ok(q) => {
                        quotas.configure(&q);
                        respond(204, Vec::new(), SimBody::full(Bytes::new()))
                    }
                    Err(e) => admin_error(400, format!("invalid quota: {e}")),
                },
                _ => admin_error(405, "use GET or PUT"),
            }
        }
        (&Method::PUT | &Method::POST, ["reject_prefill", name]) => {
            let Some(provider) = Provider::from_name(name) else {
                return admin_error(404, format!("unknown provider {name:?}"));
            };
            match serde_json::from_slice::<bool>(&body) {
                Ok(flag) => {
                    shared.reject_prefill[provider.index()].store(flag, Ordering::Release);
                    respond(204, Vec::new(), SimBody::full(Bytes::new()))
                }
                Err(e) => admin_error(400, format!("expected true or false: {e}")),
            }
        }
        (&Method::PUT | &Method::POST, ["seed", name]) => {
            let Some(provider) = Provider::from_name(name) else {
                return admin_error(404, format!("unknown provider {name:?}"));
            };
            match serde_json::from_slice::<u64>(&body) {
                Ok(seed) => {
                    shared.seeds[provider.index()].store(seed, Ordering::Release);
                    respond(204, Vec::new(), SimBody::full(Bytes::new()))
                }
                Err(e) => admin_error(400, format!("expected a number: {e}")),
            }
        }
        (&Method::PUT | &Method::POST, ["refuse_connections"]) => {
            #[derive(serde::Deserialize)]
            struct Refuse {
                ms: u64,
            }
            match serde_json::from_slice::<Refuse>(&body) {
                Ok(r) => {
                    refuse_for(shared, Duration::from_millis(r.ms));
                    respond(204, Vec::new(), SimBody::full(Bytes::new()))
                }
                Err(e) => admin_error(400, format!("expected {{\"ms\": N}}: {e}")),
            }
        }
        _ => admin_error(404, "unknown admin route"),
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

    /// A burst of connections larger than std's backlog of 128 completes its handshakes
    /// at once, even before anything is accepted (a SYN dropped on a full backlog is
    /// retried only after a second, against the 900 ms each is given).
    #[tokio::test]
    async fn a_burst_of_connections_beyond_128_is_queued_not_dropped() {
        let Some(burst) = burst() else { return };
        let listener = super::bind_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects: Vec<_> = (0..burst)
            .map(|_| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_millis(900),
                    TcpStream::connect(addr),
                ))
            })
            .collect();
        // Held open, so the queue really fills.
        let mut open = Vec::new();
        for connect in connects {
            if let Ok(Ok(Ok(stream))) = connect.await {
                open.push(stream);
            }
        }
        assert_eq!(open.len(), burst);
    }
}
