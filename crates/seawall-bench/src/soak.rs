//! `seawall-soak`: the gateway under sustained mixed load with a fault mix, black-box.
//!
//! ```text
//! cargo build --release -p seawall-gateway -p seawall-bench
//! target/release/seawall-soak [--minutes 10] [--concurrency 8] [--outage-secs 60]
//! ```
//!
//! The simulator (in this process) serves three providers; the `seawall-gateway` binary
//! beside this one runs as a separate process with one group over all three and three
//! virtual keys with budgets. Closed-loop clients call it, half streaming, half not, each
//! call with one of a few prompts whose whole answer is known (the simulator's reply is a
//! function of the conversation). Faults on the OpenAI and Anthropic targets: 20 % 500s,
//! bursts of 429 with a retry-after (5 s every minute), streams cut after a few events,
//! stalled past the idle timeout, and malformed chunks; and the OpenAI target down (503) for
//! `--outage-secs` from 30 % of the run.
//!
//! It reports the success rate, answers reported as complete whose text is not the whole
//! answer (must be 0), calls that outlived the group's deadline by more than 50 ms (must be
//! 0), p50 and p99 latency, and the gateway's RSS and open file descriptors over time (flat:
//! at most 5 % above their level after warm-up), and exits non-zero when a bound is broken.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use seawall_sim::{Fault, FaultRule, Provider, RateLimitKind, RetryAfter, RetryHeaders, Simulator};
use serde_json::{Value, json};
use tokio::time::Instant;

mod harness;

const KEY_ENV: &str = "SEAWALL_SOAK_UPSTREAM_KEY";
const KEYS: [&str; 3] = ["sk-soak-a", "sk-soak-b", "sk-soak-c"];
const ADMIN: &str = "sk-soak-admin";
const PROMPTS: usize = 12;
/// The group's overall deadline, and what a call may take beyond it.
const DEADLINE: Duration = Duration::from_secs(10);
const OVERRUN: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
struct Options {
    minutes: f64,
    concurrency: usize,
    outage: Duration,
}

const USAGE: &str = "usage: seawall-soak [--minutes 10] [--concurrency 8] [--outage-secs 60]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        minutes: 10.0,
        concurrency: 8,
        outage: Duration::from_secs(60),
    };
    harness::flags(USAGE, |flag| {
        match flag.name {
            "--minutes" => options.minutes = flag.parse()?,
            "--concurrency" => options.concurrency = flag.parse()?,
            "--outage-secs" => options.outage = Duration::from_secs(flag.parse()?),
            _ => return Err(flag.unknown()),
        }
        Ok(())
    })?;
    if options.minutes.is_nan() || options.minutes <= 0.0 || options.concurrency == 0 {
        return Err(USAGE.into());
    }
    Ok(options)
}

fn config(sim: &Simulator) -> String {
    let target = |name: &str, provider: &str, model: &str, sim_provider: Provider| {
        format!(
            "[[targets]]\nname = \"{name}\"\nprovider = \"{provider}\"\nmodel = \"{model}\"\n\
             base_url = \"{}\"\napi_key_env = \"{KEY_ENV}\"\nmax_attempts = 2\n\
             max_server_wait = \"2s\"\nattempt_timeout = \"5s\"\nfirst_token_timeout = \"2s\"\n\
             idle_timeout = \"1s\"\n\n",
            sim.base_url(sim_provider)
        )
    };
    let mut text = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 1\nadmin_key_env = \"SEAWALL_SOAK_ADMIN\"\n\n",
    );
    text += &target("openai", "openai", "gpt-4o-mini", Provider::OpenAi);
    text += &target(
        "anthropic",
        "anthropic",
        "claude-haiku-4-5",
        Provider::Anthropic,
    );
    text += &target("gemini", "gemini", "gemini-2.5-flash", Provider::Gemini);
    text += &format!(
        "[[groups]]\nname = \"soak\"\ntargets = [\"openai\", \"anthropic\", \"gemini\"]\n\
         timeout = \"{}s\"\n\n",
        DEADLINE.as_secs()
    );
    for (i, _) in KEYS.iter().enumerate() {
        text += &format!(
            "[[keys]]\nname = \"team-{i}\"\nkey_env = \"SEAWALL_SOAK_KEY_{i}\"\n\
             budgets = [{{ window = \"day\", usd = 1000.0 }}, {{ window = \"hour\", tokens = 1000000000 }}]\n\n"
        );
    }
    text
}

