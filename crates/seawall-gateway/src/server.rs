//! The gateway: routes, upstream stacks, the accept loop and graceful shutdown.

use std::cell::Cell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_core::Stream;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue,
};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use seawall::breaker::{BreakerEvent, BreakerHandle, BreakerLayer};
use seawall::budget::{
    Budget, BudgetExceeded, BudgetUnavailable, Budgets, RequestCapExceeded, Unpriced,
};
use seawall::cache::{CacheLayer, CacheUnavailable};
use seawall::failover::{Continuation, Failover, Strategy};
use seawall::idempotency::{FirstCallFailed, IdempotencyConflict, IdempotencyUnavailable};
use seawall::metrics::{Metered, MetricsLayer};
use seawall::rate_limit::{ProviderRefill, Rate, RateLimitConfig, RateLimiter};
use seawall::retry::RetryLayer;
use seawall::stack::TargetStack;
use seawall::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use seawall_core::{
    AttemptOutcome, BoxError, BreakerState, CacheDirectives, Cause, ChatResponse, Classifier,
    ErrorKind, ErrorWithTrail, EventStream, LlmError, RejectReason, StreamEvent, TokenEstimate,
    TraceParent, Trail, TrailRecorder, Usage,
};
use seawall_providers::http::HttpClient;
use seawall_providers::{
    AnthropicConfig, ApiKey, GeminiConfig, OpenAiConfig, ServerKind, http::default_client,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower::util::Either;
use tower::{Layer, ServiceExt};
use tracing::Instrument;

use crate::access::Access;
use crate::config::{Config, ConfigError, ProviderConfig, ProviderRefillConfig, StrategyConfig};
use crate::metrics::{Metrics, Scraped, TargetCounts};
use crate::origin::Refusal;
use crate::router::{Group, GroupRouter, Groups};
use crate::spend::{AlertOut, TargetAlert, UsageReport};
use crate::state::BudgetState;
use crate::wire::{self, ChunkHead};

pub(crate) struct VirtualKey {
    pub(crate) name: Arc<str>,
    /// The key's request limit: the project's own GCRA limiter (one CAS when admitted, on
    /// tokio's clock), which never waits here. The key map is read-only after start.
    limiter: Option<RateLimiter>,
    /// Whether the key has budgets, whose remainder its replies carry.
    budgeted: bool,
}

/// Counts the requests a target's adapter sends (each retry included), under the retry
/// layer where the router's trail cannot see them.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    sent: Arc<AtomicU64>,
}

impl<S: tower_service::Service<seawall_core::ChatRequest>>
    tower_service::Service<seawall_core::ChatRequest> for Counted<S>
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: seawall_core::ChatRequest) -> S::Future {
        self.sent.fetch_add(1, Relaxed);
        self.inner.call(request)
    }
}

fn counted<S>(inner: S, sent: &Arc<AtomicU64>) -> Counted<S> {
    Counted {
        inner,
        sent: Arc::clone(sent),
    }
}

thread_local! {
    /// The index of the gateway server thread this is (0 on any other thread).
    static SERVER_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// The upstream HTTP service of every adapter: one pooled client per server thread, the
/// calling thread's own. A request served on thread `i` goes upstream through pool `i`,
/// whose connections that thread's runtime drives, so a call never crosses threads.
/// Cloned per call by the adapters: one reference count, not a client clone.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    pools: Arc<[HttpClient]>,
    /// With trace export on, each request carries its attempt span's `traceparent`.
    traced: bool,
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

pub(crate) struct TargetInfo {
    pub(crate) name: String,
    sent: Arc<AtomicU64>,
    pub(crate) breaker: BreakerHandle,
    pub(crate) limiter: Option<RateLimiter>,
}

pub(crate) struct Shared {
    groups: Arc<Groups>,
    /// Every call is counted, then goes through the budget layer to the group its model
    /// names.
    service: Metered<Budget<GroupRouter, BudgetState>>,
    pub(crate) budgets: Budgets<BudgetState>,
    report: Arc<UsageReport>,
    alerts: AlertOut,
    pub(crate) targets: Vec<TargetInfo>,
    target_index: HashMap<String, usize>,
    pub(crate) keys: HashMap<String, Arc<VirtualKey>>,
    metrics: Arc<Metrics>,
    /// Where limiters and budgets live (for `/metrics`).
    state: crate::state::State,
    /// Per-target figures and recent failovers, for the status page.
    pub(crate) board: crate::status::Board,
    max_body: usize,
    /// Trace export is on (`[telemetry]`): each chat call gets a server span.
    traced: bool,
    pub(crate) ready: AtomicBool,
    models: Bytes,
    next_id: AtomicU64,
    /// The upstream and virtual keys, to take out of any upstream text relayed to a client.
    secrets: Box<[String]>,
    /// The configured hosts and origins; what they allow is known once the listener is
    /// bound (`allowed`).
    allowed_config: (Vec<String>, Vec<String>),
    allowed: std::sync::OnceLock<crate::origin::Allowed>,
    /// What `/status` and `/metrics` ask of a caller.
    admin: Admin,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    /// One permit per open client connection.
    connections: Arc<tokio::sync::Semaphore>,
    /// One permit per chat call being handled.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Set when the shutdown grace ran out: open streams end the way a failed stream ends.
    cut_streams: watch::Sender<bool>,
    /// The limiter queue length that raises a `queue_growth` alert, if one is configured.
    queue_alert: Option<usize>,
}

/// Who may read `/status` and `/metrics`: they name every virtual key and its usage.
enum Admin {
    Open,
    Key(String),
    /// Virtual keys are configured and no admin key: closed.
    Closed,
}

impl Admin {
    /// The refusal for a caller that may not read them, if any.
    fn refuse(&self, headers: &http::HeaderMap) -> Option<Reply> {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .map(|_| v[7..].trim())
            });
        match self {
            Self::Open => None,
            Self::Key(key) if bearer.is_some_and(|given| constant_time_eq(given, key)) => None,
            Self::Key(_) => Some(error_reply(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_admin_key"),
                None,
                "this route needs the admin key: Authorization: Bearer <key>",
            )),
            Self::Closed => Some(error_reply(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                Some("admin_key_not_configured"),
                None,
                "this route lists every virtual key's usage: set server.admin_key_env to open it",
            )),
        }
    }
}

