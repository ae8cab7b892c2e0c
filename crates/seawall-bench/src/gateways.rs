//! The gateways under load: plain (the full stack on every target, nothing of the caller
//! checked) and governed (virtual keys with a request limit and a dollar budget, a
//! per-request cost cap, prices, the access log; optionally on Redis).

use seawall_gateway::Config;
use seawall_sim::{Provider, Simulator};

use crate::BoxError;

/// The virtual key the governed gateway admits, and the variable it is read from.
pub(crate) const VIRTUAL_KEY: &str = "vk-bench";
pub(crate) const VIRTUAL_KEY_ENV: &str = "SEAWALL_BENCH_VKEY";

/// The gateway's configuration: group `fast` over the zero-latency simulator, group `slow`
/// over the slowly streaming one, each target with every layer of the stack on.
pub(crate) fn gateway_config(fast: &Simulator, slow_base_url: &str) -> Result<Config, BoxError> {
    Ok(Config::from_toml(&toml_of(fast, slow_base_url))?)
}

/// The plain configuration's text.
fn toml_of(fast: &Simulator, slow_base_url: &str) -> String {
    let target = |name: &str, base: String| {
        format!(
            r#"
[[targets]]
name = "{name}"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{base}"
api_key_env = "SEAWALL_BENCH_KEY"
requests_per_minute = 1000000000
tokens_per_minute = 1000000000000
max_attempts = 2
max_server_wait = "2s"
attempt_timeout = "30s"
first_token_timeout = "10s"
idle_timeout = "10s"
breaker_failures = 5
breaker_cooldown = "5s"
"#
        )
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "1s"
# The open-stream phase holds --streams calls at once (the default cap is 512).
max_in_flight = 8192
{}
{}
[[groups]]
name = "fast"
targets = ["sim-fast"]
timeout = "60s"

[[groups]]
name = "slow"
targets = ["sim-slow"]
timeout = "60s"
"#,
        target("sim-fast", fast.base_url(Provider::OpenAi)),
        target("sim-slow", slow_base_url.to_owned()),
    )
}

/// The plain configuration, governed: one virtual key with a request limit and a daily
/// dollar budget that never bind (both are checked on every call), a per-request cost cap
/// and output cap; with `redis`, limiters, budgets and breakers shared through it.
pub(crate) fn governed_config(
    fast: &Simulator,
    slow_base_url: &str,
    redis: Option<&str>,
) -> Result<Config, BoxError> {
    let mut toml = toml_of(fast, slow_base_url);
    toml.push_str(&format!(
        r#"
[budget]
max_cost_usd = 5.0
max_output_tokens = 4096

[[keys]]
name = "bench"
key_env = "{VIRTUAL_KEY_ENV}"
requests_per_minute = 1000000000
budgets = [{{ window = "day", usd = 1000000.0 }}]
"#
    ));
    if let Some(url) = redis {
        toml.push_str(&format!(
            "\n[state]\nredis_url = \"{url}\"\non_redis_down = \"fail_open\"\n"
        ));
    }
    Ok(Config::from_toml(&toml)?)
}
