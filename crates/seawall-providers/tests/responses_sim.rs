//! The OpenAI Responses adapter against the simulator over real loopback HTTP: plain and
//! streamed answers, a tool call and its result, and the simulator's faults.

mod support;

use seawall_core::{
    ChatRequest, ErrorKind, FinishReason, LlmError, Message, ProviderKind, StreamEvent,
    ToolDefinition,
};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{MalformedPolicy, OpenAiResponses, ResponsesConfig};
use seawall_sim::{Fault, FaultRule, Provider, RateLimitKind, RetryHeaders, Simulator};
use serde_json::Value;
use support::{Outcome, accumulate, call_outcome, sea_request};

fn adapter(sim: &Simulator) -> OpenAiResponses<HttpClient> {
    let http = HttpClientConfig::default().build().unwrap();
    OpenAiResponses::new(
        http,
        ResponsesConfig::new("sk-test").with_base_url(sim.base_url(Provider::OpenAi)),
    )
}

fn request(stream: bool) -> ChatRequest {
    sea_request("gpt-4.1-mini", stream)
}

fn lookup() -> ToolDefinition {
    ToolDefinition::new(
        "lookup",
        "Look something up",
        serde_json::json!({"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}),
    )
}

/// The body of the last request the simulator received.
fn last_body(sim: &Simulator) -> Value {
    let requests = sim.requests_for(Provider::OpenAi);
    serde_json::from_slice(&requests.last().expect("a request").body).unwrap()
}

#[tokio::test]
async fn a_plain_and_a_streamed_answer_agree() {
    let sim = Simulator::builder().seed(3).start().await.unwrap();
    let Outcome::Complete(complete) = call_outcome(adapter(&sim), request(false)).await else {
        panic!("a complete response")
    };
    assert_eq!(complete.provider, ProviderKind::OpenAiResponses);
    assert!(!complete.text().is_empty());
    assert!(complete.id.starts_with("resp_"), "{}", complete.id);
    assert_eq!(complete.model, "gpt-4.1-mini");
    assert_eq!(complete.finish_reason, Some(FinishReason::Stop));
    let usage = complete.usage.unwrap();
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    let sent = last_body(&sim);
    assert_eq!(sent["instructions"], "Be brief.");
    assert_eq!(sent["input"][0]["role"], "user");
    assert_eq!(sent["input"][0]["content"], "Tell me about the sea.");
    assert_eq!(sent["max_output_tokens"], 64);
    assert!(sent.get("stream").is_none());

    let Outcome::Stream(events) = call_outcome(adapter(&sim), request(true)).await else {
        panic!("a stream")
    };
    assert_eq!(last_body(&sim)["stream"], true);
    assert!(
        matches!(&events[0], StreamEvent::Start { id: Some(id), model: Some(m) }
        if id.starts_with("resp_") && m == "gpt-4.1-mini")
    );
    let (accumulator, error) = accumulate(&events);
    assert!(error.is_none(), "{events:?}");
    assert!(accumulator.is_complete());
    assert_eq!(accumulator.text(), complete.text(), "deterministic text");
    assert_eq!(accumulator.usage(), Some(usage));
    assert_eq!(accumulator.finish_reason(), Some(&FinishReason::Stop));
}

#[tokio::test]
async fn a_small_output_cap_ends_in_length() {
    let sim = Simulator::builder()
        .seed(3)
        .configure(Provider::OpenAi, |settings| settings.reply_tokens = 40)
        .start()
        .await
        .unwrap();
    let capped = |stream| {
        let mut request = request(stream).with_max_output_tokens(16);
        request.messages = vec![Message::user("Write a long story about the sea.")].into();
        request
    };
    let Outcome::Complete(complete) = call_outcome(adapter(&sim), capped(false)).await else {
        panic!()
    };
    // The simulator's replies are 40 tokens long here.
    assert_eq!(complete.finish_reason, Some(FinishReason::Length));
    assert_eq!(complete.usage.unwrap().output_tokens, 16);
    let Outcome::Stream(events) = call_outcome(adapter(&sim), capped(true)).await else {
        panic!()
    };
    let (accumulator, error) = accumulate(&events);
    assert!(error.is_none(), "{events:?}");
    assert_eq!(accumulator.finish_reason(), Some(&FinishReason::Length));
    assert_eq!(accumulator.text(), complete.text());
}

#[tokio::test]
async fn a_tool_call_and_its_result_round_trip() {
    let sim = Simulator::builder().seed(7).start().await.unwrap();
    let with_tools = request(false).with_tools([lookup()]);
    let Outcome::Complete(called) = call_outcome(adapter(&sim), with_tools.clone()).await else {
        panic!("tools")
    };
    assert_eq!(called.finish_reason, Some(FinishReason::ToolCalls));
    let [tool_call] = called.message.tool_calls.as_slice() else {
        panic!("one call: {called:?}")
    };
    assert_eq!(tool_call.name, "lookup");
    assert!(
        tool_call.id.starts_with("call_"),
        "the call_id: {tool_call:?}"
    );
    assert!(serde_json::from_str::<Value>(&tool_call.arguments).unwrap()["q"].is_string());
    let sent = last_body(&sim);
    assert_eq!(
        sent["tools"][0],
        serde_json::json!({"type": "function", "name": "lookup",
            "description": "Look something up", "parameters": lookup().parameters,
            "strict": false})
    );

    let mut streamed = with_tools.clone();
    streamed.stream = true;
    let Outcome::Stream(events) = call_outcome(adapter(&sim), streamed).await else {
        panic!()
    };
    let (accumulator, error) = accumulate(&events);
    assert!(error.is_none(), "{events:?}");
    assert_eq!(
        accumulator.tool_calls(),
        called.message.tool_calls.as_slice()
    );
    assert_eq!(accumulator.finish_reason(), Some(&FinishReason::ToolCalls));
    let fragments = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolCallDelta { index: 0, .. }))
        .count();
    assert!(fragments > 1, "arguments arrive in fragments: {events:?}");

    // The result goes back as a `function_call_output` after the `function_call` item.
    let mut messages = with_tools.messages.to_vec();
    messages.push(Message::assistant_tool_calls([tool_call.clone()]));
    messages.push(Message::tool_result(&tool_call.id, "The sea is salty."));
    let mut answer = with_tools.clone();
    answer.messages = messages.into();
    answer.tool_choice = Some(seawall_core::ToolChoice::None);
    let Outcome::Complete(answered) = call_outcome(adapter(&sim), answer).await else {
        panic!("an answer to the tool result")
    };
    assert!(!answered.text().is_empty());
    assert!(answered.message.tool_calls.is_empty());
    let input = last_body(&sim)["input"].clone();
    assert_eq!(input[1]["type"], "function_call");
    assert_eq!(input[1]["call_id"], tool_call.id.as_str());
    assert_eq!(input[1]["arguments"], tool_call.arguments.as_str());
    assert_eq!(input[2]["type"], "function_call_output");
    assert_eq!(input[2]["call_id"], tool_call.id.as_str());
    assert_eq!(input[2]["output"], "The sea is salty.");
    assert_eq!(last_body(&sim)["tool_choice"], "none");
}