/// Compares two keys in time that depends on their lengths only.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

impl Shared {
    /// Settles which hosts and origins are answered, for a listener bound to `addr`.
    fn bound(&self, addr: SocketAddr) {
        let (hosts, origins) = &self.allowed_config;
        self.allowed
            .get_or_init(|| crate::origin::Allowed::new(hosts, origins, addr));
    }
}

/// Builds a [`Gateway`] from a [`Config`].
pub struct GatewayBuilder {
    config: Config,
    env: HashMap<String, String>,
    http: Option<HttpClient>,
    threads: Option<usize>,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values are secrets: show only which variables are supplied.
        f.debug_struct("GatewayBuilder")
            .field("config", &self.config)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Supplies the value of an environment variable named in the config (an upstream
    /// `api_key_env` or a virtual `key_env`), ahead of the process environment.
    #[must_use]
    pub fn env(mut self, variable: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(variable.into(), value.into());
        self
    }

    /// Uses `http` for every upstream instead of the default pooled clients (one per
    /// server thread). With several server threads they then share its one pool.
    #[must_use]
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// Serves on `threads` dedicated threads, each with its own single-threaded runtime
    /// and upstream connection pool, overriding the config's `server.threads`; `0` serves
    /// on the caller's runtime (the default when neither sets it).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Validates the config and builds the upstream stacks.
    pub fn build(self) -> Result<Gateway, ConfigError> {
        let GatewayBuilder {
            mut config,
            env: supplied,
            http,
            threads,
        } = self;
        let env = |name: &str| {
            supplied
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        if threads.is_some() {
            config.server.threads = threads;
        }
        let config = &config;
        config.validate(&env)?;
        let threads = config.server.threads.unwrap_or(0);
        let pools: Arc<[HttpClient]> = match http {
            Some(http) => Arc::new([http]),
            None => (0..threads.max(1))
                .map(|_| default_client())
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError {
                    key: "(http client)".into(),
                    problem: e.to_string(),
                })?,
        };
        let traced = config.telemetry.enabled();
        let http = UpstreamClient { pools, traced };
        let state = crate::state::State::new(config, &env)?;

        let prices = crate::spend::prices(config);
        let alerts = AlertOut::new(config.budget.alert_webhook.as_deref());
        let metrics = Arc::new(Metrics::new(prices.clone()));
        let alert_on_open = config.alerts.iter().any(|a| a.breaker_open);

        // One breaker and limiter per target, shared by every group that uses it.
        let mut targets = Vec::new();
        let mut stacks = HashMap::new();
        let mut secrets = Vec::new();
        for t in &config.targets {
            let secret = t.api_key_env.as_deref().and_then(&env);
            secrets.extend(secret.clone());
            let key = secret.map(ApiKey::new);
            let limited = t.requests_per_minute.is_some() || t.tokens_per_minute.is_some();
            let breaker = {
                // With a limiter following the provider's reports, the limiter holds the
                // target until a reset, and calls that can wait queue for it.
                let mut b = BreakerLayer::builder(t.name.as_str())
                    .capacity_cooldown(!(limited || t.follow_provider_headers));
                if let Some(n) = t.breaker_failures {
                    b = b.consecutive_failures(n);
                }
                if let Some(cooldown) = t.breaker_cooldown {
                    b = b.break_duration(cooldown, cooldown * 8);
                }
                let calls = Arc::clone(&metrics.calls);
                let alerts = alerts.clone();
                b.on_event(move |event| {
                    calls.breaker_event(event);
                    if let BreakerEvent::Transition {
                        target,
                        to: BreakerState::Open,
                        open_for,
                        ..
                    } = event
                        && alert_on_open
                    {
                        alerts.target(target.as_str(), TargetAlert::BreakerOpen(*open_for));
                    }
                })
                .build()
            };
            state.share_breaker(&breaker.handle());
            metrics.calls.watch_breaker(breaker.handle());
            let limiter = (limited || t.follow_provider_headers).then(|| {
                let per = t.limit_period.unwrap_or(Duration::from_secs(60));
                let mut c = RateLimitConfig::new().provider_refill(match t.provider_refill {
                    ProviderRefillConfig::UntilReset => ProviderRefill::UntilReset,
                    ProviderRefillConfig::Continuous => ProviderRefill::Continuous,
                });
                if let Some(rpm) = t.requests_per_minute {
                    c = c.requests(Rate::new(rpm, per));
                }
                if let Some(tpm) = t.tokens_per_minute {
                    c = c.tokens(Rate::new(tpm, per));
                }
                if let Some(wait) = t.max_wait {
                    c = c.max_wait(wait);
                }
                if let Some(capacity) = t.queue_capacity {
                    c = c.queue_capacity(capacity);
                }
                if let Some(tokens) = t.default_output_tokens {
                    c = c.default_output_tokens(tokens);
                }
                state.limiter(t.name.as_str(), c)
            });
            if let Some(limiter) = &limiter {
                metrics.calls.watch_limiter(limiter.clone());
            }
            let mut retry = RetryLayer::new();
            if let Some(n) = t.max_attempts {
                retry = retry.max_attempts(n);
            }
            if let Some(wait) = t.max_server_wait {
                retry = retry.max_server_wait(wait);
            }
            let timeout = match (t.attempt_timeout, t.first_token_timeout, t.idle_timeout) {
                (None, None, None) => None,
                (attempt, first, idle) => {
                    let mut l = match attempt {
                        Some(a) => AttemptTimeoutLayer::new(a),
                        None => AttemptTimeoutLayer::streams_only(),
                    };
                    if let Some(f) = first {
                        l = l.first_token(f);
                    }
                    if let Some(i) = idle {
                        l = l.idle(i);
                    }
                    Some(l)
                }
            };
            let mut stack = TargetStack::new(t.name.as_str())
                .retry(retry)
                .breaker(breaker.clone());
            if let Some(l) = &limiter {
                stack = stack.rate_limit(l.clone());
            }
            if let Some(l) = timeout {
                stack = stack.attempt_timeout(l);
            }
            let sent = Arc::new(AtomicU64::new(0));
            targets.push(TargetInfo {
                name: t.name.clone(),
                sent: Arc::clone(&sent),
                breaker: breaker.handle(),
                limiter,
            });
            stacks.insert(t.name.clone(), (stack, t, key, sent));
        }

        let build_target = |name: &str, pass_through: bool| {
            let (stack, t, key, sent) = &stacks[name];
            let stack = stack.clone();
            let http = http.clone();

            let guarded = match t.provider {
                ProviderConfig::Openai | ProviderConfig::OpenaiCompatible => {
                    let mut c = match (t.provider, key) {
                        (ProviderConfig::Openai, Some(key)) => OpenAiConfig::new(key.clone()),
                        _ => OpenAiConfig::compatible(
                            t.base_url.clone().unwrap_or_default(),
                            ServerKind::Other,
                        ),
                    };
                    if let Some(url) = &t.base_url {
                        c = c.with_base_url(url.clone());
                    }
                    if let (Some(key), ProviderConfig::OpenaiCompatible) = (key, t.provider) {
                        c = c.with_api_key(key.clone());
                    }
                    c = c.with_idempotency_key_forwarding(t.forward_idempotency_key);
                    stack.build(counted(seawall_providers::OpenAi::new(http, c), sent))
                }
                ProviderConfig::Anthropic => {
                    let key = key.clone().unwrap_or_else(|| ApiKey::new(""));
                    let mut c = AnthropicConfig::new(key);
                    if let Some(url) = &t.base_url {
                        c = c.with_base_url(url.clone());
                    }
                    stack.build(counted(seawall_providers::Anthropic::new(http, c), sent))
                }
                ProviderConfig::Gemini => {
                    let key = key.clone().unwrap_or_else(|| ApiKey::new(""));
                    let mut c = GeminiConfig::new(key);
                    if let Some(url) = &t.base_url {
                        c = c.with_base_url(url.clone());
                    }
                    stack.build(counted(seawall_providers::Gemini::new(http, c), sent))
                }
            };
            let mut target = guarded.target.weight(t.weight).provider(t.provider.kind());
            if let Some(accepts) = t.accepts_prefill {
                target = target.accepts_prefill(accepts);
            }
            if let Some(continuation) = t.continuation {
                target = target.continuation(match continuation {
                    crate::config::ContinuationConfig::Prefill => Continuation::Prefill,
                    crate::config::ContinuationConfig::UserMessage => Continuation::UserMessage,
                    crate::config::ContinuationConfig::Restart => Continuation::Restart,
                });
            }
            if !pass_through {
                target = target.model(t.model.as_str());
            }
            if let Some(window) = t.context_window {
                target = target.context_window(window);
            }
            target
        };

        // One store each, shared by every group (the model name is part of a cache key);
        // in Redis, shared by every replica, with `[state]`.
        let cache = config.cache.as_ref().map(|c| {
            let mut builder = CacheLayer::builder(c.ttl).max_bytes(c.max_bytes);
            if let Some(stale) = c.stale_if_error {
                builder = builder.stale_if_error(stale);
            }
            if let Some(store) = state.cache_store() {
                builder = builder.store(store);
            }
            builder.build()
        });
        let idempotency = config
            .idempotency
            .as_ref()
            .map(|c| state.idempotency(c.ttl));
        #[cfg(feature = "semantic-cache")]
        let semantic = crate::semantic::layer(config, &env, http.clone())?;
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        let mut model_names = Vec::new();
        for g in &config.groups {
            let pattern = g.prefix().is_some();
            let classifier = Classifier::builtin(g.content_filter.policy());
            let mut failover = Failover::builder()
                .classifier(classifier.clone())
                .strategy(match g.strategy {
                    StrategyConfig::Priority => Strategy::Priority,
                    StrategyConfig::Weighted => Strategy::Weighted,
                    StrategyConfig::LeastLatency => Strategy::LeastLatency,
                });
            for (i, name) in g.targets.iter().enumerate() {
                failover = failover.target(build_target(name, pattern && i == 0));
            }
            if let Some(hedge) = &g.hedge {
                failover = failover.hedge(hedge.policy());
            }
            let router = failover.build();
            #[cfg(feature = "semantic-cache")]
            let router = crate::semantic::route(semantic.as_ref(), router);
            let cached = match &cache {
                Some(cache) => Either::Left(cache.layer(router)),
                None => Either::Right(router),
            };
            let keyed = match &idempotency {
                Some(idempotency) => Either::Left(idempotency.layer(cached)),
                None => Either::Right(cached),
            };
            let service = Group {
                service: DeadlineLayer::new(g.timeout).layer(keyed),
                classifier,
            };
            match g.prefix() {
                Some(prefix) => patterns.push((prefix.to_owned(), service)),
                None => {
                    exact.insert(g.name.clone(), service);
                }
            }
            model_names.push(g.name.clone());
        }
        // Longest prefix first, so `team-a-*` wins over `team-*`.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        let groups = Arc::new(Groups { exact, patterns });
        let report = Arc::new(UsageReport::new(
            config
                .budget
                .utc_offset
                .as_deref()
                .and_then(crate::spend::config::parse_utc_offset)
                .unwrap_or(0),
        ));
        let budgets = crate::spend::layer(
            config,
            prices,
            &alerts,
            Arc::clone(&report),
            state.budgets(),
        );

        let mut keys = HashMap::new();
        for k in &config.keys {
            let secret = env(&k.key_env).unwrap_or_default();
            let limiter = k.requests_per_minute.filter(|rpm| *rpm > 0).map(|rpm| {
                state.limiter(
                    &format!("key {}", k.name),
                    RateLimitConfig::new()
                        .requests(Rate::per_minute(u64::from(rpm)))
                        .default_output_tokens(0)
                        .max_wait(Duration::ZERO),
                )
            });
            secrets.push(secret.clone());
            keys.insert(
                secret,
                Arc::new(VirtualKey {
                    name: Arc::from(k.name.as_str()),
                    limiter,
                    budgeted: k.token_budget.is_some() || !k.budgets.is_empty(),
                }),
            );
        }

        let models = json!({
            "object": "list",
            "data": model_names.iter().map(|name| json!({
                "id": name, "object": "model", "created": 0, "owned_by": "seawall-gateway",
            })).collect::<Vec<_>>(),
        });
        let target_names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let target_index = target_names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let admin = match config.server.admin_key_env.as_deref().and_then(&env) {
            Some(key) => Admin::Key(key),
            None if config.keys.is_empty() => Admin::Open,
            None => Admin::Closed,
        };
        Ok(Gateway {
            shared: Arc::new(Shared {
                secrets: {
                    if let Admin::Key(key) = &admin {
                        secrets.push(key.clone());
                    }
                    secrets.into_boxed_slice()
                },
                allowed_config: (
                    config.server.allowed_hosts.clone(),
                    config.server.allowed_origins.clone(),
                ),
                allowed: std::sync::OnceLock::new(),
                admin,
                header_read_timeout: config.server.header_read_timeout,
                body_read_timeout: config.server.body_read_timeout,
                connections: Arc::new(tokio::sync::Semaphore::new(
                    config.server.max_connections.max(1),
                )),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    config.server.max_in_flight.max(1),
                )),
                cut_streams: watch::Sender::new(false),
                queue_alert: config.alerts.iter().find_map(|a| a.queue_length),
                service: MetricsLayer::new(Arc::clone(&metrics.calls)).layer(Budget::new(
                    GroupRouter(Arc::clone(&groups)),
                    budgets.budgets().clone(),
                )),
                budgets: budgets.budgets().clone(),
                groups,
                report,
                alerts,
                targets,
                target_index,
                keys,
                metrics,
                state,
                board: crate::status::Board::new(&target_names),
                max_body: config.server.max_body_bytes,
                traced,
                ready: AtomicBool::new(true),
                models: Bytes::from(serde_json::to_vec(&models).unwrap_or_default()),
                next_id: AtomicU64::new(1),
            }),
            listen: config.server.listen,
            grace: config.server.shutdown_grace,
            threads,
        })
    }
}

