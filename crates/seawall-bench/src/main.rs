//! `seawall-load`: the gateway's load benchmark, one command, nothing installed.
//!
//! ```text
//! cargo run --release -p seawall-bench --bin seawall-load -- \
//!     [--duration-ms 5000] [--connections 32] [--streams 1000] \
//!     [--chunk-interval-ms 50] [--stream-chunks 40] [--gateway-threads 2] [--sim-threads 1] \
//!     [--gateway-runtime per-thread|work-stealing] [--no-governed] [--no-redis] [--no-access-log] \
//!     [--sim-listen 127.0.0.1:0] \
//!     [--compare URL [--compare-header 'Name: value']... [--compare-model gpt-4o-mini]]
//! ```
//!
//! This process starts the simulator (zero latency) on its own single-threaded runtime, a
//! second simulator that streams slowly (one chunk per `--chunk-interval-ms`) for the
//! open-stream phase in a child process of its own (this binary with `--slow-sim`, so the
//! gateway's RSS with the streams open is measured alone), the gateway with the full stack on
//! (deadline, failover, retry, breaker, rate limit with quotas that never bind, attempt
//! timeouts) on server threads of its own as the binary runs it (or one work-stealing
//! runtime), and a bare pass-through proxy built from the same HTTP plumbing, the floor under
//! the gateway's cost. The load comes from a child process (this binary re-executed with
//! `--loadgen JSON`), so CPU read here from `/proc/self/task/*/schedstat` is the servers'
//! alone, split by thread name into simulator, gateway and proxy. Everything binds
//! 127.0.0.1:0; every phase is bounded in time.
//!
//! Governed phases run the same load through a second gateway with virtual keys, a request
//! limit, a dollar budget, caps, prices, metrics and the access log on (written as the
//! binary writes it, through a writer thread, here to a sink), then once more with that
//! state in a throwaway `redis-server` (when one is on `PATH`). `--compare URL` puts any
//! OpenAI-compatible gateway in the same run: point it at the zero-latency simulator
//! (`--sim-listen` fixes its address; its OpenAI base URL is printed at the start) and it
//! is measured beside seawall (its CPU is not: it is another process).

mod compare;
mod gateways;
mod histogram;
mod loadgen;
mod proxy;

use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use compare::CompareTarget;
use loadgen::{Job, LoadReport, StreamReport};
use proxy::{BareProxy, PROXY_THREAD};
use seawall_gateway::{Config, Gateway, GatewayHandle};
use seawall_sim::Simulator;

/// The same allocator as the shipped gateway and simulator binaries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Thread-name prefixes, so CPU can be split per runtime.
const SIM_THREAD: &str = "seawall-sim";
const GATEWAY_THREAD: &str = "seawall-gw";
/// The longest a child may run beyond its planned duration before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone)]
struct Options {
    duration_ms: u64,
    connections: usize,
    streams: usize,
    chunk_interval_ms: u64,
    stream_chunks: u32,
    gateway_threads: usize,
    sim_threads: usize,
    /// The gateway's server threads each on a runtime of their own (what the binary does),
    /// or one work-stealing runtime with that many workers.
    work_stealing: bool,
    /// The governed phases (and, when `redis-server` is on `PATH`, the Redis ones).
    governed: bool,
    redis: bool,
    /// The governed phases write the access log (what the cost of one line is measured by).
    access_log: bool,
    /// Where the zero-latency simulator listens.
    sim_listen: SocketAddr,
    /// Another gateway to measure in the same run.
    compare: Option<CompareTarget>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            duration_ms: 5_000,
            connections: 32,
            streams: 1_000,
            chunk_interval_ms: 50,
            stream_chunks: 40,
            gateway_threads: 2,
            sim_threads: 1,
            work_stealing: false,
            governed: true,
            redis: true,
            access_log: true,
            sim_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            compare: None,
        }
    }
}

