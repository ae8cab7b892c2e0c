//! Round trips against the simulator over real loopback HTTP, every provider, streaming and
//! not, and every fault mode the simulator offers.

mod support;

use seawall_core::{
    ChatRequest, ErrorKind, Message, StreamAccumulator, StreamEvent, ToolDefinition,
};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{
    Anthropic, AnthropicConfig, Gemini, GeminiConfig, OpenAi, OpenAiConfig, ServerKind,
};
use seawall_sim::{Fault, FaultRule, Provider, RateLimitKind, RetryHeaders, Simulator};
use support::{Outcome, accumulate, call_outcome, sea_request};
use tower::ServiceExt;

const PROVIDERS: [Provider; 6] = [
    Provider::OpenAi,
    Provider::Anthropic,
    Provider::Gemini,
    Provider::Ollama,
    Provider::Vllm,
    Provider::LlamaCpp,
];

fn client() -> HttpClient {
    HttpClientConfig::default().build().unwrap()
}

async fn call(sim: &Simulator, provider: Provider, request: ChatRequest) -> Outcome {
    let base = sim.base_url(provider);
    let http = client();
    match provider {
        Provider::OpenAi => {
            call_outcome(
                OpenAi::new(http, OpenAiConfig::new("sk-test").with_base_url(base)),
                request,
            )
            .await
        }
        Provider::Anthropic => {
            call_outcome(
                Anthropic::new(http, AnthropicConfig::new("sk-test").with_base_url(base)),
                request,
            )
            .await
        }
        Provider::Gemini => {
            call_outcome(
                Gemini::new(http, GeminiConfig::new("sk-test").with_base_url(base)),
                request,
            )
            .await
        }
        Provider::Ollama => {
            call_outcome(
                OpenAi::new(http, OpenAiConfig::compatible(base, ServerKind::Ollama)),
                request,
            )
            .await
        }
        Provider::Vllm => {
            call_outcome(
                OpenAi::new(http, OpenAiConfig::compatible(base, ServerKind::Vllm)),
                request,
            )
            .await
        }
        Provider::LlamaCpp => {
            call_outcome(
                OpenAi::new(http, OpenAiConfig::compatible(base, ServerKind::LlamaCpp)),
                request,
            )
            .await
        }
    }
}

fn request(stream: bool) -> ChatRequest {
    sea_request("model-1", stream)
}

