"""Conformance of seawall-sim against the official Python SDKs.

Starts the simulator binary on port 0, reads the base URLs it prints, scripts faults through
its admin endpoint and checks, per scenario, the SDK outcome (result or exception class), the
number of HTTP calls, the `x-stainless-retry-count` sequence and the gaps between calls, against
the behaviour recorded in reference/WIRE.md §5a, §9.7 and reference/sdk-probe/.

usage: python conformance.py PATH/TO/seawall-sim
Exits non-zero on any mismatch; the last line is "N passed, M failed".
"""
import email.utils
import json
import os
import subprocess
import tempfile
import sys
import time
import urllib.request

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

# Backoff envelopes of the Stainless SDKs (0.5 * 2**n * (1 - 0.25 * random())), widened for
# scheduling noise on a loaded machine.
BACKOFF_1 = (0.30, 0.90)
BACKOFF_2 = (0.65, 1.50)

RESULTS = []


def exact(seconds):
    """Envelope for a gap that should equal a Retry-After value."""
    return (seconds - 0.1, seconds + 0.5)


class Sim:
    def __init__(self, binary, config=None):
        args = [binary, "--listen", "127.0.0.1:0"] + (["--config", config] if config else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.urls = {}
        while len(self.urls) < 7:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("simulator exited before printing its URLs")
            name, url = line.split()
            self.urls[name] = url
        self.admin = self.urls["admin"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def reset(self):
        self.call("POST", "/reset")

    def faults(self, provider, rules):
        self.call("PUT", f"/faults/{provider}", rules)

    def log(self, provider):
        return self.call("GET", f"/log?provider={provider}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)


def rule(fault, first=None, nth=None):
    r = {"fault": fault}
    if first is not None:
        r["from_request"], r["to_request"] = 1, first
    if nth is not None:
        r["from_request"], r["to_request"] = nth, nth
    return r


def status(code, **kw):
    return {"kind": "status", "status": code, **kw}


def outcome_of(fn):
    try:
        return "OK", fn()
    except Exception as e:  # noqa: BLE001 - the class is what we check
        return f"{type(e).__module__}.{type(e).__name__}", e


def check(name, sim, provider, fn, *, outcome="OK", calls=None, gaps=None, retry_counts=None, extra=None):
    sim.reset()
    setup = check.setup
    check.setup = None
    if setup:
        setup()
    got, value = outcome_of(fn)
    log = sim.log(provider)
    times = [e["at"] for e in log]
    got_gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    problems = []
    if got not in (outcome if isinstance(outcome, tuple) else (outcome,)):
        problems.append(f"outcome {got} ({str(value)[:120]}), expected {outcome}")
    if calls is not None and len(log) != calls:
        problems.append(f"{len(log)} calls, expected {calls}")
    if gaps is not None:
        if len(got_gaps) != len(gaps):
            problems.append(f"gaps {got_gaps}, expected {len(gaps)}")
        for g, (lo, hi) in zip(got_gaps, gaps):
            if not lo <= g <= hi:
                problems.append(f"gap {g} outside [{lo}, {hi}]")
    if retry_counts is not None:
        got_rc = [dict(e["headers"]).get("x-stainless-retry-count") for e in log]
        if got_rc != retry_counts:
            problems.append(f"retry counts {got_rc}, expected {retry_counts}")
    if extra and not problems:
        try:
            msg = extra(value, log)
            if msg:
                problems.append(msg)
        except Exception as e:  # noqa: BLE001
            problems.append(f"extra check raised {type(e).__name__}: {e}")
    RESULTS.append((name, problems))
    mark = "ok  " if not problems else "FAIL"
    print(f"{mark} {name}: calls={len(log)} gaps={got_gaps} -> {got}" + ("" if not problems else "\n     " + "; ".join(problems)), flush=True)


check.setup = None


def given(fn):
    check.setup = fn


def openai_suite(sim):
    c = openai.OpenAI(api_key="sk-test", base_url=sim.urls["openai"])
    msgs = [{"role": "user", "content": "hi"}]
    call = lambda **kw: c.chat.completions.create(model="gpt-4o-mini", messages=msgs, **kw)
    finish = lambda **kw: call(**kw).choices[0].finish_reason
    err = lambda t, m, code=None: {"error_type": t, "message": m, **({"code": code} if code else {})}
    rc = lambda n: [str(i) for i in range(n)]

    def stream_text(**kw):
        out = []
        for chunk in call(stream=True, **kw):
            out.append(chunk)
        return out

    def same_text(value, log):
        again = call().choices[0].message.content
        if value.choices[0].message.content != again:
            return "two identical requests gave different text"
        if value.usage.total_tokens != value.usage.prompt_tokens + value.usage.completion_tokens:
            return "usage does not add up"

    check("openai success", sim, "openai", call, calls=1, retry_counts=["0"], extra=same_text)

    def stream_matches(chunks, log):
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        full = call().choices[0].message.content
        if text != full:
            return f"stream text {text!r} != {full!r}"
        if chunks[-1].usage is None or chunks[-1].choices:
            return "last chunk is not the usage chunk"
        if [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] != "stop":
            return "no finish_reason stop"
    check("openai stream with include_usage", sim, "openai",
          lambda: stream_text(stream_options={"include_usage": True}), extra=stream_matches)

    given(lambda: sim.faults("openai", [rule(status(429, retry_after={"seconds": 1}), first=2)]))
    check("openai 429 retry-after:1 x2 then 200", sim, "openai", finish, calls=3,
          gaps=[exact(1.0), exact(1.0)], retry_counts=rc(3))
    given(lambda: sim.faults("openai", [rule(status(429), first=2)]))
    check("openai 429 no retry headers x2 then 200", sim, "openai", finish, calls=3,
          gaps=[BACKOFF_1, BACKOFF_2], retry_counts=rc(3))
    # 1.2 s is far from the 0.375-0.5 s backoff, so honouring the float is visible.
    given(lambda: sim.faults("openai", [rule(status(429, retry_after={"float": 1.2}), first=1)]))
    check("openai 429 retry-after:1.2 (float)", sim, "openai", finish, calls=2, gaps=[exact(1.2)])
    given(lambda: sim.faults("openai", [rule(status(429, retry_after_ms=300, retry_after={"seconds": 5}), first=1)]))
    check("openai 429 retry-after-ms:300 + retry-after:5", sim, "openai", finish, calls=2, gaps=[exact(0.3)])
    given(lambda: sim.faults("openai", [rule(status(429, retry_after={"http_date_in": 2}), first=1)]))
    check("openai 429 retry-after:HTTP-date(+2s)", sim, "openai", finish, calls=2, gaps=[(0.9, 2.45)])
    given(lambda: sim.faults("openai", [rule(status(429, retry_after={"seconds": 200}))]))
    check("openai 429 retry-after:200 not retried", sim, "openai", call,
          outcome="openai.RateLimitError", calls=1, retry_counts=["0"])
    given(lambda: sim.faults("openai", [rule(status(503, should_retry=False))]))
    check("openai 503 x-should-retry:false", sim, "openai", call, outcome="openai.InternalServerError", calls=1)
    given(lambda: sim.faults("openai", [rule(status(400, should_retry=True), first=1)]))
    check("openai 400 x-should-retry:true", sim, "openai", finish, calls=2, gaps=[BACKOFF_1])
    for st in (408, 409, 500, 502, 504, 529):
        given(lambda st=st: sim.faults("openai", [rule(status(st), first=1)]))
        check(f"openai {st} once then 200", sim, "openai", finish, calls=2, gaps=[BACKOFF_1], retry_counts=rc(2))
    for st, cls in ((400, "BadRequestError"), (401, "AuthenticationError"), (403, "PermissionDeniedError"),
                    (404, "NotFoundError"), (422, "UnprocessableEntityError")):
        given(lambda st=st: sim.faults("openai", [rule(status(st))]))
        check(f"openai {st}", sim, "openai", call, outcome=f"openai.{cls}", calls=1)
    given(lambda: sim.faults("openai", [rule({"kind": "rate_limited", "limit": "quota_exhausted"})]))
    check("openai 429 insufficient_quota (retried, never succeeds)", sim, "openai", call,
          outcome="openai.RateLimitError", calls=3, gaps=[BACKOFF_1, BACKOFF_2],
          extra=lambda e, _: None if e.code == "insufficient_quota" else f"code {e.code}")
    given(lambda: sim.faults("openai", [rule({"kind": "overloaded"}, first=1)]))
    check("openai overloaded 503 once then 200", sim, "openai", finish, calls=2, gaps=[BACKOFF_1])
    given(lambda: sim.faults("openai", [rule({"kind": "disconnect"}, first=1)]))
    check("openai connection dropped once then 200", sim, "openai", finish, calls=2, gaps=[BACKOFF_1])
    # A fresh client: pooled connections stay open while new ones are refused.
    given(lambda: sim.call("PUT", "/refuse_connections", {"ms": 300}))
    t_refuse = [0.0]

    def fresh_call():
        t_refuse[0] = time.monotonic()
        client = openai.OpenAI(api_key="sk-test", base_url=sim.urls["openai"])
        return client.chat.completions.create(model="gpt-4o-mini", messages=msgs).choices[0].finish_reason
    check("openai connection refused (reset) for 300 ms, retried", sim, "openai", fresh_call, calls=1,
          extra=lambda _, log: None if log[0]["headers"] and dict(log[0]["headers"]).get("x-stainless-retry-count") in ("1", "2") else f"retry count {dict(log[0]['headers']).get('x-stainless-retry-count')}")
    given(lambda: sim.faults("openai", [rule({"kind": "html_page", "status": 502})]))
    check("openai 502 HTML page (raw text body)", sim, "openai",
          lambda: openai.OpenAI(api_key="sk-test", base_url=sim.urls["openai"], max_retries=0).chat.completions.create(
              model="gpt-4o-mini", messages=msgs),
          outcome="openai.InternalServerError", calls=1,
          extra=lambda e, _: None if e.response.text.startswith("<html>") else "body is not the HTML page")
    # Responses API.
    def responses_text():
        full = c.responses.create(model="gpt-4.1", input="hi")
        events = list(c.responses.create(model="gpt-4.1", input="hi", stream=True))
        streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        if streamed != full.output_text or events[-1].type != "response.completed":
            raise AssertionError(f"{streamed!r} vs {full.output_text!r}, last {events[-1].type}")
        return full.usage.total_tokens
    check("openai responses (plain and streamed)", sim, "openai", responses_text, calls=2)
    given(lambda: sim.faults("openai", [rule({"kind": "error_frame_after", "events": 3})]))
    check("openai responses stream nested error event", sim, "openai",
          lambda: list(c.responses.create(model="gpt-4.1", input="hi", stream=True)),
          outcome="openai.APIError", calls=1)
    # Stream fault modes (WIRE.md §9.7).
    given(lambda: sim.faults("openai", [rule({"kind": "error_frame_after", "events": 2})]))
    check("openai stream mid-stream error frame", sim, "openai", stream_text, outcome="openai.APIError", calls=1)
    given(lambda: sim.faults("openai", [rule({"kind": "end_without_terminal"})]))
    check("openai stream clean EOF without [DONE]", sim, "openai", stream_text, calls=1,
          extra=lambda chunks, _: None if all(ch.choices[0].finish_reason is None for ch in chunks) else "saw a finish_reason")
    given(lambda: sim.faults("openai", [rule({"kind": "cut_after", "events": 2})]))
    check("openai stream abrupt close", sim, "openai", stream_text, outcome="openai.APIConnectionError", calls=1)
    given(lambda: sim.faults("openai", [rule(status(429, retry_after={"float": 0.2}), first=1)]))
    check("openai stream 429 before first byte then ok", sim, "openai", stream_text, calls=2, gaps=[exact(0.2)])
    given(lambda: sim.faults("openai", [rule({"kind": "stall_after", "events": 2, "ms": 400})]))
    t0 = time.monotonic()
    check("openai stream stall then resume", sim, "openai", stream_text, calls=1,
          extra=lambda chunks, _: None if time.monotonic() - t0 >= 0.4 and chunks[-1].choices[0].finish_reason == "stop" else "no stall or truncated")

    def quota_setup():
        sim.call("PUT", "/quota/openai", {"requests": 1, "tokens": 100000, "window_ms": 1000})

    def two_calls():
        first = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
        h = first.headers
        if h.get("x-ratelimit-remaining-requests") != "0" or h.get("x-ratelimit-limit-requests") != "1":
            raise AssertionError(f"rate-limit headers {dict(h)}")
        return finish()
    given(quota_setup)
    check("openai quota exhausted -> 429 retry-after -> retried after the window", sim, "openai", two_calls,
          calls=3, gaps=[(0, 0.3), (0.7, 1.5)])


    def embed(**kw):
        return c.embeddings.create(model="text-embedding-3-small",
                                   input=["What is the capital of France?", "what's the capital of France"], **kw)

    def embeddings_shape(r, log):
        sent = json.loads(log[0]["body"])
        if sent.get("encoding_format") != "base64":
            return f"the SDK sent encoding_format {sent.get('encoding_format')!r}, expected its default base64"
        vectors = [d.embedding for d in r.data]
        if [len(v) for v in vectors] != [64, 64] or [d.index for d in r.data] != [0, 1]:
            return f"shape {[len(v) for v in vectors]}"
        if abs(sum(x * x for x in vectors[0]) - 1) > 1e-4:
            return "not a unit vector"
        if sum(a * b for a, b in zip(*vectors)) < 0.7:
            return "a paraphrase is not close"
        floats = embed(dimensions=64, encoding_format="float").data[0].embedding
        if max(abs(a - b) for a, b in zip(floats, vectors[0])) > 1e-6:
            return "base64 and float vectors differ"
        if r.usage.prompt_tokens <= 0:
            return "no usage"

    check("openai embeddings (the SDK's base64 default, and float)", sim, "openai",
          lambda: embed(dimensions=64), calls=1, extra=embeddings_shape)
    check("openai embeddings from a chat model: 403", sim, "openai",
          lambda: c.embeddings.create(model="gpt-4o-mini", input="hi"),
          outcome="openai.PermissionDeniedError", calls=1)
    check("openai embeddings of an empty text: 400", sim, "openai",
          lambda: c.embeddings.create(model="text-embedding-3-small", input=""),
          outcome="openai.BadRequestError", calls=1)


def anthropic_suite(sim):
    c = anthropic.Anthropic(api_key="sk-ant-test", base_url=sim.urls["anthropic"])
    msgs = [{"role": "user", "content": "hi"}]
    call = lambda **kw: c.messages.create(model="claude-x", max_tokens=64, messages=msgs, **kw)
    stop = lambda: call().stop_reason
    rc = lambda n: [str(i) for i in range(n)]

    def events():
        return [e.type for e in call(stream=True)]

    def auth_and_headers(value, log):
        h = dict(log[0]["headers"])
        if h.get("anthropic-version") != "2026-10-21" or h.get("authorization") != "Bearer [redacted]":
            return f"unexpected request headers {h}"
    check("anthropic success", sim, "anthropic", stop, calls=1, extra=auth_and_headers)

    def stream_ok(types, log):
        # The SDK consumes `ping` itself; the Rust tests check it is on the wire.
        if types[0] != "message_start" or types[-1] != "message_stop" or "content_block_delta" not in types:
            return f"events {types}"
    check("anthropic stream", sim, "anthropic", events, calls=1, extra=stream_ok)

    def prefill():
        full = call().content[0].text
        cont = c.messages.create(model="claude-x", max_tokens=64,
                                 messages=msgs + [{"role": "assistant", "content": full[:7]}]).content[0].text
        if full[:7] + cont != full:
            raise AssertionError(f"prefill continuation {cont!r} does not complete {full!r}")
        return "continued"
    check("anthropic prefill continues the reply", sim, "anthropic", prefill, calls=2)
    given(lambda: sim.call("PUT", "/reject_prefill/anthropic", True))
    check("anthropic prefill rejected", sim, "anthropic",
          lambda: c.messages.create(model="claude-x", max_tokens=64, messages=msgs + [{"role": "assistant", "content": "x"}]),
          outcome="anthropic.BadRequestError", calls=1,
          extra=lambda e, _: None if "does not support assistant message prefill" in e.message else e.message)

    given(lambda: sim.faults("anthropic", [rule({"kind": "overloaded"}, first=2)]))
    check("anthropic 529 x2 then 200", sim, "anthropic", stop, calls=3, gaps=[BACKOFF_1, BACKOFF_2], retry_counts=rc(3))
    given(lambda: sim.faults("anthropic", [rule(status(429, retry_after={"seconds": 1}), first=1)]))
    check("anthropic 429 retry-after:1", sim, "anthropic", stop, calls=2, gaps=[exact(1.0)])
    given(lambda: sim.faults("anthropic", [rule(status(429, retry_after={"float": 1.2}), first=1)]))
    check("anthropic 429 retry-after:1.2 (float)", sim, "anthropic", stop, calls=2, gaps=[exact(1.2)])
    given(lambda: sim.faults("anthropic", [rule(status(413))]))
    check("anthropic 413", sim, "anthropic", call, outcome="anthropic.ContentTooLargeError", calls=1)
    for st, cls in ((529, "OverloadedError"), (500, "InternalServerError"), (400, "BadRequestError"),
                    (401, "AuthenticationError"), (403, "PermissionDeniedError"), (404, "NotFoundError")):
        given(lambda st=st: sim.faults("anthropic", [rule(status(st, should_retry=False))]))
        check(f"anthropic {st} (x-should-retry:false)", sim, "anthropic", call, outcome=f"anthropic.{cls}", calls=1)
    given(lambda: sim.faults("anthropic", [rule({"kind": "error_frame_after", "events": 3})]))
    check("anthropic stream mid-stream event:error", sim, "anthropic", events, outcome="anthropic.APIStatusError", calls=1,
          extra=lambda e, _: None if e.status_code == 200 else f"status {e.status_code}")
    given(lambda: sim.faults("anthropic", [rule({"kind": "end_without_terminal", "events": 2})]))
    check("anthropic stream clean EOF without message_stop", sim, "anthropic", events, calls=1,
          extra=lambda t, _: None if t == ["message_start", "content_block_start"] else f"events {t}")
    given(lambda: sim.faults("anthropic", [rule({"kind": "cut_after", "events": 3})]))
    # Not in the probe tables: anthropic 2.12.0 leaks the transport error raw here, as openai 1.x
    # does (WIRE.md §9.7.5); what matters is one call and a transport error, not a clean end.
    check("anthropic stream abrupt close", sim, "anthropic", events,
          outcome=("httpx2.RemoteProtocolError", "httpx.RemoteProtocolError", "anthropic.APIConnectionError"), calls=1)


def gemini_suite(sim):
    c = genai.Client(api_key="AIza-test", http_options=genai_types.HttpOptions(base_url=sim.urls["gemini"]))
    call = lambda: c.models.generate_content(model="gemini-x", contents="hi")

    def stream():
        return [(ch.text, ch.candidates[0].finish_reason if ch.candidates else None)
                for ch in c.models.generate_content_stream(model="gemini-x", contents="hi")]

    check("gemini success (/v1)", sim, "gemini", lambda: call().text, calls=1,
          extra=lambda _, log: None if log[0]["path"].startswith("/gemini/v1/models/gemini-x:generateContent") else log[0]["path"])
    beta = genai.Client(api_key="AIza-test", http_options=genai_types.HttpOptions(base_url=sim.urls["gemini"], api_version="v1beta"))
    check("gemini success (/v1beta)", sim, "gemini", lambda: beta.models.generate_content(model="gemini-x", contents="hi").text,
          calls=1)
    check("gemini stream (alt=sse)", sim, "gemini", stream, calls=1,
          extra=lambda chunks, log: None if str(chunks[-1][1]).endswith("STOP") and "alt=sse" in log[0]["path"] else f"{chunks}")
    def embed():
        return beta.models.embed_content(
            model="text-embedding-004", contents=["What is the capital of France?", "hello"],
            config=genai_types.EmbedContentConfig(output_dimensionality=32))

    def embeddings_shape(r, log):
        vectors = [e.values for e in r.embeddings]
        if [len(v) for v in vectors] != [32, 32]:
            return f"shape {[len(v) for v in vectors]}"
        if abs(sum(x * x for x in vectors[0]) - 1) > 1e-4:
            return "not a unit vector"
        if not log[0]["path"].startswith("/gemini/v1beta/models/text-embedding-004:"):
            return log[0]["path"]

    check("gemini embed_content", sim, "gemini", embed, calls=1, extra=embeddings_shape)
    check("gemini embed_content with a chat model: 404", sim, "gemini",
          lambda: beta.models.embed_content(model="gemini-x", contents="hi"),
          outcome="google.genai.errors.ClientError", calls=1,
          extra=lambda e, _: None if e.code == 404 else f"code {e.code}")
    given(lambda: sim.faults("gemini", [rule({"kind": "rate_limited", "retry_after": {"seconds": 26}})]))
    check("gemini 429 default options (no retry)", sim, "gemini", call, outcome="google.genai.errors.ClientError", calls=1,
          extra=lambda e, _: None if any(d.get("retryDelay") == "26s" for d in e.details["error"]["details"]) else "no RetryInfo")
    retrying = genai.Client(api_key="AIza-test", http_options=genai_types.HttpOptions(
        base_url=sim.urls["gemini"], retry_options=genai_types.HttpRetryOptions(attempts=3, initial_delay=0.2)))
    given(lambda: sim.faults("gemini", [rule({"kind": "rate_limited"}, first=2)]))
    check("gemini 429 x2 with HttpRetryOptions(attempts=3)", sim, "gemini",
          lambda: retrying.models.generate_content(model="gemini-x", contents="hi").text, calls=3,
          gaps=[(0.15, 1.35), (0.35, 1.55)])
    given(lambda: sim.faults("gemini", [rule({"kind": "overloaded"})]))
    check("gemini 503 overloaded", sim, "gemini", call, outcome="google.genai.errors.ServerError", calls=1)
    given(lambda: sim.faults("gemini", [rule({"kind": "error_frame_after", "events": 2})]))
    check("gemini stream mid-stream error", sim, "gemini", stream, outcome="google.genai.errors.ServerError", calls=1)
    given(lambda: sim.faults("gemini", [rule({"kind": "end_without_terminal"})]))
    check("gemini stream clean EOF without finishReason", sim, "gemini", stream, calls=1,
          extra=lambda chunks, _: None if chunks and all(f is None for _, f in chunks) else f"{chunks}")


SPLIT_CONFIG = """
[openai]
split_events = true
ping_every = 2
[anthropic]
split_events = true
ping_every = 2
[gemini]
split_events = true
"""


def split_frames_suite(sim):
    """Every event written in two pieces, keep-alives interleaved: the SDK decoders must cope."""
    o = openai.OpenAI(api_key="sk-test", base_url=sim.urls["openai"])
    msgs = [{"role": "user", "content": "hi"}]

    def oai():
        full = o.chat.completions.create(model="m", messages=msgs).choices[0].message.content
        text = "".join(c.choices[0].delta.content or "" for c in o.chat.completions.create(model="m", messages=msgs, stream=True) if c.choices)
        return text == full or f"{text!r} != {full!r}"
    check("openai stream split across writes, with comment pings", sim, "openai", oai, calls=2,
          extra=lambda v, _: None if v is True else v)
    a = anthropic.Anthropic(api_key="sk-ant", base_url=sim.urls["anthropic"])

    def ant():
        full = a.messages.create(model="c", max_tokens=64, messages=msgs).content[0].text
        with a.messages.stream(model="c", max_tokens=64, messages=msgs) as st:
            text = st.get_final_message().content[0].text
        return text == full or f"{text!r} != {full!r}"
    check("anthropic stream split across writes, with pings", sim, "anthropic", ant, calls=2,
          extra=lambda v, _: None if v is True else v)
    g = genai.Client(api_key="AIza-test", http_options=genai_types.HttpOptions(base_url=sim.urls["gemini"]))

    def gem():
        full = g.models.generate_content(model="g", contents="hi").text
        text = "".join(c.text or "" for c in g.models.generate_content_stream(model="g", contents="hi"))
        return text == full or f"{text!r} != {full!r}"
    check("gemini stream split across writes", sim, "gemini", gem, calls=2,
          extra=lambda v, _: None if v is True else v)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sim = Sim(sys.argv[1])
    started = time.monotonic()
    try:
        print(f"openai {openai.__version__}, anthropic {anthropic.__version__}, google-genai {genai.__version__}")
        openai_suite(sim)
        anthropic_suite(sim)
        gemini_suite(sim)
    finally:
        sim.stop()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(SPLIT_CONFIG)
    config.close()
    split = Sim(sys.argv[1], config.name)
    try:
        split_frames_suite(split)
    finally:
        split.stop()
        os.unlink(config.name)
    failed = sum(1 for _, p in RESULTS if p)
    print(f"conformance finished in {time.monotonic() - started:.1f}s")
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