const USAGE: &str = "usage: seawall-load [--duration-ms 5000] [--connections 32] [--streams 1000] \
[--chunk-interval-ms 50] [--stream-chunks 40] [--gateway-threads 2] [--sim-threads 1] \
[--gateway-runtime per-thread|work-stealing] [--no-governed] [--no-redis] [--no-access-log] \
[--sim-listen 127.0.0.1:0] [--compare URL [--compare-header 'Name: value']... [--compare-model NAME]]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    let mut compare_headers = Vec::new();
    let mut compare_model = None;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--no-governed" => {
                options.governed = false;
                continue;
            }
            "--no-redis" => {
                options.redis = false;
                continue;
            }
            "--no-access-log" => {
                options.access_log = false;
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--compare" => {
                options.compare = Some(CompareTarget::parse(&value)?);
                continue;
            }
            "--compare-header" => {
                compare_headers.push(compare::parse_header(&value)?);
                continue;
            }
            "--compare-model" => {
                compare_model = Some(value);
                continue;
            }
            "--sim-listen" => {
                options.sim_listen = value
                    .parse()
                    .map_err(|_| format!("{flag}: not an address: {value}\n{USAGE}"))?;
                continue;
            }
            _ => {}
        }
        if flag == "--gateway-runtime" {
            options.work_stealing = match value.as_str() {
                "per-thread" => false,
                "work-stealing" => true,
                _ => return Err(format!("{flag}: per-thread or work-stealing\n{USAGE}")),
            };
            continue;
        }
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}\n{USAGE}"))
        };
        match flag.as_str() {
            "--duration-ms" => options.duration_ms = number()?.clamp(100, 600_000),
            "--connections" => options.connections = number()?.clamp(1, 4_096) as usize,
            "--streams" => options.streams = number()?.clamp(1, 5_000) as usize,
            "--chunk-interval-ms" => options.chunk_interval_ms = number()?.clamp(1, 1_000),
            "--stream-chunks" => options.stream_chunks = number()?.clamp(2, 1_000) as u32,
            "--gateway-threads" => options.gateway_threads = number()?.clamp(1, 64) as usize,
            "--sim-threads" => options.sim_threads = number()?.clamp(1, 64) as usize,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    match &mut options.compare {
        Some(target) => {
            target.headers = compare_headers;
            if let Some(model) = compare_model {
                target.model = model;
            }
        }
        None if !compare_headers.is_empty() || compare_model.is_some() => {
            return Err(format!(
                "--compare-header and --compare-model need --compare\n{USAGE}"
            ));
        }
        None => {}
    }
    Ok(options)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--slow-sim") {
        return serve_slow_simulator(args.next(), args.next());
    }
    if first.as_deref() == Some("--loadgen") {
        let Some(job) = args
            .next()
            .and_then(|j| serde_json::from_str::<Job>(&j).ok())
        else {
            println!("seawall-load --loadgen: expected a job as JSON");
            return ExitCode::FAILURE;
        };
        return match loadgen::run(job) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                println!("seawall-load --loadgen: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            println!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match bench(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            println!("seawall-load: {error}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// CPU nanoseconds of this process's threads whose name starts with `prefix`
/// (`/proc/self/task/*/schedstat`, first field: time on the CPU).
fn cpu_ns(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// A field of `/proc/self/status` in kB (e.g. `VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> u64 {
    process_status_kb("self", field)
}

/// A field of `/proc/{process}/status` in kB.
fn process_status_kb(process: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// Runs one job in a child process; `during` is called every 20 ms while it runs (RSS
/// sampling). Returns the child's JSON report.
fn run_child(job: &Job, mut during: impl FnMut()) -> Result<String, BoxError> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--loadgen")
        .arg(serde_json::to_string(job)?)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_millis(job.duration_ms) + CHILD_GRACE;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Err("the load generator overran its time and was stopped".into());
        }
        during();
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        return Err(format!("load generator failed: {text}").into());
    }
    Ok(text)
}

