//! The gateway: the shared state every request reads, [`Gateway`] and [`GatewayHandle`].
//!
//! One file per job: `build` turns a config into the shared state, `serve` listens,
//! accepts and shuts down, `front` holds the layers every request passes first (request
//! id, sensitive headers, panics), `routes` dispatches a request, `inbound` holds the checks made
//! before a call, `chat` makes the chat-completions call, `relay` is the response body
//! (a buffer or a relayed SSE stream), and `errors` maps failures to OpenAI-shaped
//! replies and writes the `x-seawall-*` headers.

mod build;
mod chat;
mod count;
mod errors;
mod front;
mod inbound;
mod relay;
mod reload;
mod routes;
mod serve;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use seawall::breaker::{BreakerHandle, BreakerLayer};
use seawall::budget::{Budget, Budgets};
use seawall::metrics::Metered;
use seawall::rate_limit::RateLimiter;
use tokio::sync::watch;

use self::inbound::Admin;
use self::serve::Serving;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::router::{GroupRouter, Groups};
use crate::spend::{AlertOut, UsageReport};
use crate::state::BudgetState;

use self::build::BreakerHooks;

pub use build::GatewayBuilder;
pub use relay::GatewayBody;
pub use reload::Reloaded;
pub(crate) use serve::UpstreamClient;

pub(crate) struct VirtualKey {
    pub(crate) name: Arc<str>,
    /// The key's request limit: the project's own GCRA limiter (one CAS when admitted, on
    /// tokio's clock), which never waits here. The key map is read-only after start.
    limiter: Option<RateLimiter>,
    /// The rate of `limiter`: a reload that keeps it keeps the limiter.
    requests_per_minute: Option<u32>,
    /// Whether the key has budgets, whose remainder its replies carry.
    budgeted: bool,
}

pub(crate) struct TargetInfo {
    pub(crate) name: String,
    sent: Arc<AtomicU64>,
    pub(crate) breaker: BreakerHandle,
    pub(crate) limiter: Option<RateLimiter>,
    /// The breaker itself, to build a reloaded config's stack around.
    breaker_layer: BreakerLayer,
    /// The settings `breaker_layer` and `limiter` were built with: a reload carries each
    /// over while its settings are unchanged.
    breaker_settings: String,
    limiter_settings: String,
}

pub(crate) struct Shared {
    groups: Arc<Groups>,
    /// Every call is counted, then goes through the budget layer to the group its model
    /// names.
    service: Metered<Budget<GroupRouter, BudgetState>>,
    pub(crate) budgets: Budgets<BudgetState>,
    report: Arc<UsageReport>,
    alerts: AlertOut,
    /// Where `alerts` post: a reload that keeps it keeps `alerts`.
    alert_webhook: Option<String>,
    /// What every target's breaker reports to, shared by each config a reload builds, and
    /// what this config's breakers should report to once it is in force.
    hooks: Arc<ArcSwap<BreakerHooks>>,
    next_hooks: Arc<BreakerHooks>,
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
    pub(crate) ready: Arc<AtomicBool>,
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
    cut_streams: Arc<watch::Sender<bool>>,
    /// The limiter queue length that raises a `queue_growth` alert, if one is configured.
    queue_alert: Option<usize>,
}

impl Shared {
    /// Settles which hosts and origins are answered, for a listener bound to `addr`.
    pub(super) fn bound(&self, addr: SocketAddr) {
        let (hosts, origins) = &self.allowed_config;
        self.allowed
            .get_or_init(|| crate::origin::Allowed::new(hosts, origins, addr));
    }

    /// Points every breaker's reports at this config's metrics and alerts.
    fn activate_hooks(&self) {
        self.hooks.store(Arc::clone(&self.next_hooks));
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
    /// What a reload builds with.
    running: Running,
}

/// What a reload builds with: the config in force, the variables supplied to the builder
/// and the upstream pools (kept, with their open connections).
struct Running {
    /// `[server]` as the config gave it, before the builder's overrides: what a reloaded
    /// config is compared with.
    server_as_written: crate::config::ServerConfig,
    config: Config,
    env: HashMap<String, String>,
    http: UpstreamClient,
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
}

/// A running gateway. Dropping it stops accepting and lets in-flight requests finish
/// within the grace period, as [`shutdown`](GatewayHandle::shutdown) does, without
/// waiting for them.
pub struct GatewayHandle {
    addr: SocketAddr,
    /// The shared state of the config in force: read once per request, replaced by a reload.
    current: Arc<ArcSwap<Shared>>,
    /// What a reload builds with; held through a reload, so reloads take turns.
    running: tokio::sync::Mutex<Running>,
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
}
