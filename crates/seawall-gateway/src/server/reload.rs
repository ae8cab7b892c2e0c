//! [`GatewayHandle::reload`]: a new config in force for new calls, the running state
//! carried over by name.

use std::sync::Arc;

use seawall_providers::http::default_client;

use super::GatewayHandle;
use super::build::{env_lookup, shared};
use crate::config::{Config, ConfigError};

/// What a [`GatewayHandle::reload`] put in force, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    /// The sections that differ from the running config but change only with a restart
    /// (`[server]`, `[state]`, `[telemetry]`): they were left as the gateway started.
    pub ignored: Vec<&'static str>,
}

impl GatewayHandle {
    /// Puts `config` in force for every call that arrives from now on; a call in flight,
    /// stream included, finishes on the config it began with.
    ///
    /// The new config is validated and built whole before anything changes: on an error
    /// the running config stays in force, untouched. Carried over by name, where the
    /// settings behind them are unchanged: each target's breaker (its settings:
    /// `breaker_failures`, `breaker_cooldown`, whether the target is limited), limiter (its
    /// limits and queue settings) and counters; each key's request limiter (same
    /// `requests_per_minute`) and what its budgets have spent (same unit and window; a new
    /// limit applies to the spend so far); the usage report. A target or key new to the
    /// config, or whose settings changed, starts afresh; one the config no longer names is
    /// dropped. In Redis (`[state]`), limiters and budgets live on in Redis.
    ///
    /// `[server]` (listen address, threads, limits and timeouts), `[state]` and
    /// `[telemetry]` change only with a restart: a reload keeps them as the gateway
    /// started, logs each that differs, and names them in [`Reloaded::ignored`].
    pub async fn reload(&self, mut config: Config) -> Result<Reloaded, ConfigError> {
        // Reloads take turns: each carries over from the one before.
        let mut running = self.running.lock().await;
        let mut ignored = Vec::new();
        // Compared by their Debug text: each section's settings, secrets shown by name only.
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        if differs(&config.server, &running.server_as_written) {
            ignored.push("[server]");
        }
        if differs(&config.state, &running.config.state) {
            ignored.push("[state]");
        }
        if differs(&config.telemetry, &running.config.telemetry) {
            ignored.push("[telemetry]");
        }
        config.server = running.config.server.clone();
        config.state = running.config.state.clone();
        config.telemetry = running.config.telemetry.clone();

        let env = env_lookup(&running.env);
        config.validate(&env)?;
        let previous = self.current.load_full();
        let next = shared(
            &config,
            &env,
            &running.http,
            previous.state.clone(),
            Some(&previous),
        )?;
        next.bound(self.addr);
        // A new alert webhook gets its sender (a carried one has it already).
        next.alerts.start(default_client().map_err(|e| ConfigError {
            key: "(http client)".into(),
            problem: e.to_string(),
        })?);
        next.activate_hooks();
        self.current.store(Arc::new(next));
        drop(env);
        running.config = config;
        for section in &ignored {
            tracing::warn!(
                section,
                "config reload: {section} changes only with a restart; kept as started"
            );
        }
        Ok(Reloaded { ignored })
    }
}