/// An OpenAI-compatible gateway, ready to serve.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use seawall_gateway::{Config, Gateway};
///
/// let config = Config::from_toml(&std::fs::read_to_string("gateway.toml")?)?;
/// let handle = Gateway::builder(config).build()?.serve().await?;
/// println!("listening on http://{}", handle.local_addr());
/// handle.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Gateway {
    shared: Arc<Shared>,
    listen: SocketAddr,
    grace: Duration,
    /// Dedicated server threads; 0 serves on the caller's runtime.
    threads: usize,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.listen)
            .field(
                "targets",
                &self
                    .shared
                    .targets
                    .iter()
                    .map(|t| &t.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A builder over `config`.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            env: HashMap::new(),
            http: None,
            threads: None,
        }
    }

    /// Overrides the configured listen address.
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Overrides the configured shutdown grace period.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Binds the listen address and starts serving: on the configured number of dedicated
    /// server threads (`server.threads`, [`GatewayBuilder::threads`]), or, with none, on
    /// the current runtime.
    pub async fn serve(self) -> std::io::Result<GatewayHandle> {
        self.shared.alerts.start(default_client()?);
        if let Some(threshold) = self.shared.queue_alert {
            tokio::spawn(watch_queues(Arc::downgrade(&self.shared), threshold));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        if self.threads == 0 {
            let listener = listen(self.listen)?;
            let addr = listener.local_addr()?;
            self.shared.bound(addr);
            let task = tokio::spawn(accept_loop(
                listener,
                Arc::clone(&self.shared),
                stop_rx,
                self.grace,
            ));
            return Ok(GatewayHandle {
                addr,
                shared: self.shared,
                stop: stop_tx,
                serving: Serving::Task(task),
            });
        }

        // One socket, shared by the threads' runtimes.
        let listener = listen(self.listen)?.into_std()?;
        let addr = listener.local_addr()?;
        self.shared.bound(addr);
        // Each thread holds a sender; the channel closes when the last thread is done.
        let (done_tx, done_rx) = mpsc::channel::<()>(1);
        let mut threads = Vec::with_capacity(self.threads);
        for index in 0..self.threads {
            let listener = listener.try_clone()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let shared = Arc::clone(&self.shared);
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
            shared: self.shared,
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
enum Serving {
    /// One task on the caller's runtime.
    Task(JoinHandle<()>),
    /// Dedicated threads, each with its own runtime; `done_rx` closes when all are done.
    Threads {
        threads: Vec<std::thread::JoinHandle<()>>,
        done_rx: mpsc::Receiver<()>,
    },
}

/// A running gateway. Dropping it stops accepting and lets in-flight requests finish
/// within the grace period, as [`shutdown`](GatewayHandle::shutdown) does, without
/// waiting for them.
pub struct GatewayHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    serving: Serving,
}

impl fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl GatewayHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests and streams finish for up to the grace
    /// period, then closes what is left. `/readyz` answers 503 from the start of the drain.
    pub async fn shutdown(self) {
        self.shared.ready.store(false, Relaxed);
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
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
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
        let shared = Arc::clone(&shared);
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let header_read_timeout = shared.header_read_timeout;
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            // A client that sends no (or a trickle of) headers, on a new connection or an
            // idle kept-alive one, is closed after the header read timeout.
            let connection = http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    // Finish the response in flight (a stream included), then close.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Open streams end with an in-band error event; their connections then close.
        shared.cut_streams.send_replace(true);
        let ended = tokio::time::timeout(Duration::from_secs(1), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if ended.is_err() {
            connections.shutdown().await;
        }
    }
}

/// A response body: a complete buffer or a relayed stream.
pub struct GatewayBody(BodyKind);

enum BodyKind {
    Full(Option<Bytes>),
    Sse(Box<SseRelay>),
}

impl fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BodyKind::Full(_) => f.write_str("GatewayBody::Full"),
            BodyKind::Sse(_) => f.write_str("GatewayBody::Sse"),
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            BodyKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Sse(relay) => relay.poll_frame(cx).map(|f| f.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.0, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            BodyKind::Full(None) => SizeHint::with_exact(0),
            BodyKind::Sse(_) => SizeHint::default(),
        }
    }
}

