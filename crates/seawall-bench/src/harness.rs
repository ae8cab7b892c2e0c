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

/// One `--flag value` pair of the command line.
pub(crate) struct Flag<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a str,
    usage: &'a str,
}

impl Flag<'_> {
    /// The value, parsed.
    pub(crate) fn parse<T: std::str::FromStr>(&self) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.value.parse().map_err(|e| self.bad(&e))
    }

    /// An error naming the flag, its value and why.
    pub(crate) fn bad(&self, why: &dyn std::fmt::Display) -> String {
        format!("{} {}: {why}\n{}", self.name, self.value, self.usage)
    }

    /// The error for a flag the command does not know.
    pub(crate) fn unknown(&self) -> String {
        format!("unknown flag {}\n{}", self.name, self.usage)
    }
}

/// Applies each `--flag value` pair of the command line with `apply`.
pub(crate) fn flags(
    usage: &str,
    mut apply: impl FnMut(&Flag<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{name} needs a value\n{usage}"))?;
        apply(&Flag {
            name: &name,
            value: &value,
            usage,
        })?;
    }
    Ok(())
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