/// A closed-loop phase with the servers' CPU measured around it.
#[derive(Debug, Clone)]
struct Measured {
    report: LoadReport,
    sim_cpu_ns: u64,
    gateway_cpu_ns: u64,
    proxy_cpu_ns: u64,
    load: String,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.report.requests as f64 / self.report.elapsed_s
    }
    fn per_request_us(&self, ns: u64) -> f64 {
        ns as f64 / self.report.requests.max(1) as f64 / 1_000.0
    }
}

fn closed_loop(job: &Job) -> Result<Measured, BoxError> {
    let (sim0, gw0, proxy0) = (
        cpu_ns(SIM_THREAD),
        cpu_ns(GATEWAY_THREAD),
        cpu_ns(PROXY_THREAD),
    );
    let report: LoadReport = serde_json::from_str(&run_child(job, || {})?)?;
    Ok(Measured {
        sim_cpu_ns: cpu_ns(SIM_THREAD) - sim0,
        gateway_cpu_ns: cpu_ns(GATEWAY_THREAD) - gw0,
        proxy_cpu_ns: cpu_ns(PROXY_THREAD) - proxy0,
        load: load_average(),
        report,
    })
}

/// A streaming phase with the peak RSS while the streams are open.
/// `process` is the `/proc` entry whose RSS is sampled (`self` or a pid).
fn stream_phase(job: &Job, process: &str) -> Result<(StreamReport, u64, u64, String), BoxError> {
    // Let the allocator return what the previous phase freed, so `before` is a settled base.
    std::thread::sleep(Duration::from_secs(1));
    let before = process_status_kb(process, "VmRSS");
    let mut peak = before;
    let report: StreamReport = serde_json::from_str(&run_child(job, || {
        peak = peak.max(process_status_kb(process, "VmRSS"));
    })?)?;
    Ok((report, before, peak, load_average()))
}

