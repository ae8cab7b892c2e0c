//! `seawall-gateway [--listen ADDR] [--config FILE]`: the OpenAI-compatible gateway.
//!
//! Without `--config` it starts an in-process simulator as the upstream of the `demo`
//! model group.

use std::net::SocketAddr;
use std::process::ExitCode;

use seawall_gateway::telemetry::Telemetry;
use seawall_gateway::{Config, Gateway};

/// Many small, short-lived buffers per request: mimalloc is cheaper than the system
/// allocator for that (as measured for the simulator, see its README).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> &'static str {
    "usage: seawall-gateway [--listen 127.0.0.1:8080] [--config gateway.toml]"
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seawall-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut listen: Option<SocketAddr> = None;
    let mut config_path: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().ok_or(usage())?;
                listen = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--listen {value}: {e}"))?,
                );
            }
            "--config" => config_path = Some(args.next().ok_or(usage())?),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage()).into()),
        }
    }

    let config = match &config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            Some(Config::from_toml(&text)?)
        }
        None => None,
    };
    // `[telemetry]`: the trace exporter, when an endpoint is set (nothing otherwise).
    let telemetry = match &config {
        Some(config) => {
            Telemetry::from_config(&config.telemetry, &|name| std::env::var(name).ok())?
        }
        None => None,
    };
    // An access line per call and the layers' events, as JSON lines on stdout; with
    // telemetry, the spans to the collector too.
    let _log = seawall_gateway::access::init_from_env_with(telemetry.as_ref());

    // One server thread per core unless the config says otherwise: each with its own
    // runtime and upstream pool, so a request never changes threads.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (gateway, demo) = match config {
        Some(config) => {
            let threads = config.server.threads.unwrap_or(cores);
            (Gateway::builder(config).threads(threads).build()?, None)
        }
        None => demo::start(cores).await?,
    };
    let gateway = match listen {
        Some(addr) => gateway.listen(addr),
        None => gateway,
    };
    let handle = gateway.serve().await?;
    let addr = handle.local_addr();
    println!("seawall-gateway listening on http://{addr}");
    if let Some(simulator) = &demo {
        demo::announce(simulator, addr);
    }

    shutdown_signal().await;
    println!("seawall-gateway: shutting down, draining in-flight requests");
    handle.shutdown().await;
    if let Some(telemetry) = telemetry {
        // The spans still queued go to the collector (a blocking wait, off the runtime).
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    Ok(())
}

/// Demo mode: with no config, an in-process simulator is the upstream.
#[cfg(feature = "demo")]
mod demo {
    use std::net::SocketAddr;

    use seawall_gateway::{Demo, Gateway};
    use seawall_sim::Simulator;

    pub(crate) async fn start(
        threads: usize,
    ) -> Result<(Gateway, Option<Simulator>), Box<dyn std::error::Error + Send + Sync>> {
        let demo = Demo::start(|_| {}, |b| b.threads(threads)).await?;
        Ok((demo.gateway, Some(demo.simulator)))
    }

    pub(crate) fn announce(simulator: &Simulator, addr: SocketAddr) {
        println!(
            "demo mode: no --config, so the upstream is an in-process simulator at http://{}",
            simulator.addr()
        );
        println!("simulator admin {}", simulator.admin_url());
        println!(
            "try: curl -s http://{addr}/v1/chat/completions -H 'content-type: application/json' \
             -d '{{\"model\":\"demo\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'"
        );
    }
}

/// Built without demo mode: a config is required.
#[cfg(not(feature = "demo"))]
mod demo {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use seawall_gateway::Gateway;

    pub(crate) async fn start(
        _threads: usize,
    ) -> Result<(Gateway, Option<Infallible>), Box<dyn std::error::Error + Send + Sync>> {
        Err("no --config given, and this build has no demo mode (cargo feature `demo`)".into())
    }

    pub(crate) fn announce(simulator: &Infallible, _addr: SocketAddr) {
        match *simulator {}
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
