//! [`GatewayBuilder`]: the targets, groups, keys and state a config describes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use seawall::breaker::{BreakerEvent, BreakerLayer};
use seawall::budget::Budget;
use seawall::cache::CacheLayer;
use seawall::failover::{Continuation, Failover, Strategy};
use seawall::metrics::MetricsLayer;
use seawall::rate_limit::{ProviderRefill, Rate, RateLimitConfig};
use seawall::retry::RetryLayer;
use seawall::stack::TargetStack;
use seawall::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use seawall_core::{BreakerState, Classifier};
use seawall_providers::http::HttpClient;
use seawall_providers::{ApiKey, http::default_client};
use serde_json::json;
use tokio::sync::watch;
use tower::Layer;
use tower::util::Either;

use super::inbound::Admin;
use super::serve::UpstreamClient;
use super::{Gateway, Running, Shared, TargetInfo, VirtualKey};
use crate::config::{
    Config, ConfigError, ProviderConfig, ProviderRefillConfig, StrategyConfig, TargetConfig,
};
use crate::metrics::Metrics;
use crate::router::{Group, GroupRouter, Groups};
use crate::spend::{AlertOut, TargetAlert, UsageReport};
use crate::upstream::{self, TokenCounter};

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

/// Builds a [`Gateway`] from a [`Config`].
pub struct GatewayBuilder {
    pub(super) config: Config,
    pub(super) env: HashMap<String, String>,
    pub(super) http: Option<HttpClient>,
    pub(super) threads: Option<usize>,
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
        let server_as_written = config.server.clone();
        if threads.is_some() {
            config.server.threads = threads;
        }
        let env = env_lookup(&supplied);
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
        let state = crate::state::State::new(&config, &env)?;
        let shared = shared(&config, &env, &http, state, None)?;
        shared.activate_hooks();
        drop(env);
        Ok(Gateway {
            shared: Arc::new(shared),
            listen: config.server.listen,
            grace: config.server.shutdown_grace,
            threads,
            running: Running {
                server_as_written,
                config,
                env: supplied,
                http,
            },
        })
    }
}

