//! What the black-box runs (`seawall-quota`, `seawall-soak`) share: the gateway binary as a
//! child process, and a `main` on a two-thread runtime.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};

/// The `seawall-gateway` binary beside this one, started with `config` and `env`; returns
/// the process and the address it listens on, and keeps draining its output.
pub(crate) fn spawn_gateway(
    config: &std::path::Path,
    env: &[(String, String)],
) -> Result<(Child, SocketAddr), String> {
    let binary = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("seawall-gateway");
    let mut child = Command::new(&binary)
        .arg("--config")
        .arg(config)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(url) = line.strip_prefix("seawall-gateway listening on http://") {
            let addr = url.trim().parse().map_err(|e| format!("{url}: {e}"))?;
            // Keep draining its output so the pipe never fills.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, addr));
        }
    }
    Err("the gateway exited before listening".into())
}

/// Parses the options and runs `run` on a two-thread runtime: exit 2 on bad options, 1 when
/// the run fails or reports a broken bound.
pub(crate) fn main<O, F>(
    name: &str,
    parse: impl FnOnce() -> Result<O, String>,
    run: impl FnOnce(O) -> F,
) -> ExitCode
where
    F: Future<Output = Result<bool, String>>,
{
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}