#[tokio::test]
async fn every_provider_answers_streamed_and_not() {
    let sim = Simulator::builder().seed(3).start().await.unwrap();
    for provider in PROVIDERS {
        let Outcome::Complete(complete) = call(&sim, provider, request(false)).await else {
            panic!("{provider:?}: a complete response");
        };
        assert!(!complete.text().is_empty(), "{provider:?}");
        assert!(
            complete.usage.is_some_and(|u| u.total() > 0),
            "{provider:?}"
        );
        let Outcome::Stream(events) = call(&sim, provider, request(true)).await else {
            panic!("{provider:?}: a stream");
        };
        let (accumulator, error) = accumulate(&events);
        assert!(error.is_none(), "{provider:?}: {events:?}");
        assert!(accumulator.is_complete(), "{provider:?}");
        assert_eq!(
            accumulator.text(),
            complete.text(),
            "{provider:?}: deterministic text"
        );
        assert!(
            accumulator.usage().is_some_and(|u| u.total() > 0),
            "{provider:?}: usage at the end"
        );
        // Tools: the simulator calls an offered tool.
        let with_tools = request(false).with_tools([ToolDefinition::new(
            "lookup",
            "Look something up",
            serde_json::json!({"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}),
        )]);
        let Outcome::Complete(called) = call(&sim, provider, with_tools.clone()).await else {
            panic!("{provider:?}: tools");
        };
        assert_eq!(called.message.tool_calls.len(), 1, "{provider:?}");
        let mut streamed_tools = with_tools;
        streamed_tools.stream = true;
        let Outcome::Stream(events) = call(&sim, provider, streamed_tools).await else {
            panic!()
        };
        let (accumulator, error) = accumulate(&events);
        assert!(error.is_none(), "{provider:?}");
        assert_eq!(
            accumulator.tool_calls(),
            called.message.tool_calls.as_slice(),
            "{provider:?}"
        );
    }
}

async fn with_fault(sim: &Simulator, provider: Provider, fault: Fault, stream: bool) -> Outcome {
    sim.set_faults(provider, vec![FaultRule::first(1, fault)]);
    let outcome = call(sim, provider, request(stream)).await;
    sim.clear_faults(provider);
    outcome
}

fn expect_error(outcome: &Outcome, kind: ErrorKind, what: &str) {
    match outcome {
        Outcome::Failed(error) => assert_eq!(error.kind(), kind, "{what}: {error:?}"),
        Outcome::Stream(events) => {
            let (_, error) = accumulate(events);
            let error =
                error.unwrap_or_else(|| panic!("{what}: the stream ends in an error: {events:?}"));
            assert_eq!(error.kind(), kind, "{what}: {error:?}");
        }
        Outcome::Complete(response) => panic!("{what}: succeeded: {response:?}"),
    }
}

#[tokio::test]
async fn every_fault_mode_gives_the_expected_kind() {
    let sim = Simulator::builder().seed(5).start().await.unwrap();
    for provider in PROVIDERS {
        for stream in [false, true] {
            let what = |fault: &str| format!("{provider:?} stream={stream} {fault}");
            let statuses = [
                (400, ErrorKind::InvalidRequest),
                (401, ErrorKind::Auth),
                (403, ErrorKind::Permission),
                (404, ErrorKind::NotFound),
                (500, ErrorKind::Server),
                (504, ErrorKind::Timeout),
            ];
            for (status, kind) in statuses {
                let outcome = with_fault(&sim, provider, Fault::status(status), stream).await;
                expect_error(&outcome, kind, &what(&format!("status {status}")));
            }
            let outcome = with_fault(&sim, provider, Fault::overloaded(), stream).await;
            expect_error(&outcome, ErrorKind::Overloaded, &what("overloaded"));
            for (limit, kind) in [
                (RateLimitKind::Requests, ErrorKind::RateLimited),
                (RateLimitKind::Tokens, ErrorKind::RateLimited),
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
                // Only OpenAI's body tells a request too large for the limit; locals send one 429.
                let kind = match (provider, kind) {
                    (Provider::Ollama | Provider::Vllm | Provider::LlamaCpp, _) => {
                        ErrorKind::RateLimited
                    }
                    (Provider::Anthropic | Provider::Gemini, ErrorKind::RequestTooLarge) => {
                        ErrorKind::RateLimited
                    }
                    (_, kind) => kind,
                };
                let outcome = with_fault(&sim, provider, fault, stream).await;
                let label = what(&format!("429 {limit:?}"));
                if matches!(
                    provider,
                    Provider::Ollama | Provider::Vllm | Provider::LlamaCpp
                ) && !matches!(outcome, Outcome::Failed(_))
                {
                    panic!("{label}: {outcome:?}");
                }
                expect_error(&outcome, kind, &label);
                if let Outcome::Failed(error) = &outcome {
                    if limit == RateLimitKind::Requests {
                        assert_eq!(
                            error.hints().retry_after,
                            Some(std::time::Duration::from_secs(3)),
                            "{label}"
                        );
                    }
                }
            }
            let outcome = with_fault(&sim, provider, Fault::HtmlPage { status: 502 }, stream).await;
            expect_error(&outcome, ErrorKind::Server, &what("html"));
            let outcome =
                with_fault(&sim, provider, Fault::EmptyBody { status: 503 }, stream).await;
            expect_error(&outcome, ErrorKind::Overloaded, &what("empty"));
            let outcome = with_fault(&sim, provider, Fault::Disconnect, stream).await;
            expect_error(&outcome, ErrorKind::Connect, &what("disconnect"));
            let outcome = with_fault(&sim, provider, Fault::CutAfter { events: 2 }, stream).await;
            expect_error(
                &outcome,
                if stream {
                    ErrorKind::StreamTruncated
                } else {
                    ErrorKind::Connect
                },
                &what("cut"),
            );
            if stream {
                let outcome = with_fault(
                    &sim,
                    provider,
                    Fault::EndWithoutTerminal { events: None },
                    stream,
                )
                .await;
                expect_error(&outcome, ErrorKind::StreamTruncated, &what("no terminal"));
                let outcome = with_fault(
                    &sim,
                    provider,
                    Fault::EndWithoutTerminal { events: Some(2) },
                    stream,
                )
                .await;
                expect_error(
                    &outcome,
                    ErrorKind::StreamTruncated,
                    &what("no terminal after 2"),
                );
                let outcome =
                    with_fault(&sim, provider, Fault::ErrorFrameAfter { events: 2 }, stream).await;
                match &outcome {
                    Outcome::Stream(events) => {
                        let (_, error) = accumulate(events);
                        let error =
                            error.unwrap_or_else(|| panic!("{}: {events:?}", what("error frame")));
                        assert_ne!(
                            error.kind(),
                            ErrorKind::StreamTruncated,
                            "{}: a typed frame, {error:?}",
                            what("error frame")
                        );
                        // The simulator's frames: OpenAI-style `server_error`, Anthropic
                        // `overloaded_error`, Gemini 503 `UNAVAILABLE`.
                        let expected = match provider {
                            Provider::Anthropic | Provider::Gemini => ErrorKind::Overloaded,
                            _ => ErrorKind::Server,
                        };
                        assert_eq!(error.kind(), expected, "{}", what("error frame"));
                        assert!(error.code().is_some(), "{}", what("error frame"));
                    }
                    other => panic!("{}: {other:?}", what("error frame")),
                }
                let outcome = with_fault(
                    &sim,
                    provider,
                    Fault::MalformedChunkAfter { events: 1 },
                    stream,
                )
                .await;
                let Outcome::Stream(events) = &outcome else {
                    panic!()
                };
                let (accumulator, error) = accumulate(events);
                assert!(
                    error.is_none() && accumulator.is_complete(),
                    "{}: {events:?}",
                    what("malformed skipped")
                );
                let outcome = with_fault(
                    &sim,
                    provider,
                    Fault::StallAfter { events: 2, ms: 50 },
                    stream,
                )
                .await;
                let Outcome::Stream(events) = &outcome else {
                    panic!()
                };
                assert!(
                    accumulate(events).0.is_complete(),
                    "{}",
                    what("stall then carry on")
                );
            }
            let outcome = with_fault(&sim, provider, Fault::SlowFirstByte { ms: 30 }, stream).await;
            assert!(
                !matches!(outcome, Outcome::Failed(_)),
                "{}",
                what("slow first byte")
            );
        }
    }
}

/// A user message with an image whose bytes travel in a `data:` URL, as OpenAI's SDKs send a
/// local file.
fn with_image(url: &str) -> ChatRequest {
    let mut message = Message::user("What is in this picture?");
    message
        .content
        .push(seawall_core::ContentPart::image_url(url));
    ChatRequest::new("m", [message])
}

/// A 1x1 PNG.
const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

#[tokio::test]
async fn a_base64_data_url_image_reaches_every_provider_as_inline_bytes() {
    let sim = Simulator::builder().start().await.unwrap();
    for provider in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        match call(&sim, provider, with_image(PNG)).await {
            Outcome::Complete(_) => {}
            other => panic!("{provider:?}: {other:?}"),
        }
    }
    // Anthropic got a base64 source and Gemini inlineData, not a URL to fetch.
    let anthropic = sim.requests_for(Provider::Anthropic);
    let body: serde_json::Value = serde_json::from_slice(&anthropic[0].body).unwrap();
    let source = &body["messages"][0]["content"][1]["source"];
    assert_eq!(source["type"], "base64");
    assert_eq!(source["media_type"], "image/png");
    assert!(source["data"].as_str().unwrap().starts_with("iVBOR"));
    let gemini = sim.requests_for(Provider::Gemini);
    let body: serde_json::Value = serde_json::from_slice(&gemini[0].body).unwrap();
    let inline = &body["contents"][0]["parts"][1]["inlineData"];
    assert_eq!(inline["mimeType"], "image/png");
}

#[tokio::test]
async fn a_plain_data_url_image_is_refused_before_anthropic_and_gemini() {
    let sim = Simulator::builder().start().await.unwrap();
    let svg = "data:image/svg+xml,%3Csvg%20xmlns='http://www.w3.org/2000/svg'/%3E";
    for provider in [Provider::Anthropic, Provider::Gemini] {
        expect_error(
            &call(&sim, provider, with_image(svg)).await,
            ErrorKind::InvalidRequest,
            "a plain data: URL",
        );
        assert!(
            sim.requests_for(provider).is_empty(),
            "{provider:?}: nothing sent"
        );
    }
}

#[tokio::test]
async fn the_simulator_refuses_a_data_url_where_the_apis_want_a_fetchable_url() {
    let sim = Simulator::builder().start().await.unwrap();
    let http = post_old_translation(&sim).await;
    assert_eq!(http, (400, 400));
}

/// Posts, by hand, what the old translation sent: a `data:` URL as Anthropic's `url`
/// source and as Gemini's `fileData`. Returns the two statuses.
async fn post_old_translation(sim: &Simulator) -> (u16, u16) {
    use http_body_util::{BodyExt, Full};
    let client = client();
    let send = |url: String,
                body: serde_json::Value,
                headers: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        async move {
            let mut request = http::Request::post(url).header("content-type", "application/json");
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let request = request
                .body(Full::new(bytes::Bytes::from(body.to_string())))
                .unwrap();
            let response = client.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
    };
    let anthropic = send(
        format!("{}/v1/messages", sim.base_url(Provider::Anthropic)),
        serde_json::json!({
            "model": "claude", "max_tokens": 10,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": PNG}}
            ]}],
        }),
        vec![
            ("x-api-key", "sk-test"),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await;
    let gemini = send(
        format!(
            "{}/v1beta/models/gemini-2.5-flash:generateContent?key=sk-test",
            sim.base_url(Provider::Gemini)
        ),
        serde_json::json!({
            "contents": [{"role": "user", "parts": [
                {"fileData": {"mimeType": "image/png", "fileUri": PNG}}
            ]}],
        }),
        vec![],
    )
    .await;
    (anthropic, gemini)
}

