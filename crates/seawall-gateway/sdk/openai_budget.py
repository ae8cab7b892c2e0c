"""The official `openai` Python SDK against seawall-gateway's spending controls.

Starts the simulator binary and the gateway binary with a config that gives a key a dollar
budget, a downgrade group, an alert on every call and a webhook (a receiver in this
process), then checks what the SDK sees: the cost and budget headers, the `seawall` field
the SDK keeps aside, the downgrade to the cheaper group, the 429 `budget_exceeded` with its
retry-after once the budget is spent (raised as RateLimitError, not retried by the SDK), and
the alert the webhook received.

usage: python openai_budget.py PATH/TO/seawall-gateway PATH/TO/seawall-sim
Exits non-zero on any failure; the last line is "N passed, M failed".
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import openai

RESULTS = []
KEY = "sk-team-budget"
ADMIN = "admin-budget"


class Receiver(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start_receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/alerts"


def start_sim(binary):
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    urls = {}
    while "admin" not in urls:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("simulator exited before printing its URLs")
        name, url = line.split()
        urls[name] = url
    return proc, urls


CONFIG = """
[server]
admin_key_env = "SEAWALL_ADMIN"

[[targets]]
name = "smart"
provider = "openai"
model = "gpt-4o"
base_url = "{openai}"
api_key_env = "SIM_KEY"

[[targets]]
name = "mini"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{openai}"
api_key_env = "SIM_KEY"

[[groups]]
name = "smart"
targets = ["smart"]

[[groups]]
name = "cheap"
targets = ["mini"]

[[keys]]
name = "team"
key_env = "SEAWALL_TEAM_KEY"
# A gpt-4o call reserves about $0.0100 (1,000 output tokens): one fits, then cheaper ones.
budgets = [{{ window = "day", usd = 0.0101 }}]

[budget]
default_output_tokens = 1000
downgrade_group = "cheap"
alert_webhook = "{webhook}"

[[alerts]]
call_usd = 0.0000001
"""


class Gateway:
    def __init__(self, binary, sim_binary):
        self.receiver, webhook = start_receiver()
        self.sim, urls = start_sim(sim_binary)
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "gateway.toml")
        with open(path, "w") as f:
            f.write(CONFIG.format(openai=urls["openai"], webhook=webhook))
        env = dict(os.environ, SIM_KEY="sk-sim", SEAWALL_TEAM_KEY=KEY, SEAWALL_ADMIN=ADMIN)
        self.proc = subprocess.Popen([binary, "--config", path, "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.base = None
        while self.base is None:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("gateway exited before printing its address")
            if line.startswith("seawall-gateway listening on "):
                self.base = line.split()[-1]
        # The gateway's log lines (JSON, one per call): kept for the checks, and drained so
        # the pipe never fills.
        self.log = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stdout), daemon=True).start()

    def access_lines(self):
        lines = []
        for line in list(self.log):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("target") == "seawall_gateway::access":
                lines.append(entry)
        return lines

    def stop(self):
        for proc in (self.proc, self.sim):
            proc.terminate()
            proc.wait(timeout=10)
        self.receiver.shutdown()
        self.dir.cleanup()


def scenario(name):
    def wrap(fn):
        def run(gw):
            try:
                fn(gw)
                RESULTS.append((name, None))
            except Exception:
                RESULTS.append((name, traceback.format_exc()))
        run.name = name
        return run
    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


MESSAGES = [{"role": "user", "content": "hello"}]


@scenario("cost and budget headers, the seawall field, then a downgrade, then 429")
def spending(gw):
    # Default max_retries: a spent budget must not be retried by the SDK.
    client = openai.OpenAI(base_url=gw.base + "/v1", api_key=KEY)

    raw = client.chat.completions.with_raw_response.create(model="smart", messages=MESSAGES)
    first = raw.parse()
    cost = float(raw.headers["x-seawall-cost-usd"])
    expect(cost > 0, f"cost header {cost}")
    expect(first.model_extra["seawall"]["cost_usd"] == cost, f"{first.model_extra}")
    left = float(raw.headers["x-seawall-budget-remaining-usd"])
    expect(abs(left - (0.0101 - cost)) < 1e-9, f"remaining {left}")
    expect(int(raw.headers["x-seawall-budget-reset"]) > time.time(), "reset in the future")
    expect(first.model.startswith("gpt-4o") and "mini" not in first.model, first.model)

    raw = client.chat.completions.with_raw_response.create(model="smart", messages=MESSAGES)
    second = raw.parse()
    expect(raw.headers.get("x-seawall-downgraded-from") == "smart", dict(raw.headers))
    expect("mini" in second.model, second.model)

    # 20,000 output tokens reserve $0.012 even on gpt-4o-mini: more than is left anywhere.
    # A 429 the SDK does not retry (it honours x-should-retry: false).
    started = time.monotonic()
    try:
        client.chat.completions.create(model="smart", messages=MESSAGES, max_tokens=20_000)
        raise AssertionError("the call was sent")
    except openai.RateLimitError as e:
        body = e.body
        expect(body["code"] == "budget_exceeded", f"{body}")
        expect(body["type"] == "insufficient_quota", f"{body}")
        expect("key:team:day:usd" in body["message"], body["message"])
        retry_after = int(e.response.headers["retry-after"])
        expect(1 <= retry_after <= 86_400, f"retry-after {retry_after}")
        expect(time.monotonic() - started < 2, "the SDK waited: it retried the refusal")


@scenario("the webhook receives the alerts")
def webhook(gw):
    deadline = time.monotonic() + 5
    while not Receiver.bodies and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(Receiver.bodies, "no alert arrived")
    alert = Receiver.bodies[0]
    expect(alert["kind"] == "expensive_call", f"{alert}")
    expect(alert["cost_usd"] > 0, f"{alert}")


@scenario("the access log has a line per call, with the key's name and never the key")
def access_log(gw):
    # Lines leave through the gateway's writer thread: wait for the refused call's too.
    deadline = time.monotonic() + 5
    while (not any(line["status"] == 429 for line in gw.access_lines())
           and time.monotonic() < deadline):
        time.sleep(0.05)
    lines = gw.access_lines()
    expect(lines, "no access line")
    expect(all(line["path"] == "/v1/chat/completions" for line in lines), f"{lines}")
    expect(any(line["status"] == 200 and line["key"] == "team" for line in lines), f"{lines}")
    expect(any(line["status"] == 429 for line in lines), f"{lines}")
    expect(not any(KEY in line for line in gw.log), "the key appears in the log")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    gw = Gateway(sys.argv[1], sys.argv[2])
    try:
        for run in (spending, webhook, access_log):
            run(gw)
    finally:
        gw.stop()
    failed = [(name, error) for name, error in RESULTS if error]
    for name, error in RESULTS:
        print(("FAIL " if error else "ok   ") + name)
        if error:
            print(error)
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
