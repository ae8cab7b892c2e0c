"""What the gateway's official-SDK scripts share.

Each script (openai_sdk.py, openai_budget.py, anthropic_sdk.py, openai_responses_sdk.py)
declares its gateway configuration and its scenarios and hands them to `main`, which starts
the simulator and gateway binaries, runs every scenario from a reset simulator, prints an
"ok" or "FAIL" line per scenario and "N passed, M failed" last, exits non-zero on any
failure, and stops every process it started whatever happens (a scenario failing, a binary
exiting early, Ctrl-C, SIGTERM).

The scripts run as `python crates/seawall-gateway/sdk/<script>.py ...`: Python puts the
script's own directory first on the import path, so a plain `import harness` finds this file.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import urllib.request

# The providers the simulator serves; a call to any of them counts as sent upstream.
PROVIDERS = ("openai", "anthropic", "gemini")

GATEWAY_LISTENING = "seawall-gateway listening on "
# Printed by the gateway in demo mode (no --config), whose simulator runs in-process.
DEMO_SIMULATOR_ADMIN = "simulator admin "


def expect(cond, what):
    """Fails the scenario with `what` unless `cond` holds."""
    if not cond:
        raise AssertionError(what)


def raises(exception, call):
    """The `exception` that `call()` raises; fails the scenario if it raises none."""
    try:
        call()
    except exception as e:
        return e
    raise AssertionError(f"no {exception.__name__}")


def scenario(name):
    """Names a scenario: a function of the running `Gateway` that raises on failure."""
    def named(fn):
        fn.scenario = name
        return fn
    return named


class Processes(contextlib.ExitStack):
    """The child processes, temporary directories and servers of one run, released in reverse
    order when the `with` block ends, however it ends."""

    def spawn(self, args, env=None):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        self.callback(stop_process, proc)
        return proc

    def temp_dir(self):
        return self.enter_context(tempfile.TemporaryDirectory())


def stop_process(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_simulator(processes, binary):
    """Starts the simulator binary on a free port: its URLs by name (provider names, `admin`)."""
    proc = processes.spawn([binary, "--listen", "127.0.0.1:0"])
    urls = {}
    while "admin" not in urls:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("simulator exited before printing its URLs")
        name, url = line.split()
        urls[name] = url
    return urls


class Gateway:
    """A running gateway: its base URL, the admin endpoint of the simulator behind it, and
    the lines the gateway has written to stdout so far (its logs)."""

    def __init__(self, proc, base, admin):
        self.base = base
        self.admin = admin
        self.log = []

        # Drained as it comes, so the pipe never fills and blocks the gateway.
        def drain():
            for line in proc.stdout:
                self.log.append(line)
        threading.Thread(target=drain, daemon=True).start()

    def sim(self, method, path, body=None):
        """One call to the simulator's admin endpoint: its JSON answer, None if empty."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def reset(self):
        self.sim("POST", "/reset")

    def fail(self, provider, fault):
        """Every call to `provider` meets `fault` until the next reset."""
        self.sim("PUT", f"/faults/{provider}", [{"fault": fault}])

    def logged(self, provider):
        """The request bodies `provider` received since the last reset, parsed."""
        return [json.loads(e["body"]) for e in self.sim("GET", f"/log?provider={provider}")]

    def upstream_calls(self):
        return sum(len(self.sim("GET", f"/log?provider={p}")) for p in PROVIDERS)


def launch(processes, gateway_binary, sim_binary=None, config="", env=None, gateway=Gateway,
           **values):
    """Starts the gateway on a free port and returns it as a `gateway` (Gateway or a subclass).

    Without `sim_binary` the gateway runs in demo mode, its simulator in-process. With it, the
    simulator binary starts first and the gateway reads `config`, a TOML template filled with
    the simulator's URLs by provider name (`{openai}`, `{anthropic}`, ...) and `values`; `env`
    adds to the gateway's environment (the keys the config names).
    """
    args = [gateway_binary]
    admin = None
    if sim_binary is not None:
        urls = start_simulator(processes, sim_binary)
        admin = urls["admin"]
        path = os.path.join(processes.temp_dir(), "gateway.toml")
        with open(path, "w") as f:
            f.write(config.format(**urls, **values))
        args += ["--config", path]
    args += ["--listen", "127.0.0.1:0"]
    proc = processes.spawn(args, env=dict(os.environ, **(env or {})))
    base = None
    while base is None or admin is None:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("gateway exited before printing its addresses")
        if line.startswith(GATEWAY_LISTENING):
            base = line.split()[-1]
        elif admin is None and line.startswith(DEMO_SIMULATOR_ADMIN):
            admin = line.split()[-1]
    return gateway(proc, base, admin)


def run(gw, scenarios):
    """Runs `scenarios` in order, each from a reset simulator, reporting each as it ends; a
    failure is reported and the next scenario runs. Returns (passed, failed)."""
    failed = 0
    for fn in scenarios:
        gw.reset()
        try:
            fn(gw)
            print(f"ok    {fn.scenario}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and carry on
            failed += 1
            print(f"FAIL  {fn.scenario}: {e!r}", flush=True)
            traceback.print_exc()
    return len(scenarios) - failed, failed


def stop_on_sigterm(processes):
    """On SIGTERM (a CI timeout, say), stops `processes` and exits 128 + 15.

    Python's default would exit without unwinding, leaving the children running; raising
    SystemExit from the handler is not enough either, as a library may catch and wrap it
    (pydantic does, when the signal lands while it builds a schema).
    """
    def stop_and_exit(signum, frame):
        processes.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, stop_and_exit)


def main(usage, binaries, start, scenarios):
    """A script's whole run.

    Expects `binaries` paths on the command line (else exits with `usage`), starts the
    gateway with `start(processes, *paths)`, runs `scenarios`, stops everything, prints
    "N passed, M failed" and exits 1 if any failed.
    """
    paths = sys.argv[1:]
    if len(paths) != binaries:
        raise SystemExit(usage)
    with Processes() as processes:
        stop_on_sigterm(processes)
        passed, failed = run(start(processes, *paths), scenarios)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