/// The value of an environment variable the config names: supplied to the builder, else
/// the process's.
pub(super) fn env_lookup(supplied: &HashMap<String, String>) -> impl Fn(&str) -> Option<String> {
    |name: &str| {
        supplied
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// The breaker settings of a target: a breaker is carried over a reload while they hold.
fn breaker_settings(t: &TargetConfig, limited: bool) -> String {
    format!(
        "{:?}",
        (
            t.breaker_failures,
            t.breaker_cooldown,
            limited || t.follow_provider_headers
        )
    )
}

/// The limiter settings of a target: a limiter is carried over a reload while they hold.
fn limiter_settings(t: &TargetConfig) -> String {
    format!(
        "{:?}",
        (
            t.requests_per_minute,
            t.tokens_per_minute,
            t.limit_period,
            t.follow_provider_headers,
            t.provider_refill,
            t.max_wait,
            t.queue_capacity,
            t.default_output_tokens,
        )
    )
}

/// The shared state `config` describes (already validated), on `state`. With `previous`
/// (a reload), each target's breaker, limiter and counters and each key's limiter and
/// budgets' spend are carried over by name where their settings are unchanged; the server's
/// own state (connection and call permits, readiness, the stream cut) is the previous one.
pub(super) fn shared(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    http: &UpstreamClient,
    state: crate::state::State,
    previous: Option<&Shared>,
) -> Result<Shared, ConfigError> {
    let traced = http.traced;
    let http = http.clone();
    let prices = crate::spend::prices(config);
    // The alerts go where they went while the webhook is the same (their counts with them).
    let alerts = match previous {
        Some(previous) if previous.alert_webhook == config.budget.alert_webhook => {
            previous.alerts.clone()
        }
        _ => AlertOut::new(config.budget.alert_webhook.as_deref()),
    };
    let metrics = Arc::new(Metrics::new(prices.clone()));
    // A carried breaker reports to this gateway's metrics and alerts, through `hooks`.
    let hooks = match previous {
        Some(previous) => Arc::clone(&previous.hooks),
        None => Arc::new(ArcSwap::from_pointee(BreakerHooks::default())),
    };
    let next_hooks = BreakerHooks {
        calls: Some(Arc::clone(&metrics.calls)),
        alerts: Some(alerts.clone()),
        alert_on_open: config.alerts.iter().any(|a| a.breaker_open),
    };
    let carried_target =
        |name: &str| previous.and_then(|p| p.target_index.get(name).map(|&i| &p.targets[i]));
    // One breaker and limiter per target, shared by every group that uses it.
    let mut targets = Vec::new();
    let mut stacks = HashMap::new();
    let mut secrets = Vec::new();
    for t in &config.targets {
        let secret = t.api_key_env.as_deref().and_then(&env);
        secrets.extend(secret.clone());
        let key = secret.map(ApiKey::new);
        let limited = t.requests_per_minute.is_some() || t.tokens_per_minute.is_some();
        let carried = carried_target(&t.name);
        let breaker_settings = breaker_settings(t, limited);
        let breaker = match carried {
            Some(c) if c.breaker_settings == breaker_settings => c.breaker_layer.clone(),
            _ => {
                let breaker = new_breaker(t, limited, &hooks);
                state.share_breaker(&breaker.handle());
                breaker
            }
        };
        metrics.calls.watch_breaker(breaker.handle());
        let limiter_settings = limiter_settings(t);
        let limiter = match carried {
            Some(c) if c.limiter_settings == limiter_settings => c.limiter.clone(),
            _ => new_limiter(t, limited, &state),
        };
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
        let sent = carried.map_or_else(|| Arc::new(AtomicU64::new(0)), |c| Arc::clone(&c.sent));
        targets.push(TargetInfo {
            name: t.name.clone(),
            sent: Arc::clone(&sent),
            breaker: breaker.handle(),
            limiter,
            breaker_layer: breaker.clone(),
            breaker_settings,
            limiter_settings,
        });
        stacks.insert(t.name.clone(), (stack, t, key, sent));
    }

    let build_target = |name: &str, pass_through: bool| {
        let (stack, t, key, sent) = &stacks[name];
        let stack = stack.clone();
        let http = http.clone();

        let key = key.as_ref();
        let guarded = match t.provider {
            ProviderConfig::Openai | ProviderConfig::OpenaiCompatible => {
                let c = upstream::openai_config(t, key);
                stack.build(counted(seawall_providers::OpenAi::new(http, c), sent))
            }
            ProviderConfig::AzureOpenai => {
                let c = upstream::azure_config(t, key);
                stack.build(counted(seawall_providers::OpenAi::new(http, c), sent))
            }
            ProviderConfig::Anthropic => {
                let c = upstream::anthropic_config(t, key);
                stack.build(counted(seawall_providers::Anthropic::new(http, c), sent))
            }
            ProviderConfig::Gemini => {
                let c = upstream::gemini_config(t, key);
                stack.build(counted(seawall_providers::Gemini::new(http, c), sent))
            }
            ProviderConfig::OpenaiResponses => {
                let c = upstream::responses_config(t, key);
                stack.build(counted(
                    seawall_providers::OpenAiResponses::new(http, c),
                    sent,
                ))
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
        let mut failover =
            Failover::builder()
                .classifier(classifier.clone())
                .strategy(match g.strategy {
                    StrategyConfig::Priority => Strategy::Priority,
                    StrategyConfig::Weighted => Strategy::Weighted,
                    StrategyConfig::LeastLatency => Strategy::LeastLatency,
                });
        for (i, name) in g.targets.iter().enumerate() {
            failover = failover.target(build_target(name, pattern && i == 0));
        }
        let counter = g.targets.iter().enumerate().find_map(|(i, name)| {
            let (_, t, key, _) = &stacks[name.as_str()];
            TokenCounter::new(t, key.as_ref(), http.clone(), pattern && i == 0)
        });
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
            counter,
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
    let utc_offset = config
        .budget
        .utc_offset
        .as_deref()
        .and_then(crate::spend::config::parse_utc_offset)
        .unwrap_or(0);
    // The report runs on while its days start at the same hour.
    let report = match previous {
        Some(previous) if previous.report.offset_secs() == utc_offset => {
            Arc::clone(&previous.report)
        }
        _ => Arc::new(UsageReport::new(utc_offset)),
    };
    let identities = crate::spend::budget_identities(config);
    let store = match previous {
        Some(previous) => previous.budgets.store().carried(identities),
        None => state.budgets(identities),
    };
    let budgets = crate::spend::layer(config, prices, &alerts, Arc::clone(&report), store);

    let mut keys = HashMap::new();
    for k in &config.keys {
        let secret = env(&k.key_env).unwrap_or_default();
        let rpm = k.requests_per_minute.filter(|rpm| *rpm > 0);
        // A key's limiter is carried over a reload while its rate is the same.
        let carried = previous.and_then(|p| {
            p.keys
                .values()
                .find(|v| *v.name == *k.name && v.requests_per_minute == rpm)
        });
        let limiter = match carried {
            Some(carried) => carried.limiter.clone(),
            None => rpm.map(|rpm| {
                state.limiter(
                    &format!("key {}", k.name),
                    RateLimitConfig::new()
                        .requests(Rate::per_minute(u64::from(rpm)))
                        .default_output_tokens(0)
                        .max_wait(Duration::ZERO),
                )
            }),
        };
        secrets.push(secret.clone());
        keys.insert(
            secret,
            Arc::new(VirtualKey {
                name: Arc::from(k.name.as_str()),
                limiter,
                requests_per_minute: rpm,
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
    // The server's own state is the previous one: a reload changes no `[server]` setting.
    let (connections, in_flight, cut_streams, ready) = match previous {
        Some(p) => (
            Arc::clone(&p.connections),
            Arc::clone(&p.in_flight),
            Arc::clone(&p.cut_streams),
            Arc::clone(&p.ready),
        ),
        None => (
            Arc::new(tokio::sync::Semaphore::new(
                config.server.max_connections.max(1),
            )),
            Arc::new(tokio::sync::Semaphore::new(
                config.server.max_in_flight.max(1),
            )),
            Arc::new(watch::Sender::new(false)),
            Arc::new(AtomicBool::new(true)),
        ),
    };
    let board = crate::status::Board::carrying(&target_names, previous.map(|p| &p.board));
    Ok(Shared {
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
        connections,
        in_flight,
        cut_streams,
        queue_alert: config.alerts.iter().find_map(|a| a.queue_length),
        service: MetricsLayer::new(Arc::clone(&metrics.calls)).layer(Budget::new(
            GroupRouter(Arc::clone(&groups)),
            budgets.budgets().clone(),
        )),
        budgets: budgets.budgets().clone(),
        groups,
        report,
        alerts,
        alert_webhook: config.budget.alert_webhook.clone(),
        hooks,
        next_hooks: Arc::new(next_hooks),
        targets,
        target_index,
        keys,
        metrics,
        state,
        board,
        max_body: config.server.max_body_bytes,
        traced,
        ready,
        models: Bytes::from(serde_json::to_vec(&models).unwrap_or_default()),
        next_id: AtomicU64::new(1),
    })
}

/// What a target's breaker reports to: the metrics and alerts of the config in force, so a
/// breaker carried over a reload reports to the new ones.
#[derive(Default)]
pub(super) struct BreakerHooks {
    calls: Option<Arc<seawall::metrics::CallMetrics>>,
    alerts: Option<AlertOut>,
    alert_on_open: bool,
}

/// A new breaker for target `t`, reporting through `hooks`.
fn new_breaker(
    t: &TargetConfig,
    limited: bool,
    hooks: &Arc<ArcSwap<BreakerHooks>>,
) -> seawall::breaker::BreakerLayer {
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
    let hooks = Arc::clone(hooks);
    b.on_event(move |event| {
        let hooks = hooks.load();
        if let Some(calls) = &hooks.calls {
            calls.breaker_event(event);
        }
        if let BreakerEvent::Transition {
            target,
            to: BreakerState::Open,
            open_for,
            ..
        } = event
            && hooks.alert_on_open
            && let Some(alerts) = &hooks.alerts
        {
            alerts.target(target.as_str(), TargetAlert::BreakerOpen(*open_for));
        }
    })
    .build()
}

/// A new limiter for target `t`, if it has limits or follows the provider's reports.
fn new_limiter(
    t: &TargetConfig,
    limited: bool,
    state: &crate::state::State,
) -> Option<seawall::rate_limit::RateLimiter> {
    (limited || t.follow_provider_headers).then(|| {
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
    })
}
