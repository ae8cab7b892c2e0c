"""The official `openai` Python SDK against seawall-gateway, with the simulator behind it.

Starts the gateway binary in demo mode (no --config: an in-process simulator serves the
`demo` group's OpenAI, Anthropic and Gemini targets, in that order), scripts faults through
the simulator's admin endpoint, and checks what the SDK sees: answers after failover, the
model that answered, streams (usage chunk, in-band error), streams broken after their first
tokens and recovered (continued with a prefill, or restarted and matched) or ending in an
error when the restart diverges, exception classes when every target fails, and that the
SDK's own retries do not multiply the gateway's.

usage: python openai_sdk.py PATH/TO/seawall-gateway
Exits non-zero on any failure; the last line is "N passed, M failed".
"""
import urllib.request

import openai
# The Prometheus project's own OpenMetrics parser: strict, so /metrics is checked by the
# reader a scraper uses, not by string matching.
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import harness
from harness import expect, scenario


class DemoGateway(harness.Gateway):
    """The gateway in demo mode, and its /metrics."""

    def families(self):
        """/metrics, parsed: family name -> family."""
        with urllib.request.urlopen(self.base + "/metrics") as resp:
            expect(resp.headers["content-type"].startswith("application/openmetrics-text"),
                   resp.headers["content-type"])
            text = resp.read().decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    def metric(self, sample, **labels):
        """The sum of the samples named `sample` whose labels include `labels` (0 if none:
        a labelled counter appears with its first count)."""
        total = 0.0
        for family in self.families().values():
            for s in family.samples:
                if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total


def client(gw, max_retries=0):
    # max_retries=0: the gateway already retries and fails over; SDK retries on top would
    # multiply the attempts. The gateway also sends `x-should-retry: false` on errors it
    # produced after retrying, which the SDK honours even with its default max_retries=2.
    return openai.OpenAI(base_url=gw.base + "/v1", api_key="unused", max_retries=max_retries)


MESSAGES = [{"role": "user", "content": "hello"}]


@scenario("non-streaming answer from the primary")
def plain(gw):
    r = client(gw).chat.completions.with_raw_response.create(model="demo", messages=MESSAGES)
    c = r.parse()
    expect(c.model == "gpt-4o-mini", c.model)
    expect(c.choices[0].message.content, "empty content")
    expect(c.usage.total_tokens > 0, c.usage)
    expect(r.headers["x-seawall-target"] == "sim-openai", r.headers)


