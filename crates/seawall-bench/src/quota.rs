//! `seawall-quota`: how much of a provider's quota gateways serve, and how many calls they
//! send to collect a 429, black-box.
//!
//! ```text
//! cargo build --release -p seawall-gateway -p seawall-bench
//! target/release/seawall-quota [--gateways 1] [--limits quota|share|headers|none] \
//!     [--window-ms 60000] [--windows 3] [--requests 600] [--tokens 60000] \
//!     [--reply-tokens 220] [--max-tokens 256] [--load 2.0] \
//!     [--redis false] [--redis-outage-ms 0]
//! ```
//!
//! The simulator (in this process) enforces a fixed-window OpenAI quota for one key. The
//! `seawall-gateway` binaries beside this one run as separate processes, each configured
//! with one target on that key: told the whole quota (`quota`), a 1/N share of it
//! (`share`), nothing but the provider's headers (`headers`) or no limiter (`none`). An
//! open-loop load of `--load` times the token quota is spread over them round robin for
//! `--windows` windows. Upstream 429s are the requests the simulator received less the calls
//! it answered. Everything binds 127.0.0.1:0; the gateways are killed at the end.
//!
//! `--redis true` starts a `redis-server` (from `PATH`, on a free port) and gives the gateways
//! one `[state]` in it, failing open; `--redis-outage-ms N` kills it for N ms in the middle
//! of the run and starts it again (empty, as after a crash).

use std::io::Write as _;
use std::process::ExitCode;

mod harness;
// The load generator uses the rest of it.
#[allow(dead_code)]
mod histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seawall_sim::{Provider, QuotaConfig, Simulator};

const KEY_ENV: &str = "SEAWALL_QUOTA_KEY";

#[derive(Debug, Clone)]
struct Options {
    gateways: usize,
    limits: String,
    window_ms: u64,
    windows: u32,
    requests: u64,
    tokens: u64,
    reply_tokens: u32,
    max_tokens: u32,
    load: f64,
    redis: bool,
    redis_outage_ms: u64,
}

const USAGE: &str = "usage: seawall-quota [--gateways 1] [--limits quota|share|headers|none] \
[--window-ms 60000] [--windows 3] [--requests 600] [--tokens 60000] [--reply-tokens 220] \
[--max-tokens 256] [--load 2.0] [--redis false] [--redis-outage-ms 0]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        gateways: 1,
        limits: "quota".into(),
        window_ms: 60_000,
        windows: 3,
        requests: 600,
        tokens: 60_000,
        reply_tokens: 220,
        max_tokens: 256,
        load: 2.0,
        redis: false,
        redis_outage_ms: 0,
    };
    harness::flags(USAGE, |flag| {
        match flag.name {
            "--gateways" => options.gateways = flag.parse()?,
            "--limits" => match flag.value {
                "quota" | "share" | "headers" | "none" => options.limits = flag.value.into(),
                _ => return Err(flag.bad(&"not quota, share, headers or none")),
            },
            "--window-ms" => options.window_ms = flag.parse()?,
            "--windows" => options.windows = flag.parse()?,
            "--requests" => options.requests = flag.parse()?,
            "--tokens" => options.tokens = flag.parse()?,
            "--reply-tokens" => options.reply_tokens = flag.parse()?,
            "--max-tokens" => options.max_tokens = flag.parse()?,
            "--load" => options.load = flag.parse()?,
            "--redis" => options.redis = flag.parse()?,
            "--redis-outage-ms" => options.redis_outage_ms = flag.parse()?,
            _ => return Err(flag.unknown()),
        }
        Ok(())
    })?;
    if options.gateways == 0 || options.windows == 0 || options.window_ms == 0 {
        return Err(format!(
            "gateways, windows and window-ms must be positive\n{USAGE}"
        ));
    }
    Ok(options)
}

/// The config of one gateway: one target on the simulator's OpenAI API.
fn config(options: &Options, base_url: &str, redis: Option<&str>) -> String {
    let n = options.gateways as u64;
    let limits = match options.limits.as_str() {
        "quota" => format!(
            "requests_per_minute = {}\ntokens_per_minute = {}\n",
            options.requests, options.tokens
        ),
        "share" => format!(
            "requests_per_minute = {}\ntokens_per_minute = {}\n",
            options.requests.div_ceil(n),
            options.tokens.div_ceil(n)
        ),
        "headers" => "follow_provider_headers = true\n".to_owned(),
        _ => String::new(),
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[targets]]\nname = \"openai\"\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n\
         base_url = \"{base_url}\"\napi_key_env = \"{KEY_ENV}\"\n{limits}\
         limit_period = \"{}ms\"\nmax_wait = \"{}ms\"\n\n\
         [[groups]]\nname = \"quota\"\ntargets = [\"openai\"]\n{}",
        options.window_ms,
        options.window_ms / 2,
        redis.map_or(String::new(), |url| format!(
            "\n[state]\nredis_url = \"{url}\"\non_redis_down = \"fail_open\"\n"
        )),
    )
}

struct Counts {
    offered: AtomicU64,
    answered: AtomicU64,
    served_tokens: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    /// Latency of the answered calls.
    latencies: std::sync::Mutex<histogram::Histogram>,
}

