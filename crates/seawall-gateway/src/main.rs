//! `seawall-gateway [--listen ADDR] [--config FILE]`: the OpenAI-compatible gateway.
//!
//! Without `--config` it starts an in-process simulator as the upstream of the `demo`
//! model group.

use std::net::SocketAddr;
use std::process::ExitCode;

use seawall_gateway::telemetry::Telemetry;
use seawall_gateway::{Config, Gateway, GatewayHandle};

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

    // SIGHUP re-reads the config file; SIGTERM or Ctrl-C drains and stops.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut hangups = Hangups::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = hangups.next() => reload(&handle, config_path.as_deref()).await,
        }
    }
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

/// Re-reads the config file and puts it in force; on any error the running config stays,
/// and the error (which names a setting, never a key's value) is logged.
async fn reload(handle: &GatewayHandle, path: Option<&str>) {
    let Some(path) = path else {
        eprintln!("seawall-gateway: SIGHUP ignored: demo mode has no config file to reload");
        return;
    };
    let config = match std::fs::read_to_string(path) {
        Ok(text) => Config::from_toml(&text).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let reloaded = match config {
        Ok(config) => handle.reload(config).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match reloaded {
        Ok(reloaded) => {
            println!("seawall-gateway: config reloaded from {path}");
            for section in reloaded.ignored {
                eprintln!(
                    "seawall-gateway: {section} changed in {path}; it changes only with a \
                     restart, so it is kept as started"
                );
            }
        }
        Err(error) => eprintln!(
            "seawall-gateway: config reload from {path} refused, the running config stays: {error}"
        ),
    }
}

/// The SIGHUPs the process receives (none where there are no such signals).
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn new() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// The next SIGHUP; never, without them.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending::<()>().await;
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