#[tokio::test]
async fn a_result_for_an_unknown_call_is_the_apis_400() {
    let sim = Simulator::builder().start().await.unwrap();
    let orphan = ChatRequest::new(
        "gpt-4.1-mini",
        [
            Message::user("Look it up."),
            Message::tool_result("call_missing", "found"),
        ],
    );
    let Outcome::Failed(error) = call_outcome(adapter(&sim), orphan).await else {
        panic!()
    };
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(error.status(), Some(400));
    assert!(error.message().contains("call_missing"), "{error}");
}

#[tokio::test]
async fn requests_the_api_refuses_are_refused_before_sending() {
    let sim = Simulator::builder().start().await.unwrap();
    let mut with_stop = request(false);
    with_stop.stop = vec!["\n".to_owned()].into();
    let tiny_cap = request(false).with_max_output_tokens(8);
    for refused in [with_stop, tiny_cap] {
        let Outcome::Failed(error) = call_outcome(adapter(&sim), refused).await else {
            panic!()
        };
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
        assert_eq!(error.provider(), Some(ProviderKind::OpenAiResponses));
    }
    assert!(
        sim.requests_for(Provider::OpenAi).is_empty(),
        "nothing sent"
    );
}

async fn with_fault(sim: &Simulator, fault: Fault, stream: bool) -> Outcome {
    sim.set_faults(Provider::OpenAi, vec![FaultRule::first(1, fault)]);
    let outcome = call_outcome(adapter(sim), request(stream)).await;
    sim.clear_faults(Provider::OpenAi);
    outcome
}