fn faults(seed: u64, outage: Option<(Duration, Duration)>) -> Vec<FaultRule> {
    let rate_limited = Fault::RateLimited {
        limit: RateLimitKind::Requests,
        retry: RetryHeaders {
            retry_after: Some(RetryAfter::Seconds(1)),
            ..RetryHeaders::default()
        },
    };
    let mut rules = Vec::new();
    if let Some((from, until)) = outage {
        rules.push(FaultRule::during(from, until, Fault::status(503)));
    }
    // A burst of 429s for 5 s at the start of every minute.
    for minute in 0..240u64 {
        let from = Duration::from_secs(minute * 60 + 20);
        rules.push(FaultRule::during(
            from,
            from + Duration::from_secs(5),
            rate_limited.clone(),
        ));
    }
    rules.extend([
        FaultRule::with_probability(0.20, seed, Fault::status(500)),
        FaultRule::with_probability(0.03, seed + 1, Fault::CutAfter { events: 4 }),
        FaultRule::with_probability(
            0.02,
            seed + 2,
            Fault::StallAfter {
                events: 3,
                ms: 3_000,
            },
        ),
        FaultRule::with_probability(0.02, seed + 3, Fault::MalformedChunkAfter { events: 3 }),
    ]);
    rules
}

fn body(prompt: usize, stream: bool) -> Bytes {
    Bytes::from(
        json!({
            "model": "soak",
            "stream": stream,
            "max_tokens": 200,
            "messages": [{"role": "user", "content": format!("Tell me about harbour number {prompt}.")}],
        })
        .to_string(),
    )
}

/// The answer's text: the message of a complete reply, or the deltas of a stream that ended
/// with `[DONE]`; `Err` with what went wrong otherwise (`truncated` when the stream ended
/// without an end marker or an error event).
fn answer(stream: bool, bytes: &[u8]) -> Result<String, &'static str> {
    if !stream {
        let value: Value = serde_json::from_slice(bytes).map_err(|_| "not json")?;
        return value["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_owned)
            .ok_or("no content");
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not utf-8")?;
    let mut out = String::new();
    let mut done = false;
    for event in text.split("\n\n") {
        let Some(data) = event.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let value: Value = serde_json::from_str(data).map_err(|_| "a chunk is not json")?;
        if value.get("error").is_some() {
            return Err("stream error");
        }
        if let Some(delta) = value["choices"][0]["delta"]["content"].as_str() {
            out.push_str(delta);
        }
    }
    if done { Ok(out) } else { Err("truncated") }
}

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    succeeded: AtomicU64,
    truncated_as_success: AtomicU64,
    overruns: AtomicU64,
    failures: Mutex<HashMap<String, u64>>,
    latencies: Mutex<Vec<Duration>>,
}