/// Relays a [`StreamEvent`] stream as OpenAI SSE chunks. Dropping it (the client went
/// away) drops the upstream stream, which cancels the upstream call.
struct SseRelay {
    stream: Option<EventStream>,
    head: ChunkHead,
    include_usage: bool,
    usage: Option<Usage>,
    finished: bool,
    first_content: bool,
    started: tokio::time::Instant,
    shared: Arc<Shared>,
    /// The call's trail: its cost, once the stream has settled.
    trail: TrailRecorder,
    role_sent: bool,
    /// The call's in-flight permit, held until the stream ends.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Resolves when the shutdown grace runs out.
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The call's access line, written when the stream ends.
    access: Option<Box<Access>>,
    /// The call's server span (trace export on), ended with the stream.
    span: tracing::Span,
}

impl SseRelay {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        // The request span (trace export on) covers the relay: it ends with the stream.
        let _span = self.span.clone().entered();
        let mut out = Vec::new();
        if !self.role_sent {
            self.role_sent = true;
            self.head.role(&mut out);
        }
        if self.stream.is_some() && self.cut.as_mut().poll(cx).is_ready() {
            // The shutdown grace ran out: end as every failed stream ends, not with a bare
            // close the client could take for a whole answer.
            let error = LlmError::new(
                ErrorKind::Server,
                "the gateway shut down before the answer was complete",
            );
            self.fail(&mut out, &error);
            return Poll::Ready(Some(out.into()));
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(stream).poll_next(cx) {
                Poll::Pending => {
                    return if out.is_empty() {
                        Poll::Pending
                    } else {
                        Poll::Ready(Some(out.into()))
                    };
                }
                Poll::Ready(Some(event)) => {
                    match event {
                        // After a mid-stream recovery the chunks name the model that
                        // answers them.
                        StreamEvent::Start {
                            model: Some(model), ..
                        } if !model.is_empty() => self.head.model = model,
                        StreamEvent::Start { .. } => {}
                        StreamEvent::TextDelta(text) => {
                            self.first_content();
                            self.head.text(&mut out, &text);
                        }
                        StreamEvent::ToolCallDelta {
                            index,
                            id,
                            name,
                            arguments,
                        } => {
                            self.first_content();
                            self.head.tool_call(
                                &mut out,
                                index,
                                id.as_deref(),
                                name.as_deref(),
                                &arguments,
                            );
                        }
                        StreamEvent::Usage(usage) => self.usage = Some(usage),
                        StreamEvent::Finish(reason) => {
                            self.finished = true;
                            self.head.finish(&mut out, &reason);
                        }
                        StreamEvent::Error(error) => {
                            self.fail(&mut out, &error);
                            return Poll::Ready(Some(out.into()));
                        }
                        // An event this relay does not know carries nothing for the client.
                        _ => {}
                    }
                    // Relay what we have at once: streams are read as they arrive.
                    if !out.is_empty() {
                        return Poll::Ready(Some(out.into()));
                    }
                }
                Poll::Ready(None) => {
                    if self.finished {
                        if let (true, Some(usage)) = (self.include_usage, &self.usage) {
                            // The budget layer settled the call as the stream ended.
                            let cost = self.trail.update(|trail| trail.cost);
                            self.head.usage(&mut out, usage, cost);
                        }
                        wire::done(&mut out);
                        self.end();
                    } else {
                        let error = LlmError::new(
                            ErrorKind::StreamTruncated,
                            "the upstream stream ended before the end of the message",
                        );
                        self.fail(&mut out, &error);
                    }
                    return Poll::Ready(Some(out.into()));
                }
            }
        }
    }

    fn first_content(&mut self) {
        if !self.first_content {
            self.first_content = true;
            let ttft = self.started.elapsed();
            self.shared.metrics.ttft.observe(ttft.as_secs_f64());
            if let Some(access) = &mut self.access {
                access.ttft = Some(ttft);
            }
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, error: &LlmError) {
        let message = crate::redact::redact(error.message(), &self.shared.secrets);
        wire::stream_error(out, &message, error.kind());
        self.shared.metrics.stream_errors.inc();
        if let Some(access) = &mut self.access {
            access.error = Some(error.kind().as_str().to_owned());
        }
        self.end();
    }

    /// Ends the relay. Dropping the stream settles the call's budget, and with it the usage
    /// report and the cost metrics (for a stream the client abandoned, with what the
    /// provider produced).
    fn end(&mut self) {
        self.stream = None;
        self.usage = None;
    }
}