/// The simulator's address, the Azure resource endpoint of these tests.
fn azure_endpoint(sim: &Simulator) -> String {
    format!("http://{}", sim.addr())
}

fn azure_key() -> seawall_providers::ApiKey {
    seawall_providers::ApiKey::new("azure-key-1")
}

#[tokio::test]
async fn an_azure_deployment_answers_as_openai_does_streamed_or_not() {
    let sim = Simulator::builder().start().await.unwrap();
    let endpoint = azure_endpoint(&sim);
    let azure = || {
        OpenAi::new(
            client(),
            OpenAiConfig::azure(&endpoint, "gpt-4o-prod", "2024-10-21", azure_key()),
        )
    };
    let request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    let Outcome::Complete(openai) = call(&sim, Provider::OpenAi, request.clone()).await else {
        panic!("OpenAI answers")
    };
    let Outcome::Complete(complete) = call_outcome(azure(), request.clone()).await else {
        panic!("Azure answers")
    };
    assert_eq!(complete.provider, seawall_core::ProviderKind::AzureOpenAi);
    assert_eq!(complete.text(), openai.text());

    let mut streamed = request;
    streamed.stream = true;
    let Outcome::Stream(events) = call_outcome(azure(), streamed).await else {
        panic!("Azure streams")
    };
    let Some(StreamEvent::Start {
        id: Some(id),
        model: Some(model),
    }) = events.first()
    else {
        panic!("{events:?}")
    };
    assert!(id.starts_with("chatcmpl-"), "{id}");
    assert_eq!(model, "gpt-4o");
    let mut accumulator = StreamAccumulator::new();
    for event in &events {
        accumulator.push(event).unwrap();
    }
    assert_eq!(accumulator.text(), openai.text());

    let log = sim.requests_for(Provider::OpenAi);
    let sent = log.last().unwrap();
    assert_eq!(
        sent.path,
        "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.header("api-key"), Some("[redacted]"));
    assert_eq!(sent.header("authorization"), None);
}

#[tokio::test]
async fn the_simulator_streams_azure_s_prompt_filter_chunk_first() {
    use http_body_util::{BodyExt, Full};
    let sim = Simulator::builder().start().await.unwrap();
    let request = http::Request::post(format!(
        "{}/openai/v1/chat/completions",
        azure_endpoint(&sim)
    ))
    .header("content-type", "application/json")
    .header("api-key", "azure-key-1")
    .body(Full::new(bytes::Bytes::from(
        r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
    )))
    .unwrap();
    let response = client().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(body.lines().next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["id"], "");
    assert_eq!(first["model"], "");
    assert_eq!(first["choices"], serde_json::json!([]));
    assert!(first["prompt_filter_results"][0]["content_filter_results"].is_object());
    assert!(body.contains("\"content_filter_results\":{}"), "{body}");
}

#[tokio::test]
async fn azure_refuses_a_missing_key_and_a_deployment_call_without_api_version() {
    let sim = Simulator::builder().start().await.unwrap();
    let endpoint = azure_endpoint(&sim);
    let request = ChatRequest::new("gpt-4o", [Message::user("Hi")]);

    let mut unversioned = OpenAiConfig::azure(&endpoint, "gpt-4o-prod", "2024-10-21", azure_key());
    unversioned.api_version = None;
    let Outcome::Failed(error) =
        call_outcome(OpenAi::new(client(), unversioned), request.clone()).await
    else {
        panic!("no api-version, no resource")
    };
    assert_eq!(error.kind(), ErrorKind::NotFound);

    let keyless = OpenAiConfig::azure_v1(&endpoint, seawall_providers::ApiKey::new(""));
    let Outcome::Failed(error) = call_outcome(OpenAi::new(client(), keyless), request).await else {
        panic!("an empty api-key is refused")
    };
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert_eq!(error.status(), Some(401));
}