fn bench(options: &Options) -> Result<(), BoxError> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let started_load = load_average();
    let rss_empty = status_kb("VmRSS");

    // The simulators, each on its own dedicated single-threaded runtime(s).
    let fast = Simulator::builder()
        .listen(options.sim_listen)
        .first_token(Duration::ZERO)
        .chunk_interval(Duration::ZERO)
        .log_capacity(1)
        .start_threaded(options.sim_threads)?;
    let slow = SlowSimulator::spawn(options)?;
    std::thread::sleep(Duration::from_millis(200));
    let rss_sims = status_kb("VmRSS");

    // The gateway on server threads of its own (named `seawall-gw-N` by the gateway), or
    // on a work-stealing runtime whose workers are named alike; this thread only starts
    // and stops it.
    let runtime = if options.work_stealing {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.gateway_threads)
            .thread_name(GATEWAY_THREAD)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    let server_threads = if options.work_stealing {
        0
    } else {
        options.gateway_threads
    };
    let slow_url = format!("http://{}/openai/v1", slow.addr);
    let config = gateways::gateway_config(&fast, &slow_url)?;
    let handle = runtime.block_on(async {
        Gateway::builder(config)
            .env("SEAWALL_BENCH_KEY", "sk-bench")
            .threads(server_threads)
            .build()?
            .listen(any)
            .serve()
            .await
            .map_err(BoxError::from)
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let rss_idle = status_kb("VmRSS");
    // The floor: the same HTTP plumbing as the gateway with nothing of the gateway's own.
    let proxy = BareProxy::start(options.gateway_threads, fast.addr())?;

    let job = |addr: SocketAddr, path: &str, model: &str, stream: bool, connections: usize| Job {
        addr,
        host: addr.to_string(),
        path: path.to_owned(),
        headers: vec![("authorization".to_owned(), "Bearer sk-bench".to_owned())],
        model: model.to_owned(),
        stream,
        connections,
        duration_ms: options.duration_ms,
    };
    let direct = |connections, stream| {
        let addr = if stream { slow.addr } else { fast.addr() };
        job(
            addr,
            "/openai/v1/chat/completions",
            "gpt-4o-mini",
            stream,
            connections,
        )
    };
    let through = |connections, stream| {
        let model = if stream { "slow" } else { "fast" };
        job(
            handle.local_addr(),
            "/v1/chat/completions",
            model,
            stream,
            connections,
        )
    };

    println!(
        "seawall-load: {} ms per phase, {} connections, {} streams (one chunk per {} ms, {} chunks), gateway {} {}, simulator {} thread(s); load average at start {started_load}",
        options.duration_ms,
        options.connections,
        options.streams,
        options.chunk_interval_ms,
        options.stream_chunks,
        options.gateway_threads,
        if options.work_stealing {
            "workers of one work-stealing runtime"
        } else {
            "server threads, a runtime each"
        },
        options.sim_threads
    );
    println!(
        "zero-latency simulator: OpenAI base URL {}",
        fast.base_url(seawall_sim::Provider::OpenAi)
    );
    let bare = |connections| {
        job(
            proxy.addr(),
            "/openai/v1/chat/completions",
            "gpt-4o-mini",
            false,
            connections,
        )
    };
    let rate_direct = closed_loop(&direct(options.connections, false))?;
    let rate_gateway = closed_loop(&through(options.connections, false))?;
    let rate_proxy = closed_loop(&bare(options.connections))?;
    let one_direct = closed_loop(&direct(1, false))?;
    let one_gateway = closed_loop(&through(1, false))?;
    let one_proxy = closed_loop(&bare(1))?;
    drop(proxy);
    let governed = if options.governed {
        Some(governed_phases(
            options,
            &runtime,
            server_threads,
            &fast,
            &slow_url,
            &|addr| job(addr, "/v1/chat/completions", "fast", false, 0),
        )?)
    } else {
        None
    };
    let compared = match &options.compare {
        Some(target) => {
            let at = |connections| Job {
                addr: target.addr,
                host: target.host.clone(),
                path: target.path.clone(),
                headers: target.headers.clone(),
                model: target.model.clone(),
                stream: false,
                connections,
                duration_ms: options.duration_ms,
            };
            Some((closed_loop(&at(options.connections))?, closed_loop(&at(1))?))
        }
        None => None,
    };
    let rss_after_load = status_kb("VmRSS");
    let slow_pid = slow.child.id().to_string();
    let streams_direct = stream_phase(&direct(options.streams, true), &slow_pid)?;
    let streams_gateway = stream_phase(&through(options.streams, true), "self")?;
    let rss_hwm = status_kb("VmHWM");

    runtime.block_on(handle.shutdown());
    drop(runtime);
    drop(fast);
    slow.stop();

    print_table(
        options,
        [&rate_direct, &rate_gateway, &one_direct, &one_gateway],
        [&rate_proxy, &one_proxy],
        [&streams_direct, &streams_gateway],
        [rss_empty, rss_sims, rss_idle, rss_after_load, rss_hwm],
    );
    print_governed(
        options,
        [&rate_direct, &rate_gateway, &one_direct, &one_gateway],
        governed.as_ref(),
        compared.as_ref(),
    );
    Ok(())
}

/// The governed gateway's phases: without and (when `redis-server` is on `PATH`) with its
/// state in Redis; each a closed loop at `--connections` and one at 1 connection.
struct Governed {
    local: (Measured, Measured),
    redis: Option<(Measured, Measured)>,
    /// Why there is no Redis phase, when there is none.
    no_redis: Option<String>,
}

fn governed_phases(
    options: &Options,
    runtime: &tokio::runtime::Runtime,
    threads: usize,
    fast: &Simulator,
    slow_url: &str,
    job: &dyn Fn(SocketAddr) -> Job,
) -> Result<Governed, BoxError> {
    // The access log as the binary writes it: JSON lines through a lossy writer thread
    // (named so its CPU counts as the gateway's), here to a sink.
    let (writer, log_guard) =
        seawall_gateway::access::line_writer(std::io::sink(), &format!("{GATEWAY_THREAD}-log"))?;
    let filter = if options.access_log { "info" } else { "warn" };
    tracing::subscriber::set_global_default(seawall_gateway::access::subscriber(filter, writer))?;

    let run = |config: Config| -> Result<(Measured, Measured), BoxError> {
        let handle: GatewayHandle = runtime.block_on(async {
            Gateway::builder(config)
                .env("SEAWALL_BENCH_KEY", "sk-bench")
                .env(gateways::VIRTUAL_KEY_ENV, gateways::VIRTUAL_KEY)
                .threads(threads)
                .build()?
                .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
                .serve()
                .await
                .map_err(BoxError::from)
        })?;
        let keyed = |connections| {
            let mut job = job(handle.local_addr());
            job.headers = vec![(
                "authorization".to_owned(),
                format!("Bearer {}", gateways::VIRTUAL_KEY),
            )];
            job.connections = connections;
            job
        };
        let measured = (
            closed_loop(&keyed(options.connections))?,
            closed_loop(&keyed(1))?,
        );
        runtime.block_on(handle.shutdown());
        Ok(measured)
    };
    let local = run(gateways::governed_config(fast, slow_url, None)?)?;
    let (redis, no_redis) = if !options.redis {
        (None, Some("--no-redis".to_owned()))
    } else {
        match seawall_redis::testing::RedisServer::start() {
            Ok(server) => {
                let config = gateways::governed_config(fast, slow_url, Some(&server.url()))?;
                (Some(run(config)?), None)
            }
            Err(error) => (None, Some(format!("no redis-server: {error}"))),
        }
    };
    drop(log_guard);
    Ok(Governed {
        local,
        redis,
        no_redis,
    })
}

fn print_governed(
    options: &Options,
    [rate_direct, rate_gateway, one_direct, one_gateway]: [&Measured; 4],
    governed: Option<&Governed>,
    compared: Option<&(Measured, Measured)>,
) {
    let c = options.connections;
    let row = |name: &str, (rate, one): &(Measured, Measured), cpu: bool| {
        println!(
            "| {name} | {:.0} ({} errors) | {:.0} % | {:.0} % | {} | {:.1} / {:.1} µs (added {:.1} / {:.1} µs) | {} / {} |",
            rate.rate(),
            rate.report.errors + one.report.errors,
            100.0 * rate.rate() / rate_direct.rate().max(1.0),
            100.0 * rate.rate() / rate_gateway.rate().max(1.0) - 100.0,
            if cpu {
                format!("{:.1} µs", rate.per_request_us(rate.gateway_cpu_ns))
            } else {
                "(another process)".to_owned()
            },
            one.report.p50_us,
            one.report.p99_us,
            one.report.p50_us - one_direct.report.p50_us,
            one.report.p99_us - one_direct.report.p99_us,
            rate.load,
            one.load,
        );
    };
    if governed.is_none() && compared.is_none() {
        return;
    }
    println!();
    println!(
        "| gateway | requests/s, {c} connections | of direct | against seawall plain | gateway CPU per request | p50 / p99, 1 connection | load average (1 5 15 min) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let plain = (
        Measured {
            ..rate_gateway.clone()
        },
        Measured {
            ..one_gateway.clone()
        },
    );
    row("seawall, plain", &plain, true);
    if let Some(governed) = governed {
        row("seawall, governed", &governed.local, true);
        match (&governed.redis, &governed.no_redis) {
            (Some(redis), _) => row("seawall, governed, state in Redis", redis, true),
            (None, why) => println!(
                "| seawall, governed, state in Redis | not run: {} | | | | | |",
                why.as_deref().unwrap_or("")
            ),
        }
    }
    if let (Some(compared), Some(target)) = (compared, &options.compare) {
        row(
            &format!("compared: http://{}{}", target.host, target.path),
            compared,
            false,
        );
    }
}

fn print_table(
    options: &Options,
    [rate_direct, rate_gateway, one_direct, one_gateway]: [&Measured; 4],
    [rate_proxy, one_proxy]: [&Measured; 2],
    [streams_direct, streams_gateway]: [&(StreamReport, u64, u64, String); 2],
    [rss_empty, rss_sims, rss_idle, rss_after_load, rss_hwm]: [u64; 5],
) {
    let c = options.connections;
    println!();
    println!(
        "| measure | direct to the simulator | through the gateway | gateway / direct | load average (1 5 15 min) |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| requests/s, {c} connections | {:.0} ({} errors) | {:.0} ({} errors) | {:.0} % | {} / {} |",
        rate_direct.rate(),
        rate_direct.report.errors,
        rate_gateway.rate(),
        rate_gateway.report.errors,
        100.0 * rate_gateway.rate() / rate_direct.rate().max(1.0),
        rate_direct.load,
        rate_gateway.load
    );
    println!(
        "| latency p50 / p99, {c} connections | {:.0} / {:.0} µs | {:.0} / {:.0} µs | | |",
        rate_direct.report.p50_us,
        rate_direct.report.p99_us,
        rate_gateway.report.p50_us,
        rate_gateway.report.p99_us
    );
    println!(
        "| CPU per request, {c} connections: simulator / gateway | {:.1} / {:.1} µs | {:.1} / {:.1} µs | | |",
        rate_direct.per_request_us(rate_direct.sim_cpu_ns),
        rate_direct.per_request_us(rate_direct.gateway_cpu_ns),
        rate_gateway.per_request_us(rate_gateway.sim_cpu_ns),
        rate_gateway.per_request_us(rate_gateway.gateway_cpu_ns),
    );
    println!(
        "| latency p50 / p99, 1 connection | {:.1} / {:.1} µs | {:.1} / {:.1} µs | added {:.1} / {:.1} µs | {} / {} |",
        one_direct.report.p50_us,
        one_direct.report.p99_us,
        one_gateway.report.p50_us,
        one_gateway.report.p99_us,
        one_gateway.report.p50_us - one_direct.report.p50_us,
        one_gateway.report.p99_us - one_direct.report.p99_us,
        one_direct.load,
        one_gateway.load
    );
    println!(
        "| requests/s, 1 connection; CPU per request simulator / gateway | {:.0}; {:.1} / {:.1} µs | {:.0}; {:.1} / {:.1} µs | | |",
        one_direct.rate(),
        one_direct.per_request_us(one_direct.sim_cpu_ns),
        one_direct.per_request_us(one_direct.gateway_cpu_ns),
        one_gateway.rate(),
        one_gateway.per_request_us(one_gateway.sim_cpu_ns),
        one_gateway.per_request_us(one_gateway.gateway_cpu_ns),
    );
    println!(
        "| the floor: a bare pass-through proxy (same server, client and threads; no JSON, no layers): requests/s at {c} connections; CPU per request simulator / proxy; p50 / p99 at 1 connection | {:.0} ({} errors); {:.1} / {:.1} µs; {:.1} / {:.1} µs (added {:.1} / {:.1} µs) | | | {} / {} |",
        rate_proxy.rate(),
        rate_proxy.report.errors + one_proxy.report.errors,
        rate_proxy.per_request_us(rate_proxy.sim_cpu_ns),
        rate_proxy.per_request_us(rate_proxy.proxy_cpu_ns),
        one_proxy.report.p50_us,
        one_proxy.report.p99_us,
        one_proxy.report.p50_us - one_direct.report.p50_us,
        one_proxy.report.p99_us - one_direct.report.p99_us,
        rate_proxy.load,
        one_proxy.load
    );
    let (sd, sd_before, sd_peak, sd_load) = streams_direct;
    let (sg, sg_before, sg_peak, sg_load) = streams_gateway;
    println!(
        "| streams: completed / errors / most open at once | {} / {} / {} | {} / {} / {} | | {sd_load} / {sg_load} |",
        sd.completed, sd.errors, sd.peak_open, sg.completed, sg.errors, sg.peak_open
    );
    println!(
        "| streams: first chunk p50 / p99 | {:.0} / {:.0} µs | {:.0} / {:.0} µs | added {:.0} / {:.0} µs | |",
        sd.first_chunk_p50_us,
        sd.first_chunk_p99_us,
        sg.first_chunk_p50_us,
        sg.first_chunk_p99_us,
        sg.first_chunk_p50_us - sd.first_chunk_p50_us,
        sg.first_chunk_p99_us - sd.first_chunk_p99_us
    );
    println!(
        "| streams: gap between chunks mean / p50 / p99 | {:.0} / {:.0} / {:.0} µs | {:.0} / {:.0} / {:.0} µs | added per chunk {:.0} / {:.0} / {:.0} µs | |",
        sd.gap_mean_us,
        sd.gap_p50_us,
        sd.gap_p99_us,
        sg.gap_mean_us,
        sg.gap_p50_us,
        sg.gap_p99_us,
        sg.gap_mean_us - sd.gap_mean_us,
        sg.gap_p50_us - sd.gap_p50_us,
        sg.gap_p99_us - sd.gap_p99_us
    );
    println!(
        "| RSS with the streams open (before → peak): simulator process / gateway process | {} → {} | {} → {} | gateway added {} | |",
        mb(*sd_before),
        mb(*sd_peak),
        mb(*sg_before),
        mb(*sg_peak),
        mb(sg_peak.saturating_sub(*sg_before)),
    );
    println!();
    println!(
        "gateway process RSS (it also holds the zero-latency simulator): empty {}, simulator started {}, gateway started (idle) {} (gateway's share {}), after the request phases {}, peak (VmHWM) {}",
        mb(rss_empty),
        mb(rss_sims),
        mb(rss_idle),
        mb(rss_idle.saturating_sub(rss_sims)),
        mb(rss_after_load),
        mb(rss_hwm)
    );
}

/// The slowly streaming simulator in a child process (this binary with `--slow-sim`).
#[derive(Debug)]
struct SlowSimulator {
    child: std::process::Child,
    addr: SocketAddr,
}

impl SlowSimulator {
    fn spawn(options: &Options) -> Result<Self, BoxError> {
        use std::io::BufRead;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--slow-sim")
            .arg(options.chunk_interval_ms.to_string())
            .arg(options.stream_chunks.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            std::io::BufReader::new(stdout).read_line(&mut line)?;
        }
        match line.trim().parse() {
            Ok(addr) => Ok(Self { child, addr }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the slow simulator did not start: {line}").into())
            }
        }
    }

    /// Closing its stdin stops it; it is killed if it has not stopped within a second.
    fn stop(mut self) {
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--slow-sim CHUNK_INTERVAL_MS CHUNKS`: prints its address, serves until stdin closes.
fn serve_slow_simulator(interval: Option<String>, chunks: Option<String>) -> ExitCode {
    let interval = interval.and_then(|v| v.parse().ok()).unwrap_or(50);
    let chunks = chunks.and_then(|v| v.parse().ok()).unwrap_or(40);
    let started = Simulator::builder()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .first_token(Duration::ZERO)
        .chunk_interval(Duration::from_millis(interval))
        .reply_tokens(chunks)
        .log_capacity(1)
        .start_threaded(1);
    let Ok(simulator) = started else {
        println!("failed to start");
        return ExitCode::FAILURE;
    };
    println!("{}", simulator.addr());
    // Blocks until the parent closes the pipe or exits: the simulator stops with it.
    let mut sink = String::new();
    while matches!(std::io::stdin().read_line(&mut sink), Ok(n) if n > 0) {
        sink.clear();
    }
    drop(simulator);
    ExitCode::SUCCESS
}
