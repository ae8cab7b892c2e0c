"""The official `openai` Python SDK's Responses API against seawall-gateway's `POST /v1/responses`.

Starts the simulator binary and the gateway binary with a config of an OpenAI and an
Anthropic target (both the simulator), then checks what `client.responses` sees: a plain
answer, a stream read with the SDK's stream helper (whole text and usage), a function call
streamed and not and its follow-up turn, the exception classes (401 AuthenticationError,
404 NotFoundError, 400 BadRequestError with nothing sent upstream, 429 RateLimitError from a
key's request limit), and a failover from a failing Anthropic target to the OpenAI one that
the SDK sees as one whole answer.

usage: python openai_responses_sdk.py PATH/TO/seawall-gateway PATH/TO/seawall-sim
Exits non-zero on any failure; the last line is "N passed, M failed".
"""
import json

import openai

import harness
from harness import expect, raises, scenario

KEY = "sk-team-responses"
LIMITED_KEY = "sk-limited-responses"

CONFIG = """
[[targets]]
name = "sim-openai"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{openai}"
api_key_env = "SIM_KEY"
max_attempts = 1

[[targets]]
name = "sim-anthropic"
provider = "anthropic"
model = "claude-3-5-haiku-latest"
base_url = "{anthropic}"
api_key_env = "SIM_KEY"
max_attempts = 1

[[groups]]
name = "main"
targets = ["sim-openai"]

# Anthropic first: when it fails, OpenAI answers a call made in the Responses dialect.
[[groups]]
name = "cross"
targets = ["sim-anthropic", "sim-openai"]

[[keys]]
name = "team"
key_env = "SEAWALL_TEAM_KEY"

[[keys]]
name = "limited"
key_env = "SEAWALL_LIMITED_KEY"
requests_per_minute = 1
"""

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def start(processes, gateway_binary, sim_binary):
    return harness.launch(processes, gateway_binary, sim_binary, CONFIG,
                          env=dict(SIM_KEY="sk-sim", SEAWALL_TEAM_KEY=KEY,
                                   SEAWALL_LIMITED_KEY=LIMITED_KEY))


def client(gw, key=KEY):
    # max_retries=0: the gateway already retries and fails over.
    return openai.OpenAI(base_url=gw.base + "/v1", api_key=key, max_retries=0)


@scenario("plain answer: a completed response with text and usage")
def plain(gw):
    r = client(gw).responses.create(model="main", input="hello", instructions="Be brief.")
    expect(r.id.startswith("resp_"), r.id)
    expect(r.object == "response" and r.status == "completed", r.status)
    expect(r.model == "gpt-4o-mini", r.model)
    expect(r.output_text, "empty text")
    expect(r.output[0].type == "message" and r.output[0].content[0].type == "output_text",
           r.output)
    expect(r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage)
    expect(r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, r.usage)
    sent = gw.logged("openai")
    expect(len(sent) == 1 and sent[0]["messages"][0]["role"] in ("system", "developer"), sent)


@scenario("streamed answer read with the stream helper: the whole text and usage")
def streamed(gw):
    with client(gw).responses.stream(model="main", input="hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    expect(kinds[:2] == ["response.created", "response.in_progress"], kinds)
    expect(kinds[-1] == "response.completed", kinds)
    expect([e.sequence_number for e in events] == list(range(len(events))), "sequence numbers")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expect(text and text == final.output_text, (text, final.output_text))
    expect(final.status == "completed" and final.usage.output_tokens > 0, final.usage)
    expect(final.model == "gpt-4o-mini", final.model)


@scenario("function call, not streamed, then the follow-up turn with its output")
def tool_call(gw):
    c = client(gw)
    r = c.responses.create(model="main", input="weather in Paris?", tools=[WEATHER],
                           tool_choice="required")
    calls = [o for o in r.output if o.type == "function_call"]
    expect(len(calls) == 1 and calls[0].name == "get_weather", r.output)
    expect("city" in json.loads(calls[0].arguments), calls[0].arguments)
    follow = c.responses.create(model="main", tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name,
         "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21C"},
    ])
    expect(follow.output_text and follow.status == "completed", follow.output)
    sent = gw.logged("openai")[-1]["messages"]
    expect([m["role"] for m in sent] == ["user", "assistant", "tool"], sent)


@scenario("function call, streamed: argument deltas add up to the final arguments")
def tool_call_streamed(gw):
    events = list(client(gw).responses.create(model="main", input="weather in Paris?",
                                              tools=[WEATHER], tool_choice="required",
                                              stream=True))
    kinds = [e.type for e in events]
    expect("response.function_call_arguments.done" in kinds, kinds)
    deltas = "".join(e.delta for e in events
                     if e.type == "response.function_call_arguments.delta")
    final = events[-1]
    expect(final.type == "response.completed", final.type)
    call = final.response.output[-1]
    expect(call.type == "function_call" and call.name == "get_weather", call)
    expect(deltas == call.arguments and json.loads(deltas), (deltas, call.arguments))


@scenario("error classes: 401, 404, 400 (nothing sent upstream), 429 from a key limit")
def errors(gw):
    e = raises(openai.AuthenticationError,
               lambda: client(gw, key="sk-wrong").responses.create(model="main", input="hi"))
    expect(e.status_code == 401, e.status_code)
    e = raises(openai.NotFoundError,
               lambda: client(gw).responses.create(model="no-such-group", input="hi"))
    expect(e.status_code == 404, e.status_code)
    e = raises(openai.BadRequestError,
               lambda: client(gw).responses.create(model="main", input="hi", temperature=5))
    expect(e.param == "temperature", e.body)
    e = raises(openai.BadRequestError,
               lambda: client(gw).responses.create(model="main", input=[]))
    expect(e.param == "input", e.body)
    expect(gw.logged("openai") == [] and gw.logged("anthropic") == [], "sent upstream")
    limited = client(gw, key=LIMITED_KEY)
    limited.responses.create(model="main", input="hi")
    e = raises(openai.RateLimitError, lambda: limited.responses.create(model="main", input="hi"))
    expect(e.status_code == 429, e.status_code)


@scenario("failover across dialects: Anthropic fails, OpenAI answers, one whole answer")
def failover(gw):
    gw.fail("anthropic", {"kind": "status", "status": 500})
    r = client(gw).responses.create(model="cross", input="hello")
    expect(r.status == "completed" and r.output_text, r.output)
    expect(r.model == "gpt-4o-mini", r.model)
    expect(len(gw.logged("anthropic")) >= 1, "anthropic was tried first")
    gw.fail("anthropic", {"kind": "status", "status": 500})
    with client(gw).responses.stream(model="cross", input="hello") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    expect(text and text == final.output_text, (text, final.output_text))
    expect(final.model == "gpt-4o-mini", final.model)


if __name__ == "__main__":
    harness.main(__doc__, 2, start, [
        plain, streamed, tool_call, tool_call_streamed, errors, failover])