impl Counts {
    fn failed(&self, why: String) {
        *self.failures.lock().unwrap().entry(why).or_default() += 1;
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn call(
    client: &HttpClient,
    addr: SocketAddr,
    key: &str,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    let request = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

/// The gateway's counters of retries, failovers and stream errors, from `/metrics`.
async fn metrics(client: &HttpClient, addr: SocketAddr) -> String {
    let Ok(request) = http::Request::get(format!("http://{addr}/metrics"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Full::new(Bytes::new()))
    else {
        return String::new();
    };
    let Ok(response) = client.request(request).await else {
        return String::new();
    };
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter(|line| {
            [
                "seawall_gateway_upstream_requests_total",
                "seawall_gateway_retries_total",
                "seawall_gateway_failovers_total",
                "seawall_gateway_stream_errors_total",
                "seawall_gateway_requests_total",
            ]
            .iter()
            .any(|name| line.starts_with(name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `/proc/<pid>/status` VmRSS in kB and the number of open file descriptors.
fn process_sample(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

async fn run(options: Options) -> Result<bool, String> {
    let sim = Simulator::builder()
        .seed(7)
        .reply_tokens(60)
        .chunk_interval(Duration::from_millis(2))
        .log_capacity(1_000)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("seawall-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("gateway.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(config(&sim).as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut env = vec![
        (KEY_ENV.to_owned(), "sk-upstream".to_owned()),
        ("SEAWALL_SOAK_ADMIN".to_owned(), ADMIN.to_owned()),
    ];
    for (i, key) in KEYS.iter().enumerate() {
        env.push((format!("SEAWALL_SOAK_KEY_{i}"), (*key).to_owned()));
    }
    let (mut child, addr) = harness::spawn_gateway(&path, &env)?;
    let pid = child.id();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // The whole answer to each prompt, before any fault.
    let mut expected = Vec::with_capacity(PROMPTS);
    for prompt in 0..PROMPTS {
        let (status, bytes) = call(&client, addr, KEYS[0], body(prompt, false)).await?;
        if status != 200 {
            return Err(format!(
                "warm-up call answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        expected.push(answer(false, &bytes).map_err(|e| e.to_owned())?);
    }
    let expected = Arc::new(expected);

    let total = Duration::from_secs_f64(options.minutes * 60.0);
    let outage_from = total.mul_f64(0.3);
    sim.set_faults(
        Provider::OpenAi,
        faults(11, Some((outage_from, outage_from + options.outage))),
    );
    sim.set_faults(Provider::Anthropic, faults(23, None));

    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + total;
    let mut workers = Vec::new();
    for worker in 0..options.concurrency {
        let (client, counts, expected) = (client.clone(), counts.clone(), expected.clone());
        workers.push(tokio::spawn(async move {
            let mut n = worker;
            while Instant::now() < end {
                n += options.concurrency;
                let prompt = n % PROMPTS;
                let stream = n % 2 == 0;
                let key = KEYS[n % KEYS.len()];
                counts.calls.fetch_add(1, Relaxed);
                let started = Instant::now();
                let result = call(&client, addr, key, body(prompt, stream)).await;
                let took = started.elapsed();
                counts.latencies.lock().unwrap().push(took);
                if took > DEADLINE + OVERRUN {
                    counts.overruns.fetch_add(1, Relaxed);
                }
                match result {
                    Ok((200, bytes)) => match answer(stream, &bytes) {
                        Ok(text) if text == expected[prompt] => {
                            counts.succeeded.fetch_add(1, Relaxed);
                        }
                        Ok(_) | Err("truncated") => {
                            counts.truncated_as_success.fetch_add(1, Relaxed);
                        }
                        Err(why) => counts.failed(why.to_owned()),
                    },
                    Ok((status, _)) => counts.failed(format!("status {status}")),
                    Err(error) => counts.failed(format!("transport: {error}")),
                }
            }
        }));
    }

    // RSS and open descriptors every 10 s.
    let mut samples = Vec::new();
    while Instant::now() < end {
        let (rss, fds) = process_sample(pid);
        let at = start.elapsed().as_secs();
        println!(
            "t={at:>4}s rss={rss} kB fds={fds} calls={}",
            counts.calls.load(Relaxed)
        );
        samples.push((at, rss, fds));
        tokio::time::sleep(
            Duration::from_secs(10).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    for worker in workers {
        let _ = worker.await;
    }
    let (rss, fds) = process_sample(pid);
    samples.push((start.elapsed().as_secs(), rss, fds));
    // What the faults made the gateway do.
    let metrics = metrics(&client, addr).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let calls = counts.calls.load(Relaxed);
    let succeeded = counts.succeeded.load(Relaxed);
    let truncated = counts.truncated_as_success.load(Relaxed);
    let overruns = counts.overruns.load(Relaxed);
    let mut latencies = counts.latencies.lock().unwrap().clone();
    latencies.sort();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    // Growth: the last third's peak against the peak of the first third after warm-up
    // (the first minute, or a tenth of the run).
    let warm = (total.as_secs() / 10).max(60).min(total.as_secs() / 2);
    let after: Vec<_> = samples.iter().filter(|s| s.0 >= warm).collect();
    let third = (after.len() / 3).max(1);
    let early = after.iter().take(third);
    let late = after.iter().rev().take(third);
    let peak = |it: &mut dyn Iterator<Item = &&(u64, u64, usize)>,
                f: fn(&(u64, u64, usize)) -> u64| {
        it.map(|s| f(s)).max().unwrap_or(0)
    };
    let (early_rss, late_rss) = (
        peak(&mut early.clone(), |s| s.1),
        peak(&mut late.clone(), |s| s.1),
    );
    let (early_fds, late_fds) = (
        peak(&mut early.clone(), |s| s.2 as u64),
        peak(&mut late.clone(), |s| s.2 as u64),
    );
    let growth = |a: u64, b: u64| {
        if a == 0 {
            0.0
        } else {
            (b as f64 / a as f64 - 1.0) * 100.0
        }
    };
    let success = succeeded as f64 * 100.0 / calls.max(1) as f64;
    println!(
        "\n{:.1} minutes, {} clients, outage {} s: {calls} calls, {succeeded} whole answers \
         ({success:.3} %), truncated answers reported as complete: {truncated}, deadline \
         overruns > 50 ms: {overruns}, p50 {:?}, p99 {:?}, max {:?}",
        options.minutes,
        options.concurrency,
        options.outage.as_secs(),
        quantile(0.5),
        quantile(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    println!(
        "gateway RSS {early_rss} → {late_rss} kB ({:+.1} %), open fds {early_fds} → {late_fds} ({:+.1} %) \
         (peaks of the first and last third after {warm} s)",
        growth(early_rss, late_rss),
        growth(early_fds, late_fds),
    );
    let failures = counts.failures.lock().unwrap();
    let mut failures: Vec<_> = failures.iter().collect();
    failures.sort_by(|a, b| b.1.cmp(a.1));
    println!("failures: {failures:?}");
    println!("gateway: {metrics}");

    let mut ok = true;
    for (broken, what) in [
        (success < 99.9, "success below 99.9 %"),
        (truncated > 0, "a truncated answer was reported as complete"),
        (
            overruns > 0,
            "a call outlived its deadline by more than 50 ms",
        ),
        (
            growth(early_rss, late_rss) > 5.0,
            "RSS grew by more than 5 %",
        ),
        (
            late_fds > early_fds + early_fds / 20 + 2,
            "open descriptors grew by more than 5 %",
        ),
    ] {
        if broken {
            println!("BOUND BROKEN: {what}");
            ok = false;
        }
    }
    Ok(ok)
}

fn main() -> ExitCode {
    harness::main("seawall-soak", parse_options, run)
}