impl Drop for SseRelay {
    fn drop(&mut self) {
        let latency = self.started.elapsed();
        self.shared.metrics.latency.observe(latency.as_secs_f64());
        if self.stream.is_some()
            && let Some(access) = &mut self.access
        {
            access.error = Some("client_disconnected".to_owned());
        }
        // The client went away mid-stream: charged for what was produced.
        self.end();
        if let Some(access) = &mut self.access {
            // Settled when the stream was dropped: the trail has the tokens and the cost.
            access.follow(&self.trail.snapshot());
            access.log("/v1/chat/completions", 200, latency);
        }
    }
}

type Reply = Response<GatewayBody>;

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(GatewayBody(BodyKind::Full(Some(body.into()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    full(status, "application/json", body)
}

fn error_reply(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Reply {
    let body = wire::error_body(message, kind, param, code);
    json_reply(status, serde_json::to_vec(&body).unwrap_or_default())
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    if let Some(allowed) = shared.allowed.get()
        && let Err(refusal) = allowed.check(request.headers())
    {
        let (status, code, message) = match refusal {
            Refusal::Host => (
                StatusCode::BAD_REQUEST,
                "invalid_host",
                "a request names exactly one Host",
            ),
            Refusal::ForeignHost => (
                StatusCode::FORBIDDEN,
                "forbidden_host",
                "this gateway does not answer to that Host (see server.allowed_hosts)",
            ),
            Refusal::ForeignOrigin => (
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "calls from that Origin are not allowed (see server.allowed_origins)",
            ),
        };
        return Ok(error_reply(
            status,
            "invalid_request_error",
            Some(code),
            None,
            message,
        ));
    }
    if request.method() == Method::GET
        && matches!(
            request.uri().path(),
            "/metrics" | "/status.json" | "/admin/usage"
        )
        && let Some(refused) = shared.admin.refuse(request.headers())
    {
        return Ok(refused);
    }
    let reply = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => {
            let started = tokio::time::Instant::now();
            // Boxed: hyper keeps a slot the size of this future for each connection's
            // whole life, and the call's state (the stack's futures, ~2.7 KB) is needed
            // only until the response head; open streams and idle keep-alive connections
            // then hold a pointer, not the state.
            // Beyond the bound, a call is refused before its body is read: the bodies in
            // memory are bounded by max_in_flight × max_body_bytes.
            let Ok(permit) = Arc::clone(&shared.in_flight).try_acquire_owned() else {
                shared.metrics.request(503);
                let mut reply = error_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    Some("overloaded"),
                    None,
                    "the gateway is at its limit of calls in flight; retry shortly",
                );
                reply
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
                return Ok(reply);
            };
            let mut access = Access::wanted().then(Box::<Access>::default);
            let span = if shared.traced {
                crate::telemetry::server_span(request.headers())
            } else {
                tracing::Span::none()
            };
            let reply = Box::pin(
                chat(&shared, request, started, access.as_deref_mut()).instrument(span.clone()),
            )
            .await;
            crate::telemetry::record_status(&span, reply.status().as_u16());
            // A stream holds its permit until the relay ends, and writes its access line
            // then.
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
                    access.log("/v1/chat/completions", reply.status().as_u16(), latency);
                }
            }
            shared.metrics.request(reply.status().as_u16());
            return Ok(reply);
        }
        (&Method::GET, "/v1/models") => json_reply(StatusCode::OK, shared.models.clone()),
        (&Method::GET, "/healthz") => full(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => {
            if shared.ready.load(Relaxed) {
                full(StatusCode::OK, "text/plain", "ready\n")
            } else {
                full(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
            }
        }
        (&Method::GET, "/metrics" | "/status.json" | "/admin/usage")
            if let Some(refused) = shared.admin.refuse(request.headers()) =>
        {
            refused
        }
        (&Method::GET, "/metrics") => full(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render_metrics(&shared),
        ),
        // The page holds no data: it reads /status.json with the admin key it is given.
        (&Method::GET, "/status") => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::status::PAGE,
        ),
        (&Method::GET, "/status.json") => json_reply(StatusCode::OK, crate::status::json(&shared)),
        (&Method::GET, "/admin/usage") => json_reply(
            StatusCode::OK,
            serde_json::to_vec(&shared.report.to_json()).unwrap_or_default(),
        ),
        (
            _,
            "/v1/chat/completions"
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
    };
    Ok(reply)
}

/// Every second, raises a `queue_growth` alert for each target whose limiter queue reached
/// `threshold` calls; once per crossing: raised again only after the queue fell below half
/// of it. Ends with the gateway.
async fn watch_queues(shared: std::sync::Weak<Shared>, threshold: usize) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut raised = Vec::new();
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn chat(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    started: tokio::time::Instant,
    mut access: Option<&mut Access>,
) -> Reply {
    // Who is calling.
    let key = if shared.keys.is_empty() {
        None
    } else {
        let bearer = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| {
                v.get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .map(|_| &v[7..])
            });
        let Some(bearer) = bearer else {
            return error_reply(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("missing_api_key"),
                None,
                "missing API key: send Authorization: Bearer <key>",
            );
        };
        let Some(key) = shared.keys.get(bearer.trim()) else {
            return error_reply(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                None,
                "invalid API key",
            );
        };
        if let Some(limiter) = &key.limiter
            && let Err(refused) = limiter.acquire_now(&TokenEstimate::default()).await
        {
            if refused.reason == RejectReason::StateUnavailable {
                return state_unavailable();
            }
            shared.metrics.inbound_rejected.inc();
            let wait = refused.wait().unwrap_or(Duration::from_secs(1));
            let mut reply = error_reply(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some("rate_limit_exceeded"),
                None,
                &format!("request limit of key {:?} reached", key.name),
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            reply
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs.max(1)));
            return reply;
        }
        Some(Arc::clone(key))
    };

    // A chat call is JSON: a cross-site page cannot send that without the browser asking.
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return error_reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            Some("unsupported_media_type"),
            None,
            "send the request body as Content-Type: application/json",
        );
    }

    // What the caller asks of the cache and the idempotency layer.
    let cache_directives = request
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(CacheDirectives::from_header);
    let idempotency_key = match request.headers().get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str() {
            Ok(key)
                if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(Arc::<str>::from(key))
            }
            _ => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("invalid_idempotency_key"),
                    None,
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                );
            }
        },
    };

    // The caller's W3C trace context, sent on to the provider; one that is not valid is
    // dropped (a receiver restarts the trace then).
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);

    // The body, bounded.
    let too_large = || {
        error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            None,
            &format!("request body larger than {} bytes", shared.max_body),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body as u64) {
        return too_large();
    }
    let read = tokio::time::timeout(
        shared.body_read_timeout,
        Limited::new(request.into_body(), shared.max_body).collect(),
    )
    .await;
    let Ok(read) = read else {
        return error_reply(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            Some("body_read_timeout"),
            None,
            "the request body did not arrive in time",
        );
    };
    let body = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                None,
                &format!("could not read the request body: {e}"),
            );
        }
    };
    let inbound = match wire::decode_request(&body) {
        Ok(inbound) => inbound,
        Err(bad) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                bad.param.as_deref(),
                &bad.message,
            );
        }
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
        access.requested = Some(prefix(&inbound.request.model, 128).to_owned());
        access.stream = inbound.request.stream;
    }

    // Which group.
    let model = &*inbound.request.model;
    let Some(group) = shared.groups.find(model) else {
        return error_reply(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            Some("model"),
            &format!(
                "the model `{}` does not exist",
                // Named back only in part: the client sent it, and it may be huge.
                prefix(model, 128)
            ),
        );
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
            let id = format!("chatcmpl-sw{:x}", shared.next_id.fetch_add(1, Relaxed));
            let answered = answering_model(&response, &requested);
            if let Some(access) = access {
                access.answered = Some(answered.clone());
                access.follow(&response.trail);
            }
            if stream {
                let mut response = response;
                let relay = SseRelay {
                    stream: response.stream.take(),
                    head: ChunkHead {
                        id,
                        model: answered.clone(),
                        created: unix_now(),
                    },
                    include_usage: inbound.include_usage,
                    usage: None,
                    finished: false,
                    first_content: false,
                    started,
                    shared: Arc::clone(shared),
                    trail: trail.unwrap_or_default(),
                    role_sent: false,
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
                let body = wire::encode_response(&response, &id, &answered, unix_now());
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

/// The `error.code` (or, without one, `error.type`) of an error reply's body.
fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    error
        .get("code")
        .and_then(serde_json::Value::as_str)
        .or_else(|| error.get("type").and_then(serde_json::Value::as_str))
        .map(str::to_owned)
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The model that answered: the provider's own name for it when it gave one, else the
/// name the gateway sent to the answering target.
fn answering_model(response: &ChatResponse, requested: &str) -> String {
    if !response.model.is_empty() {
        return response.model.clone();
    }
    match &response.trail.final_model {
        Some(model) if !model.is_empty() => model.clone(),
        _ => requested.to_owned(),
    }
}

// Header names written on every reply, parsed once.
static X_SEAWALL_ATTEMPTS: HeaderName = HeaderName::from_static("x-seawall-attempts");
static X_SEAWALL_TARGET: HeaderName = HeaderName::from_static("x-seawall-target");
static X_SEAWALL_MODEL: HeaderName = HeaderName::from_static("x-seawall-model");
static X_SEAWALL_CACHE: HeaderName = HeaderName::from_static("x-seawall-cache");
static X_SEAWALL_DOWNGRADED_FROM: HeaderName = HeaderName::from_static("x-seawall-downgraded-from");
static X_SEAWALL_COST: HeaderName = HeaderName::from_static("x-seawall-cost-usd");
static X_SEAWALL_BUDGET_USD: HeaderName = HeaderName::from_static("x-seawall-budget-remaining-usd");
static X_SEAWALL_BUDGET_TOKENS: HeaderName =
    HeaderName::from_static("x-seawall-budget-remaining-tokens");
static X_SEAWALL_BUDGET_RESET: HeaderName = HeaderName::from_static("x-seawall-budget-reset");

/// The call's cost in dollars, or `unknown` when its model has no price.
fn cost_header(cost: Option<seawall_core::Cost>) -> HeaderValue {
    match cost {
        Some(cost) => HeaderValue::from_str(&format!("{:.9}", cost.usd()))
            .unwrap_or(HeaderValue::from_static("unknown")),
        None => HeaderValue::from_static("unknown"),
    }
}

/// What the key's tightest budgets have left (in dollars and in tokens, when it has such
/// budgets), and when the tightest resets (seconds since the epoch).
fn budget_headers(shared: &Shared, key: Option<&VirtualKey>, headers: &mut http::HeaderMap) {
    let Some(key) = key.filter(|key| key.budgeted) else {
        return;
    };
    let left = crate::spend::remaining(&shared.budgets, &key.name);
    let mut reset = None;
    if let Some((usd, resets)) = left.usd {
        if let Ok(value) = HeaderValue::from_str(&format!("{:.9}", usd.usd())) {
            headers.insert(&X_SEAWALL_BUDGET_USD, value);
        }
        reset = resets;
    }
    if let Some((tokens, resets)) = left.tokens {
        headers.insert(&X_SEAWALL_BUDGET_TOKENS, HeaderValue::from(tokens));
        reset = match (reset, resets) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if let Some(at) = reset.and_then(|at| at.duration_since(UNIX_EPOCH).ok()) {
        headers.insert(&X_SEAWALL_BUDGET_RESET, HeaderValue::from(at.as_secs()));
    }
}

fn trail_headers(headers: &mut http::HeaderMap, trail: &Trail, model: &str) {
    headers.insert(
        &X_SEAWALL_ATTEMPTS,
        HeaderValue::from(trail.sent_attempts() as u64),
    );
    if let Some(target) = &trail.final_target
        && let Ok(value) = HeaderValue::from_str(target.as_str())
    {
        headers.insert(&X_SEAWALL_TARGET, value);
    }
    if let Ok(value) = HeaderValue::from_str(model) {
        headers.insert(&X_SEAWALL_MODEL, value);
    }
    if let Some(status) = trail.cache {
        headers.insert(&X_SEAWALL_CACHE, HeaderValue::from_static(status.as_str()));
    }
    if let Some(downgrade) = &trail.downgrade
        && let Ok(value) = HeaderValue::from_str(&downgrade.from)
    {
        headers.insert(&X_SEAWALL_DOWNGRADED_FROM, value);
    }
}

/// The reply to a call refused because the shared state (Redis) cannot be reached and
/// `[state] on_redis_down = "fail_closed"`: nothing was sent upstream.
fn state_unavailable() -> Reply {
    let mut reply = error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        Some("state_unavailable"),
        None,
        "the gateway's shared state is unavailable; nothing was sent upstream",
    );
    reply
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    reply
}

/// The reply to a call the budget layer refused before sending it: 429 for a spent budget
/// (with `retry-after` until its window resets, and no SDK retry before that), 400 for a
/// request above a per-request cap or for a model without a price.
fn spend_refusal(shared: &Shared, error: &BoxError) -> Option<Reply> {
    if seawall_core::find_error::<BudgetUnavailable>(&**error).is_some()
        || seawall_core::find_error::<CacheUnavailable>(&**error).is_some()
        || seawall_core::find_error::<IdempotencyUnavailable>(&**error).is_some()
    {
        return Some(state_unavailable());
    }
    if let Some(exceeded) = seawall_core::find_error::<BudgetExceeded>(&**error) {
        shared.metrics.inbound_rejected.inc();
        let mut reply = error_reply(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("budget_exceeded"),
            None,
            &exceeded.to_string(),
        );
        let headers = reply.headers_mut();
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
        if let Some(wait) = exceeded.retry_after(SystemTime::now()) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert("retry-after", HeaderValue::from(secs.max(1)));
        }
        return Some(reply);
    }
    if let Some(cap) = seawall_core::find_error::<RequestCapExceeded>(&**error) {
        return Some(error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("request_cap_exceeded"),
            cap.param(),
            &cap.to_string(),
        ));
    }
    if let Some(unpriced) = seawall_core::find_error::<Unpriced>(&**error) {
        return Some(error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("model_not_priced"),
            Some("model"),
            &format!(
                "the gateway has no price for model {:?}, and this key's spending is limited; \
                 ask its operator to add one under [prices]",
                prefix(&unpriced.model, 128)
            ),
        ));
    }
    None
}

