//! The connection to Redis, its deadline, and what happens when Redis cannot answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, ScriptInvocation};
use tokio::time::Instant;

/// What the shared state does while Redis cannot answer within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// Each replica decides alone, on its in-process state, until Redis answers again
    /// (counted in [`StateStats::fallbacks`], logged once per outage). Replicas then admit
    /// up to the whole quota each.
    #[default]
    Open,
    /// Calls that need the shared state are refused with a clear error (the gateway
    /// answers 503) until Redis answers again.
    Closed,
}

/// Where the shared state lives and how long a call may wait for it.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` (or `rediss://`, `unix://`).
    pub url: String,
    /// Prepended to every key, so that several deployments can share one Redis.
    pub prefix: String,
    /// The longest a call waits for Redis before [`fail_mode`](Self::fail_mode) decides.
    pub timeout: Duration,
    /// What happens while Redis cannot answer.
    pub fail_mode: FailMode,
}

impl RedisConfig {
    /// Redis at `url`, keys prefixed `seawall:`, a 50 ms timeout, failing open.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "seawall:".to_owned(),
            timeout: Duration::from_millis(50),
            fail_mode: FailMode::Open,
        }
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets what happens while Redis cannot answer.
    #[must_use]
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }
}

/// The URL without its password, for logs and `Debug`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials
                .split_once(':')
                .map_or(credentials, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("fail_mode", &self.fail_mode)
            .finish()
    }
}

/// What the shared state has seen of Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StateStats {
    /// Whether the last call reached Redis.
    pub up: bool,
    /// Calls sent to Redis.
    pub calls: u64,
    /// Calls that failed (connection refused or lost, a server error).
    pub errors: u64,
    /// Calls that passed the timeout.
    pub timeouts: u64,
    /// Decisions taken on the in-process state because Redis could not answer
    /// ([`FailMode::Open`]).
    pub fallbacks: u64,
    /// Calls refused because Redis could not answer ([`FailMode::Closed`]).
    pub refusals: u64,
}

/// Redis could not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreachable;

/// A handle on the shared state in Redis: one multiplexed connection (concurrent calls are
/// pipelined on it) that reconnects in the background. Cheap to clone; every limiter,
/// breaker and budget store built from it shares it.
///
/// Creating it does not connect: a replica starts while Redis is down, and calls find it
/// when it is back.
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: ConnectionManager,
    /// Tells this handle's own messages from other processes'.
    process_id: String,
    breakers: crate::breaker::Registry,
    /// The limiters and budget stores built on this handle that may hold leases.
    lease_holders: Mutex<Vec<Weak<dyn LeaseHolder>>>,
    url: String,
    prefix: String,
    timeout: Duration,
    fail_mode: FailMode,
    origin: Instant,
    down: AtomicBool,
    /// While down, calls fail at once until this many milliseconds after `origin`, so that
    /// an outage costs one call per interval the timeout, not every call.
    retry_at_ms: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    fallbacks: AtomicU64,
    refusals: AtomicU64,
}

