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
import threading
import time

import openai

import harness
from harness import expect, scenario

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


def start_receiver(processes):
    """The alert webhook's receiver, stopped with the run's processes: its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    processes.callback(server.server_close)
    processes.callback(server.shutdown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/alerts"


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


class BudgetGateway(harness.Gateway):
    """The gateway with the budget config, and its access log."""

    def access_lines(self):
        """The access log's lines so far (the gateway logs JSON, one line per call)."""
        lines = []
        for line in list(self.log):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("target") == "seawall_gateway::access":
                lines.append(entry)
        return lines


def start(processes, gateway_binary, sim_binary):
    return harness.launch(processes, gateway_binary, sim_binary, CONFIG,
                          env=dict(SIM_KEY="sk-sim", SEAWALL_TEAM_KEY=KEY, SEAWALL_ADMIN=ADMIN),
                          gateway=BudgetGateway, webhook=start_receiver(processes))


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


if __name__ == "__main__":
    harness.main(__doc__, 2, start, [spending, webhook, access_log])
