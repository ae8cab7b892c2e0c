"""The official `anthropic` Python SDK against seawall-gateway's Anthropic Messages dialect.

Starts the simulator binary and the gateway binary with a config that has an Anthropic
target, an OpenAI target, a group over each and one over both (Anthropic first), a virtual
key and a key limited to one request a minute. Then checks what the SDK sees on
`POST /v1/messages`: plain and streamed answers (the stream helper's whole text and usage),
tool calls streamed and not with the results sent back, `count_tokens`, the exception
classes (401 AuthenticationError, 404 NotFoundError, 400 BadRequestError with nothing sent
upstream, 429 RateLimitError from the key limit), a failover from the Anthropic target to the
OpenAI one, and a stream cut on the Anthropic target that the OpenAI target finishes: the SDK
sees one whole answer.

usage: python anthropic_sdk.py PATH/TO/seawall-gateway PATH/TO/seawall-sim
Exits non-zero on any failure; the last line is "N passed, M failed".
"""
import anthropic

import harness
from harness import expect, scenario

KEY = "sk-team-messages"
LIMITED_KEY = "sk-limited-messages"

CONFIG = """
[[targets]]
name = "claude"
provider = "anthropic"
model = "claude-3-5-haiku-latest"
base_url = "{anthropic}"
api_key_env = "SIM_KEY"
max_attempts = 1

[[targets]]
name = "gpt"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{openai}"
api_key_env = "SIM_KEY"
max_attempts = 1

[[groups]]
name = "claude"
targets = ["claude"]

[[groups]]
name = "gpt"
targets = ["gpt"]

[[groups]]
name = "cross"
targets = ["claude", "gpt"]

[[keys]]
name = "team"
key_env = "SEAWALL_TEAM_KEY"

[[keys]]
name = "limited"
key_env = "SEAWALL_LIMITED_KEY"
requests_per_minute = 1
"""


def start(processes, gateway_binary, sim_binary):
    return harness.launch(processes, gateway_binary, sim_binary, CONFIG,
                          env=dict(SIM_KEY="sk-sim", SEAWALL_TEAM_KEY=KEY,
                                   SEAWALL_LIMITED_KEY=LIMITED_KEY))


def client(gw, key=KEY):
    # max_retries=0: the gateway already retries and fails over.
    return anthropic.Anthropic(base_url=gw.base, api_key=key, max_retries=0)


MESSAGES = [{"role": "user", "content": "hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]},
}


def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")


@scenario("plain call: a message with text, stop reason and usage")
def plain(gw):
    m = client(gw).messages.create(model="claude", max_tokens=64, messages=MESSAGES,
                                   system="Be brief.", metadata={"user_id": "u-1"})
    expect(m.type == "message" and m.role == "assistant", m)
    expect(m.model == "claude-3-5-haiku-latest", m.model)
    expect(text_of(m), "no text")
    expect(m.stop_reason in ("end_turn", "max_tokens"), m.stop_reason)
    expect(m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage)
    sent = gw.logged("anthropic")[0]
    expect(sent["system"][0]["text"] == "Be brief.", sent)
    expect(sent["metadata"] == {"user_id": "u-1"}, sent)


@scenario("streamed call: the stream helper's whole text and usage")
def streamed(gw):
    with client(gw).messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    expect(text and text_of(final) == text, (text, final))
    expect(final.usage.output_tokens > 0 and final.usage.input_tokens > 0, final.usage)
    expect(final.stop_reason in ("end_turn", "max_tokens"), final.stop_reason)
    plain = client(gw).messages.create(model="claude", max_tokens=64, messages=MESSAGES)
    expect(text == text_of(plain), "the streamed text is the plain answer's")


def tool_round(gw, stream):
    c = client(gw)
    ask = dict(model="claude", max_tokens=64, tools=[WEATHER], tool_choice={"type": "any"},
               messages=[{"role": "user", "content": "Weather in Paris?"}])
    if stream:
        with c.messages.stream(**ask) as s:
            m = s.get_final_message()
    else:
        m = c.messages.create(**ask)
    expect(m.stop_reason == "tool_use", m.stop_reason)
    calls = [b for b in m.content if b.type == "tool_use"]
    expect(len(calls) == 1 and calls[0].name == "get_weather", m.content)
    expect(isinstance(calls[0].input, dict), calls[0].input)
    answer = c.messages.create(model="claude", max_tokens=64, tools=[WEATHER], messages=[
        *ask["messages"],
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id,
                                      "content": "18C and sunny"}]}])
    expect(text_of(answer), answer)
    sent = gw.logged("anthropic")[-1]["messages"]
    expect(sent[-1]["content"][0]["type"] == "tool_result", sent[-1])
    expect(sent[-1]["content"][0]["tool_use_id"] == calls[0].id, sent[-1])