fn expect_error(outcome: &Outcome, kind: ErrorKind, what: &str) -> LlmError {
    let error = match outcome {
        Outcome::Failed(error) => error.clone(),
        Outcome::Stream(events) => accumulate(events)
            .1
            .unwrap_or_else(|| panic!("{what}: the stream ends in an error: {events:?}")),
        Outcome::Complete(response) => panic!("{what}: succeeded: {response:?}"),
    };
    assert_eq!(error.kind(), kind, "{what}: {error:?}");
    assert_eq!(
        error.provider(),
        Some(ProviderKind::OpenAiResponses),
        "{what}"
    );
    error
}

#[tokio::test]
async fn faults_map_to_the_error_kinds_of_openai() {
    let sim = Simulator::builder().seed(5).start().await.unwrap();
    for stream in [false, true] {
        let what = |fault: &str| format!("stream={stream} {fault}");
        for (status, kind) in [
            (400, ErrorKind::InvalidRequest),
            (401, ErrorKind::Auth),
            (404, ErrorKind::NotFound),
            (500, ErrorKind::Server),
        ] {
            let outcome = with_fault(&sim, Fault::status(status), stream).await;
            let error = expect_error(&outcome, kind, &what(&format!("status {status}")));
            assert_eq!(error.status(), Some(status));
        }
        let outcome = with_fault(&sim, Fault::overloaded(), stream).await;
        expect_error(&outcome, ErrorKind::Overloaded, &what("overloaded"));
        for (limit, kind) in [
            (RateLimitKind::Requests, ErrorKind::RateLimited),
            (RateLimitKind::QuotaExhausted, ErrorKind::QuotaExhausted),
            (RateLimitKind::RequestTooLarge, ErrorKind::RequestTooLarge),
        ] {
            let fault = Fault::RateLimited {
                limit,
                retry: RetryHeaders {
                    retry_after: Some(seawall_sim::RetryAfter::Seconds(3)),
                    ..RetryHeaders::default()
                },
            };
            let outcome = with_fault(&sim, fault, stream).await;
            let error = expect_error(&outcome, kind, &what(&format!("429 {limit:?}")));
            if limit == RateLimitKind::Requests {
                assert_eq!(
                    error.hints().retry_after,
                    Some(std::time::Duration::from_secs(3))
                );
            }
        }
        let outcome = with_fault(&sim, Fault::HtmlPage { status: 502 }, stream).await;
        expect_error(&outcome, ErrorKind::Server, &what("html"));
        let outcome = with_fault(&sim, Fault::Disconnect, stream).await;
        expect_error(&outcome, ErrorKind::Connect, &what("disconnect"));
    }
}

#[tokio::test]
async fn stream_faults_end_in_the_right_error() {
    let sim = Simulator::builder().seed(5).start().await.unwrap();
    let outcome = with_fault(&sim, Fault::CutAfter { events: 2 }, true).await;
    expect_error(&outcome, ErrorKind::StreamTruncated, "cut");
    let outcome = with_fault(&sim, Fault::EndWithoutTerminal { events: None }, true).await;
    expect_error(&outcome, ErrorKind::StreamTruncated, "no terminal");

    // `error` (nested, as the API sends it), then `response.failed`: the first one ends it.
    let outcome = with_fault(&sim, Fault::ErrorFrameAfter { events: 2 }, true).await;
    let error = expect_error(&outcome, ErrorKind::Server, "error frame");
    assert_eq!(error.code(), Some("server_error"));
    let Outcome::Stream(events) = &outcome else {
        panic!()
    };
    let errors = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Error(_)))
        .count();
    assert_eq!(errors, 1, "{events:?}");

    // A frame that is not JSON is skipped and counted; the answer is whole.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(
            1,
            Fault::MalformedChunkAfter { events: 3 },
        )],
    );
    let skipping = adapter(&sim);
    let metrics = skipping.stream_metrics().clone();
    let Outcome::Stream(events) = call_outcome(skipping, request(true)).await else {
        panic!()
    };
    let (accumulator, error) = accumulate(&events);
    assert!(error.is_none() && accumulator.is_complete(), "{events:?}");
    assert_eq!(metrics.malformed_skipped(), 1);
    // Under `Fail`, the same frame ends the stream.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(
            1,
            Fault::MalformedChunkAfter { events: 3 },
        )],
    );
    let failing = adapter(&sim).with_malformed_policy(MalformedPolicy::Fail);
    let outcome = call_outcome(failing, request(true)).await;
    expect_error(&outcome, ErrorKind::Decode, "malformed under Fail");
    sim.clear_faults(Provider::OpenAi);
}