@scenario("streaming answer with the usage chunk")
def streaming(gw):
    chunks = list(client(gw).chat.completions.create(
        model="demo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expect(text, "no text")
    expect(chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0, chunks[-1])
    expect(all(c.model == "gpt-4o-mini" for c in chunks), "model")


@scenario("failover: answer from the second target, model reports it")
def failover(gw):
    gw.fail("openai", {"kind": "status", "status": 500})
    c = client(gw).chat.completions.create(model="demo", messages=MESSAGES)
    expect(c.model == "claude-3-5-haiku-latest", c.model)
    expect(c.choices[0].message.content, "empty content")


@scenario("failover while streaming: every chunk names the answering model")
def failover_stream(gw):
    gw.fail("openai", {"kind": "overloaded"})
    gw.fail("anthropic", {"kind": "status", "status": 503})
    chunks = list(client(gw).chat.completions.create(model="demo", messages=MESSAGES, stream=True))
    expect(chunks and all(c.model == "gemini-2.0-flash" for c in chunks), [c.model for c in chunks])
    expect(chunks[-1].choices[0].finish_reason == "stop", chunks[-1])


@scenario("all targets fail: InternalServerError, and SDK retries do not multiply ours")
def all_fail(gw):
    for p in ("openai", "anthropic", "gemini"):
        gw.fail(p, {"kind": "status", "status": 500})
    # Default max_retries=2: x-should-retry: false keeps the SDK from retrying.
    answered = dict(sample="seawall_gateway_requests_total", status="502")
    before = gw.metric(**answered)
    try:
        client(gw, max_retries=2).chat.completions.create(model="demo", messages=MESSAGES)
        raise AssertionError("no exception")
    except openai.InternalServerError as e:
        expect(e.status_code == 502, e.status_code)
        expect(e.body["code"] == "all_targets_failed", e.body)
        expect(gw.metric(**answered) - before == 1, "the SDK retried the gateway's 502")


@scenario("all targets fail while streaming: the error arrives before any chunk")
def all_fail_stream(gw):
    for p in ("openai", "anthropic", "gemini"):
        gw.fail(p, {"kind": "status", "status": 500})
    try:
        list(client(gw).chat.completions.create(model="demo", messages=MESSAGES, stream=True))
        raise AssertionError("no exception")
    except openai.InternalServerError as e:
        expect(e.status_code == 502, e.status_code)


@scenario("all targets rate limited: RateLimitError")
def all_limited(gw):
    for p in ("openai", "anthropic", "gemini"):
        gw.fail(p, {"kind": "status", "status": 429})
    try:
        client(gw).chat.completions.create(model="demo", messages=MESSAGES)
        raise AssertionError("no exception")
    except openai.RateLimitError as e:
        expect(e.status_code == 429, e.status_code)


@scenario("stream broken after the first token: APIError in-band, no clean end")
def broken_stream(gw):
    # On every target: whichever answers (a breaker may still be open from before) breaks.
    for p in ("openai", "anthropic", "gemini"):
        gw.fail(p, {"kind": "cut_after", "events": 4})
    text = ""
    try:
        for c in client(gw).chat.completions.create(model="demo", messages=MESSAGES, stream=True):
            text += (c.choices[0].delta.content or "") if c.choices else ""
        raise AssertionError("the stream ended cleanly with a partial answer")
    except openai.APIError as e:
        expect(not isinstance(e, openai.APIStatusError), type(e))
        expect(text, "no content before the break")


def stream_text(gw):
    text = ""
    for c in client(gw).chat.completions.create(model="demo", messages=MESSAGES, stream=True):
        text += (c.choices[0].delta.content or "") if c.choices else ""
    return text


@scenario("stream cut after the first tokens, prefill fallback: the whole answer exactly once")
def recovered_by_continuation(gw):
    full = stream_text(gw)
    gw.reset()
    gw.fail("openai", {"kind": "cut_after", "events": 4})
    expect(stream_text(gw) == full, "the recovered answer is the whole answer, once")
    expect(len(gw.logged("openai")) == 1, "the cut stream came from openai")
    continued = gw.logged("anthropic")
    expect(len(continued) == 1, continued)
    expect(continued[0]["messages"][-1]["role"] == "assistant",
           "anthropic was asked to continue the delivered text")


@scenario("stream cut, fallback refuses prefill: continued by a user message, the whole answer once")
def recovered_by_user_message(gw):
    full = stream_text(gw)
    gw.reset()
    gw.fail("openai", {"kind": "cut_after", "events": 4})
    gw.sim("PUT", "/reject_prefill/anthropic", True)
    expect(stream_text(gw) == full, "the continued answer is the whole answer, once")
    sent = gw.logged("anthropic")
    expect([m["messages"][-1]["role"] for m in sent] == ["assistant", "user"],
           "a refused prefill, then the cut answer and a user message asking to continue")
    expect(sent[1]["messages"][-2]["role"] == "assistant", sent[1]["messages"][-2:])


@scenario("stream cut, restart gives other text: APIError, never a clean end")
def divergent_restart(gw):
    full = stream_text(gw)
    gw.reset()
    gw.fail("openai", {"kind": "cut_after", "events": 4})
    # Anthropic is down; Gemini restarts (it answers a prefill afresh) and says something else.
    gw.fail("anthropic", {"kind": "status", "status": 500})
    gw.sim("PUT", "/seed/gemini", 987654321)
    text = ""
    try:
        for c in client(gw).chat.completions.create(model="demo", messages=MESSAGES, stream=True):
            text += (c.choices[0].delta.content or "") if c.choices else ""
        raise AssertionError("the stream ended cleanly")
    except openai.APIError as e:
        expect(not isinstance(e, openai.APIStatusError), type(e))
        expect(text and full.startswith(text) and text != full,
               f"only the delivered prefix reached the caller: {text!r}")


@scenario("bad input: NotFoundError and BadRequestError, nothing sent upstream")
def bad_input(gw):
    try:
        client(gw).chat.completions.create(model="no-such-group", messages=MESSAGES)
        raise AssertionError("no exception")
    except openai.NotFoundError as e:
        expect(e.body["code"] == "model_not_found", e.body)
    try:
        client(gw).chat.completions.create(model="demo", messages=[])
        raise AssertionError("no exception")
    except openai.BadRequestError as e:
        expect(e.body["param"] == "messages", e.body)
    expect(gw.upstream_calls() == 0, gw.upstream_calls())


@scenario("metrics: Prometheus's parser reads /metrics; p95 per model, 429s and 529s per target")
def metrics(gw):
    families = gw.families()
    expect(families["seawall_gateway_calls"].type == "counter", families["seawall_gateway_calls"])
    duration = families["seawall_gateway_call_duration_seconds"]
    expect(duration.type == "histogram", duration.type)
    buckets = sorted(
        ((float(s.labels["le"]), s.value) for s in duration.samples
         if s.name.endswith("_bucket") and s.labels.get("model") == "demo"),
        key=lambda b: b[0])
    expect(buckets and buckets[-1][0] == float("inf"), buckets)
    count = buckets[-1][1]
    expect(count >= 10, f"every call to demo is counted: {count}")
    p95 = next(le for le, cumulative in buckets if cumulative >= 0.95 * count)
    expect(0 < p95 < float("inf"), f"p95 of demo falls in a bucket: {p95}")
    overloaded = gw.metric("seawall_gateway_attempts_total", outcome="overloaded")
    limited = gw.metric("seawall_gateway_attempts_total", outcome="rate_limited")
    expect(overloaded >= 1 and limited >= 1, (overloaded, limited))
    expect(gw.metric("seawall_gateway_failovers_total") >= 2,
           gw.metric("seawall_gateway_failovers_total"))


def start(processes, gateway_binary):
    return harness.launch(processes, gateway_binary, gateway=DemoGateway)


if __name__ == "__main__":
    harness.main(__doc__, 1, start, [
        plain, streaming, recovered_by_continuation, recovered_by_user_message,
        divergent_restart, failover, failover_stream, all_fail, all_fail_stream, all_limited,
        broken_stream, bad_input, metrics])