@scenario("tool call, not streamed, and its result sent back")
def tools_plain(gw):
    tool_round(gw, stream=False)


@scenario("tool call, streamed, and its result sent back")
def tools_streamed(gw):
    tool_round(gw, stream=True)


@scenario("count_tokens")
def count(gw):
    n = client(gw).messages.count_tokens(model="claude", messages=MESSAGES)
    expect(n.input_tokens > 0, n)


@scenario("errors: AuthenticationError, NotFoundError, BadRequestError; nothing sent upstream")
def errors(gw):
    try:
        client(gw, key="sk-wrong").messages.create(model="claude", max_tokens=8, messages=MESSAGES)
        raise AssertionError("no exception")
    except anthropic.AuthenticationError as e:
        expect(e.status_code == 401 and e.body["error"]["type"] == "authentication_error", e.body)
    try:
        client(gw).messages.create(model="no-such-group", max_tokens=8, messages=MESSAGES)
        raise AssertionError("no exception")
    except anthropic.NotFoundError as e:
        expect(e.body["error"]["type"] == "not_found_error", e.body)
    try:
        client(gw).messages.create(model="claude", max_tokens=8,
                                   messages=[{"role": "system", "content": "x"}])
        raise AssertionError("no exception")
    except anthropic.BadRequestError as e:
        expect(e.body["error"]["type"] == "invalid_request_error", e.body)
        expect(e.body["error"]["message"].startswith("messages.0.role"), e.body)
    expect(gw.upstream_calls() == 0, gw.upstream_calls())


@scenario("the key's request limit: RateLimitError")
def rate_limited(gw):
    c = client(gw, key=LIMITED_KEY)
    c.messages.create(model="claude", max_tokens=8, messages=MESSAGES)
    try:
        c.messages.create(model="claude", max_tokens=8, messages=MESSAGES)
        raise AssertionError("no exception")
    except anthropic.RateLimitError as e:
        expect(e.status_code == 429 and e.body["error"]["type"] == "rate_limit_error", e.body)


@scenario("failover across dialects: the Anthropic target fails, the OpenAI one answers")
def failover(gw):
    gw.fail("anthropic", {"kind": "status", "status": 500})
    m = client(gw).messages.create(model="cross", max_tokens=64, messages=MESSAGES)
    expect(m.model == "gpt-4o-mini", m.model)
    expect(text_of(m) and m.stop_reason in ("end_turn", "max_tokens"), m)
    expect(len(gw.logged("openai")) == 1, "openai answered")


@scenario("stream cut on the Anthropic target, finished on the OpenAI one: one whole answer")
def recovered(gw):
    def streamed_text():
        with client(gw).messages.stream(model="cross", max_tokens=64, messages=MESSAGES) as s:
            text = "".join(s.text_stream)
            return text, s.get_final_message()
    full, _ = streamed_text()
    gw.reset()
    gw.fail("anthropic", {"kind": "cut_after", "events": 4})
    text, final = streamed_text()
    expect(text == full, f"the recovered answer is the whole answer, once: {text!r} vs {full!r}")
    expect(text_of(final) == full, final)
    expect(final.usage.output_tokens > 0, final.usage)
    expect(len(gw.logged("anthropic")) == 1 and len(gw.logged("openai")) == 1,
           "cut on anthropic, finished on openai")


if __name__ == "__main__":
    harness.main(__doc__, 2, start, [
        plain, streamed, tools_plain, tools_streamed, count, errors, rate_limited, recovered,
        failover])
