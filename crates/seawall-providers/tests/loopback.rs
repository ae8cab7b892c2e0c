//! The adapters over the default hyper-util client and real loopback HTTP: a tiny hyper
//! server in the test streams scripted SSE with awkward chunk boundaries, cuts the
//! connection mid-stream, ends without the terminal marker, or sends an error frame.
//!
//! Real clock, short pauses (paused time and real sockets do not mix); no timing asserts.

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use seawall_core::{ChatRequest, ErrorKind, FinishReason, LlmError, Message, StreamEvent};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{Anthropic, AnthropicConfig, Gemini, GeminiConfig, OpenAi, OpenAiConfig};
use support::accumulate;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// One step of a scripted response body.
#[derive(Debug, Clone)]
enum Step {
    Send(Bytes),
    Pause(Duration),
    /// Abort the connection mid-body (the chunked encoding never terminates).
    Cut,
}

/// A response body that plays a script.
struct Scripted {
    steps: VecDeque<Step>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            match self.steps.pop_front() {
                Some(Step::Send(bytes)) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Some(Step::Pause(wait)) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
                Some(Step::Cut) => {
                    return Poll::Ready(Some(Err(std::io::Error::other("cut mid-stream"))));
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

/// What the server saw.
#[derive(Debug, Clone, Default)]
struct Seen {
    path: String,
    body: Vec<u8>,
}

/// Serves `connections` connections on 127.0.0.1:0, answering every request with `status`,
/// `content_type` and the script, then stops.
async fn serve(
    status: u16,
    content_type: &'static str,
    script: Vec<Step>,
    connections: usize,
) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            let log = log.clone();
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let script = script.clone();
                    let log = log.clone();
                    async move {
                        let path = request
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        log.lock().unwrap().push(Seen {
                            path,
                            body: body.to_vec(),
                        });
                        let body = Scripted {
                            steps: script.into(),
                            sleep: None,
                        };
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", content_type)
                                .body(body)
                                .unwrap(),
                        )
                    }
                },
            );
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// `text` cut at awkward places: inside `data:`, between `\r` and `\n`, inside a
/// multi-byte character, with short pauses so the pieces travel separately.
fn awkward(text: &str) -> Vec<Step> {
    let bytes = text.as_bytes();
    let mut steps = Vec::new();
    let sizes = [1, 5, 2, 11, 3, 7, 64, 1, 1, 29];
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        steps.push(Step::Send(Bytes::copy_from_slice(&bytes[at..at + n])));
        if i % 4 == 0 {
            steps.push(Step::Pause(Duration::from_millis(1)));
        }
        at += n;
        i += 1;
    }
    steps
}

fn client() -> HttpClient {
    HttpClientConfig::default().build().expect("client builds")
}

async fn collect(response: seawall_core::ChatResponse) -> Vec<StreamEvent> {
    response.stream.expect("streamed").collect().await
}