/// Maps an upstream failure to an OpenAI-shaped error through the group's classifier.
fn upstream_error(shared: &Shared, classifier: &Classifier, error: &BoxError) -> Reply {
    if let Some(conflict) = seawall_core::find_error::<IdempotencyConflict>(&**error) {
        return error_reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            Some("idempotency_key_conflict"),
            None,
            &conflict.to_string(),
        );
    }
    if let Some(failed) = seawall_core::find_error::<FirstCallFailed>(&**error) {
        return error_reply(
            StatusCode::CONFLICT,
            "invalid_request_error",
            Some("idempotent_call_failed"),
            None,
            &failed.to_string(),
        );
    }
    let trail = ErrorWithTrail::find(&**error).map(ErrorWithTrail::trail);
    let classification = classifier.classify(&**error);
    let (status, kind, code) = match classification.cause {
        Cause::InvalidRequest => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
        ),
        Cause::Provider(kind) => match kind {
            ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::RequestTooLarge => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                kind.as_str(),
            ),
            ErrorKind::ContentFiltered => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                kind.as_str(),
            ),
            ErrorKind::RateLimited | ErrorKind::QuotaExhausted => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                kind.as_str(),
            ),
            ErrorKind::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                kind.as_str(),
            ),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "server_error", kind.as_str()),
            _ => (StatusCode::BAD_GATEWAY, "server_error", kind.as_str()),
        },
        Cause::CircuitOpen | Cause::RateLimitRejected => (
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            classification.cause.as_str(),
        ),
        Cause::TimedOut(_) | Cause::DeadlineExceeded => (
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            classification.cause.as_str(),
        ),
        Cause::AllTargetsFailed => all_failed_status(trail),
        _ => (
            StatusCode::BAD_GATEWAY,
            "server_error",
            classification.cause.as_str(),
        ),
    };
    let mut message = error.to_string();
    if let Some(trail) = trail
        && classification.cause != Cause::AllTargetsFailed
        && !trail.attempts.is_empty()
    {
        message.push_str(" (attempts: ");
        for (i, attempt) in trail.attempts.iter().enumerate() {
            if i > 0 {
                message.push_str("; ");
            }
            message.push_str(&attempt.to_string());
        }
        message.push(')');
    }
    // Upstream text may echo credentials: none reaches the client.
    let message = crate::redact::redact(&message, &shared.secrets);
    let mut reply = error_reply(status, kind, Some(code), None, &message);
    let headers = reply.headers_mut();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // The gateway already retried and failed over: a client retry would multiply that.
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
    }
    let retry_after = classification.retry_after.or_else(|| {
        (classification.cause == Cause::AllTargetsFailed
            && matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ))
        .then(|| trail.and_then(|trail| soonest_refill(shared, trail)))
        .flatten()
    });
    if let Some(wait) = retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        headers.insert("retry-after", HeaderValue::from(secs.max(1)));
    }
    if let Some(trail) = trail {
        headers.insert(
            &X_SEAWALL_ATTEMPTS,
            HeaderValue::from(trail.sent_attempts() as u64),
        );
    }
    reply
}

