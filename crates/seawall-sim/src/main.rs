//! `seawall-sim --listen 127.0.0.1:PORT [--config FILE]`: runs the simulator and prints one
//! line per provider, `NAME BASE_URL`, once it is listening (port 0 picks a free port).

use std::io::Write;
use std::net::SocketAddr;

use seawall_sim::{Provider, SimConfig, Simulator};

/// The request path allocates many small, short-lived buffers; mimalloc cut the server's CPU
/// per request by about 15 % against glibc's allocator (see the crate README).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: seawall-sim [--listen 127.0.0.1:PORT] [--config FILE]";

fn parse_args() -> Result<(SocketAddr, SimConfig), String> {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = SimConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().ok_or("--listen needs an address")?;
                listen = value
                    .parse()
                    .map_err(|e| format!("invalid --listen {value:?}: {e}"))?;
            }
            "--config" => {
                let path = args.next().ok_or("--config needs a file")?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {path}: {e}"))?;
                config = SimConfig::from_toml(&text).map_err(|e| format!("{path}: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok((listen, config))
}

fn main() -> std::process::ExitCode {
    let (listen, config) = match parse_args() {
        Ok(v) => v,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "{message}");
            return std::process::ExitCode::from(2);
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sim = match Simulator::builder()
        .config(config)
        .listen(listen)
        .start_threaded(threads)
    {
        Ok(sim) => sim,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot listen on {listen}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    for p in Provider::ALL {
        let _ = writeln!(out, "{} {}", p.name(), sim.base_url(p));
    }
    let _ = writeln!(out, "admin {}", sim.admin_url());
    let _ = out.flush();
    drop(out);
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