const OPENAI_STREAM: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
: keep-alive comment\n\n\
data: {\"id\":\"c1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüße, \"},\"finish_reason\":null}],\"usage\":null}\r\n\r\n\
data: {\"id\":\"c1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"名前 🌊\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":4,\"total_tokens\":11}}\n\n\
data: [DONE]\n\n";

fn openai(addr: SocketAddr) -> OpenAi<HttpClient> {
    OpenAi::new(
        client(),
        OpenAiConfig::new("sk-test").with_base_url(format!("http://{addr}/v1")),
    )
}

fn stream_request(model: &str) -> ChatRequest {
    ChatRequest::new(model, [Message::user("Say hi")]).streaming()
}

#[tokio::test]
async fn openai_stream_with_awkward_chunk_boundaries_over_loopback() {
    let (addr, seen) = serve(
        200,
        "text/event-stream; charset=utf-8",
        awkward(OPENAI_STREAM),
        1,
    )
    .await;
    let response = openai(addr)
        .oneshot(stream_request("gpt-4o"))
        .await
        .unwrap();
    let events = collect(response).await;
    let (accumulator, error) = accumulate(&events);
    assert!(error.is_none(), "{events:?}");
    assert_eq!(accumulator.text(), "Grüße, 名前 🌊");
    assert_eq!(accumulator.finish_reason(), Some(&FinishReason::Stop));
    assert_eq!(accumulator.usage().map(|u| u.total()), Some(11));
    assert_eq!(accumulator.model(), Some("gpt-4o-2024-08-06"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_a_truncation_error() {
    let cut_at = OPENAI_STREAM.find("finish_reason\":\"stop").unwrap() - 40;
    let mut script = awkward(&OPENAI_STREAM[..cut_at]);
    script.push(Step::Pause(Duration::from_millis(2)));
    script.push(Step::Cut);
    let (addr, _) = serve(200, "text/event-stream", script, 1).await;
    let response = openai(addr)
        .oneshot(stream_request("gpt-4o"))
        .await
        .unwrap();
    let events = collect(response).await;
    let (accumulator, error) = accumulate(&events);
    let error = error.expect("the stream ends in an error");
    assert_eq!(error.kind(), ErrorKind::StreamTruncated);
    assert!(
        accumulator.text().starts_with("Grüße"),
        "text before the cut arrived"
    );
    assert!(!accumulator.is_complete());
    assert!(matches!(events.last(), Some(StreamEvent::Error(_))));
}

#[tokio::test]
async fn a_clean_end_without_the_terminal_marker_is_a_truncation_error() {
    let anthropic_stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}   }\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n";
    let (addr, seen) = serve(200, "text/event-stream", awkward(anthropic_stream), 1).await;
    let adapter = Anthropic::new(
        client(),
        AnthropicConfig::new("sk-ant").with_base_url(format!("http://{addr}")),
    );
    let response = adapter
        .oneshot(stream_request("claude-sonnet-4-5"))
        .await
        .unwrap();
    let events = collect(response).await;
    let (accumulator, error) = accumulate(&events);
    assert_eq!(accumulator.text(), "Hello");
    assert_eq!(
        error.map(|e| e.kind()),
        Some(ErrorKind::StreamTruncated),
        "no message_stop: never passed off as complete"
    );
    assert_eq!(seen.lock().unwrap()[0].path, "/v1/messages");

    // The same stream with its message_stop completes.
    let complete =
        format!("{anthropic_stream}event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n");
    let (addr, _) = serve(200, "text/event-stream", awkward(&complete), 1).await;
    let adapter = Anthropic::new(
        client(),
        AnthropicConfig::new("sk-ant").with_base_url(format!("http://{addr}")),
    );
    let events = collect(
        adapter
            .oneshot(stream_request("claude-sonnet-4-5"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::Stop))
    );
}

#[tokio::test]
async fn an_error_frame_mid_stream_yields_its_mapped_kind() {
    let gemini_stream = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"1\\n2\\n\"}]}}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r\"}\r\n\r\n\
data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
    let (addr, seen) = serve(200, "text/event-stream", awkward(gemini_stream), 1).await;
    let adapter = Gemini::new(
        client(),
        GeminiConfig::new("AIza-test").with_base_url(format!("http://{addr}")),
    );
    let events = collect(
        adapter
            .oneshot(stream_request("gemini-2.5-flash"))
            .await
            .unwrap(),
    )
    .await;
    let (accumulator, error) = accumulate(&events);
    assert_eq!(accumulator.text(), "1\n2\n");
    let error = error.unwrap();
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    assert_eq!(error.code(), Some("UNAVAILABLE"));
    assert_eq!(
        seen.lock().unwrap()[0].path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn error_statuses_and_complete_responses_over_loopback() {
    let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_9"}"#;
    let (addr, _) = serve(529, "application/json", awkward(body), 1).await;
    let adapter = Anthropic::new(
        client(),
        AnthropicConfig::new("sk-ant").with_base_url(format!("http://{addr}")),
    );
    let error = adapter
        .oneshot(ChatRequest::new("claude", [Message::user("hi")]))
        .await
        .unwrap_err()
        .downcast::<LlmError>()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    assert_eq!(error.status(), Some(529));
    assert_eq!(error.request_id(), Some("req_9"));

    let ok = r#"{"id":"chatcmpl-9","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let (addr, _) = serve(200, "application/json", awkward(ok), 1).await;
    let response = openai(addr)
        .oneshot(ChatRequest::new("gpt-4o-mini", [Message::user("ping")]))
        .await
        .unwrap();
    assert_eq!(response.text(), "pong");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    // Bind then drop a listener so the port is (very likely) closed.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let error = openai(addr)
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]))
        .await
        .unwrap_err()
        .downcast::<LlmError>()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Connect);
    assert!(
        !format!("{error:?}").contains("sk-test"),
        "no key in the error"
    );
}