/// When the soonest of the targets a failed call tried has room again, by its limiter
/// (what the provider reported, and the configured limits): the time actually left.
fn soonest_refill(shared: &Shared, trail: &Trail) -> Option<Duration> {
    trail
        .attempts
        .iter()
        .filter_map(|attempt| shared.target_index.get(attempt.target.as_str()))
        .filter_map(|&i| shared.targets[i].limiter.as_ref())
        .map(|limiter| limiter.snapshot().capacity.time_to_refill)
        .filter(|wait| !wait.is_zero())
        .min()
}

/// A status for a call every target failed: 429 when each attempt was rate limited, 504
/// when each timed out, 503 when no target could be tried, 502 otherwise.
fn all_failed_status(trail: Option<&Trail>) -> (StatusCode, &'static str, &'static str) {
    let causes: Vec<Cause> = trail
        .map(|t| {
            t.attempts
                .iter()
                .filter_map(|a| match &a.outcome {
                    AttemptOutcome::Failed { cause, .. } => Some(*cause),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let all = |f: fn(&Cause) -> bool| !causes.is_empty() && causes.iter().all(f);
    if causes.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "all_targets_unavailable",
        )
    } else if all(|c| {
        matches!(
            c,
            Cause::Provider(ErrorKind::RateLimited | ErrorKind::QuotaExhausted)
                | Cause::RateLimitRejected
        )
    }) {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "all_targets_rate_limited",
        )
    } else if all(|c| matches!(c, Cause::TimedOut(_) | Cause::Provider(ErrorKind::Timeout))) {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "all_targets_timed_out",
        )
    } else {
        (
            StatusCode::BAD_GATEWAY,
            "server_error",
            "all_targets_failed",
        )
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