/// A store that may hold leases (units reserved in Redis for this replica to use).
pub(crate) trait LeaseHolder: Send + Sync {
    /// Gives back what its leases hold and sends its gathered writes, now.
    fn give_back_all(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// How long calls fail fast after a failed one.
const RETRY_INTERVAL: Duration = Duration::from_millis(200);

impl RedisState {
    /// A handle on the Redis at `config.url`. Call within a tokio runtime.
    ///
    /// # Errors
    ///
    /// A URL redis-rs cannot parse.
    pub fn new(config: RedisConfig) -> Result<Self, RedisError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager)?;
        static HANDLES: AtomicU64 = AtomicU64::new(0);
        let process_id = format!(
            "{}-{}",
            std::process::id(),
            HANDLES.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                connection,
                process_id,
                breakers: crate::breaker::Registry::default(),
                lease_holders: Mutex::new(Vec::new()),
                url: redacted(&config.url),
                prefix: config.prefix,
                timeout: config.timeout,
                fail_mode: config.fail_mode,
                origin: Instant::now(),
                down: AtomicBool::new(false),
                retry_at_ms: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
                refusals: AtomicU64::new(0),
            }),
        })
    }

    /// What happens while Redis cannot answer.
    pub fn fail_mode(&self) -> FailMode {
        self.inner.fail_mode
    }

    /// What the state has seen of Redis so far.
    pub fn stats(&self) -> StateStats {
        let inner = &*self.inner;
        StateStats {
            up: !inner.down.load(Ordering::Relaxed),
            calls: inner.calls.load(Ordering::Relaxed),
            errors: inner.errors.load(Ordering::Relaxed),
            timeouts: inner.timeouts.load(Ordering::Relaxed),
            fallbacks: inner.fallbacks.load(Ordering::Relaxed),
            refusals: inner.refusals.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    pub(crate) fn process_id(&self) -> &str {
        &self.inner.process_id
    }

    pub(crate) fn breakers(&self) -> &crate::breaker::Registry {
        &self.inner.breakers
    }

    /// The key of `name` among things of `kind`. The braces are a hash tag: everything one
    /// script touches is in one slot of a Redis Cluster.
    pub(crate) fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{{{kind}:{name}}}", self.inner.prefix)
    }

    /// A key in the slot of `tag`: `{prefix}{tag}:rest`, for things one script touches
    /// together.
    pub(crate) fn tagged(&self, tag: &str, rest: &str) -> String {
        format!("{}{{{tag}}}:{rest}", self.inner.prefix)
    }

    /// Notes a store that may hold leases, for [`give_back_leases`](Self::give_back_leases).
    pub(crate) fn hold_leases(&self, holder: Weak<dyn LeaseHolder>) {
        let mut holders = self
            .inner
            .lease_holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        holders.retain(|holder| holder.strong_count() > 0);
        holders.push(holder);
    }

    /// Gives back to Redis, now, what the leases of every limiter and budget store built on
    /// this handle hold, and sends the writes they have gathered. For a replica that stops:
    /// its leases' units are then free for the other replicas at once, instead of staying
    /// counted until their windows pass. The stores keep working; later calls lease anew.
    pub async fn give_back_leases(&self) {
        let holders: Vec<_> = self
            .inner
            .lease_holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for holder in holders {
            holder.give_back_all().await;
        }
    }

    /// Records a decision taken without Redis; `Err` when the mode is to refuse instead.
    pub(crate) fn without_redis(&self) -> Result<(), Unreachable> {
        match self.inner.fail_mode {
            FailMode::Open => {
                self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            FailMode::Closed => {
                self.inner.refusals.fetch_add(1, Ordering::Relaxed);
                Err(Unreachable)
            }
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs a script within the timeout. While Redis is down, fails at once except for one
    /// call per retry interval.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Unreachable> {
        let inner = &*self.inner;
        if inner.down.load(Ordering::Relaxed) {
            let now = self.millis();
            let retry_at = inner.retry_at_ms.load(Ordering::Relaxed);
            let next = now + u64::try_from(RETRY_INTERVAL.as_millis()).unwrap_or(u64::MAX);
            if now < retry_at
                || inner
                    .retry_at_ms
                    .compare_exchange(retry_at, next, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                return Err(Unreachable);
            }
        }
        inner.calls.fetch_add(1, Ordering::Relaxed);
        let mut connection = inner.connection.clone();
        match tokio::time::timeout(inner.timeout, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => {
                if inner.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        target: "seawall::redis",
                        url = %inner.url,
                        "shared state reachable again"
                    );
                }
                Ok(value)
            }
            Ok(Err(error)) => {
                inner.errors.fetch_add(1, Ordering::Relaxed);
                self.went_down(&format!("{:?}", error.kind()));
                Err(Unreachable)
            }
            Err(_elapsed) => {
                inner.timeouts.fetch_add(1, Ordering::Relaxed);
                self.went_down("timeout");
                Err(Unreachable)
            }
        }
    }

    fn went_down(&self, cause: &str) {
        let inner = &*self.inner;
        let retry_at = self.millis() + u64::try_from(RETRY_INTERVAL.as_millis()).unwrap_or(0);
        inner.retry_at_ms.store(retry_at, Ordering::Relaxed);
        if !inner.down.swap(true, Ordering::Relaxed) {
            let mode = match inner.fail_mode {
                FailMode::Open => "deciding on in-process state",
                FailMode::Closed => "refusing calls that need it",
            };
            tracing::warn!(
                target: "seawall::redis",
                url = %inner.url,
                cause,
                "shared state unreachable; {mode} until it answers"
            );
        }
    }
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("fail_mode", &self.inner.fail_mode)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_leave_the_url() {
        assert_eq!(
            redacted("redis://:s3cret@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redacted("rediss://app:s3cret@cache:6380"),
            "rediss://app:***@cache:6380"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