async fn run(options: Options) -> Result<bool, String> {
    let window = Duration::from_millis(options.window_ms);
    let sim = Simulator::builder()
        .reply_tokens(options.reply_tokens)
        .quota(
            Provider::OpenAi,
            QuotaConfig {
                requests: options.requests,
                tokens: options.tokens,
                window_ms: options.window_ms,
                ..QuotaConfig::default()
            },
        )
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("seawall-quota-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("gateway.toml");
    let redis = if options.redis || options.redis_outage_ms > 0 {
        Some(
            seawall_redis::testing::RedisServer::start()
                .map_err(|e| format!("redis-server: {e}"))?,
        )
    } else {
        None
    };
    let text = config(
        &options,
        &sim.base_url(Provider::OpenAi),
        redis.as_ref().map(|r| r.url()).as_deref(),
    );
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..options.gateways {
        let (child, addr) =
            harness::spawn_gateway(&path, &[(KEY_ENV.into(), "sk-quota-run".into())])?;
        children.push(child);
        addrs.push(addr);
    }

    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let body = Bytes::from(
        serde_json::json!({
            "model": "quota",
            "max_tokens": options.max_tokens,
            "messages": [{"role": "user", "content": "Write about the sea."}],
        })
        .to_string(),
    );
    // A call costs its prompt and its reply at the provider; the rate offered is `load`
    // times what the token quota admits (the request quota is the same bound or looser).
    let call_tokens = 12 + u64::from(options.reply_tokens.min(options.max_tokens));
    let per_window = (options.load * options.tokens as f64 / call_tokens as f64).max(1.0);
    let interval = window.div_f64(per_window);
    let counts = Arc::new(Counts {
        offered: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        served_tokens: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latencies: std::sync::Mutex::new(histogram::Histogram::new()),
    });
    let start = tokio::time::Instant::now();
    let end = start + window * options.windows;
    let mut ticker = tokio::time::interval(interval);
    let mut calls = Vec::new();
    let mut next = 0;
    let outage = Duration::from_millis(options.redis_outage_ms);
    let outage_at = start + (window * options.windows).saturating_sub(outage) / 2;
    let mut redis = redis.map(|server| (server, false));
    while tokio::time::Instant::now() < end {
        if let Some((server, killed)) = &mut redis
            && !outage.is_zero()
        {
            let now = tokio::time::Instant::now();
            if !*killed && now >= outage_at && now < outage_at + outage {
                server.kill();
                *killed = true;
                eprintln!("seawall-quota: redis-server killed");
            } else if *killed && now >= outage_at + outage {
                server.restart().map_err(|e| e.to_string())?;
                *killed = false;
                eprintln!("seawall-quota: redis-server restarted");
            }
        }
        ticker.tick().await;
        let addr = addrs[next % addrs.len()];
        next += 1;
        let (client, body, counts) = (client.clone(), body.clone(), counts.clone());
        counts.offered.fetch_add(1, Relaxed);
        calls.push(tokio::spawn(async move {
            let sent = tokio::time::Instant::now();
            let request = http::Request::post(format!("http://{addr}/v1/chat/completions"))
                .header("content-type", "application/json")
                .header("authorization", "Bearer any")
                .body(Full::new(body))
                .expect("request");
            let Ok(response) = client.request(request).await else {
                counts.failed.fetch_add(1, Relaxed);
                return;
            };
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let took = sent.elapsed();
            if status.is_success() {
                counts.answered.fetch_add(1, Relaxed);
                counts
                    .latencies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .record(took);
                if tokio::time::Instant::now() <= end {
                    let tokens = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["usage"]["total_tokens"].as_u64())
                        .unwrap_or(0);
                    counts.served_tokens.fetch_add(tokens, Relaxed);
                }
            } else if status.as_u16() == 429 || status.as_u16() == 503 {
                counts.refused.fetch_add(1, Relaxed);
            } else {
                counts.failed.fetch_add(1, Relaxed);
            }
        }));
    }
    for call in calls {
        let _ = call.await;
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);

    let latencies = counts
        .latencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let upstream = sim.requests_for(Provider::OpenAi).len() as u64;
    let answered = counts.answered.load(Relaxed);
    let too_many = upstream.saturating_sub(answered);
    let quota = options.tokens * u64::from(options.windows);
    let served = counts.served_tokens.load(Relaxed);
    println!(
        "gateways {} limits {} | {} windows of {} ms, quota {} requests / {} tokens, calls of \
         {call_tokens} tokens (max_tokens {}), {:.1}x offered: {} calls | served {served} of \
         {quota} tokens ({:.2} %) | upstream requests {upstream}, upstream 429s {too_many} \
         ({:.2} % of upstream requests) | refused by the gateways {} | other failures {} | \
         answered in p50 {:.0} µs, p99 {:.0} µs{}",
        options.gateways,
        options.limits,
        options.windows,
        options.window_ms,
        options.requests,
        options.tokens,
        options.max_tokens,
        options.load,
        counts.offered.load(Relaxed),
        served as f64 * 100.0 / quota as f64,
        too_many as f64 * 100.0 / upstream.max(1) as f64,
        counts.refused.load(Relaxed),
        counts.failed.load(Relaxed),
        latencies.quantile_us(0.5),
        latencies.quantile_us(0.99),
        match (
            options.redis || options.redis_outage_ms > 0,
            options.redis_outage_ms
        ) {
            (false, _) => String::new(),
            (true, 0) => " | state in redis".to_owned(),
            (true, ms) => format!(" | state in redis, killed for {ms} ms mid-run"),
        },
    );
    Ok(true)
}

fn main() -> ExitCode {
    harness::main("seawall-quota", parse_options, run)
}
