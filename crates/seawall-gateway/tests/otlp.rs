//! OTLP trace export (`[telemetry]`): a chat call that fails over, with the caller's
//! `traceparent`, arrives at a collector stand-in as one trace that continues the caller's:
//! the request span, the call span under it and an attempt span per target tried, with the
//! GenAI attributes; each upstream request names its attempt's span; no key is exported.
//!
//! One test in this binary: it installs the process's global subscriber.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use seawall_gateway::telemetry::Telemetry;
use seawall_gateway::{TelemetryConfig, VirtualKeyConfig};
use seawall_sim::{Fault, FaultRule, Provider};
use tokio::net::TcpListener;

mod support;
use support::{hello, send, start_with};

const VIRTUAL_KEY: &str = "vk-otlp-secret-7f3a9c";
/// What the demo's targets send upstream as their key.
const PROVIDER_KEY: &str = "sk-sim";
const COLLECTOR_TOKEN: &str = "Bearer otlp-collector-token-51d2";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// What the collector stand-in received: each export's headers and body.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>);

/// A collector stand-in on 127.0.0.1:0: stores each `POST /v1/traces` and answers 200 with
/// an empty `ExportTraceServiceResponse`.
async fn collector() -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<Incoming>| {
                    let store = store.clone();
                    async move {
                        assert_eq!(request.uri().path(), "/v1/traces");
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        store.0.lock().unwrap().push((parts.headers, body));
                        let mut reply = http::Response::new(Full::new(Bytes::new()));
                        reply.headers_mut().insert(
                            "content-type",
                            http::HeaderValue::from_static("application/x-protobuf"),
                        );
                        Ok::<_, Infallible>(reply)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    (addr, received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match attr(span, key) {
        Some(Value::StringValue(s)) => s,
        other => panic!("{}: {key} = {other:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::IntValue(n)) => *n,
        other => panic!("{}: {key} = {other:?}", span.name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_over_call_is_exported_as_one_trace_continuing_the_callers() {
    let (collector_addr, received) = collector().await;
    let mut telemetry_config = TelemetryConfig::default();
    telemetry_config.otlp_endpoint = Some(format!("http://{collector_addr}"));
    telemetry_config.service_name = Some("gateway-under-test".to_owned());
    telemetry_config
        .headers_env
        .insert("authorization".to_owned(), "OTLP_TOKEN".to_owned());
    let env = |name: &str| (name == "OTLP_TOKEN").then(|| COLLECTOR_TOKEN.to_owned());
    let telemetry = Telemetry::from_config(&telemetry_config, &env)
        .unwrap()
        .expect("an endpoint is set");
    // Log lines off, the exporter on: its filter is its own.
    tracing::subscriber::set_global_default(seawall_gateway::access::subscriber_with(
        "off",
        std::io::sink,
        Some(&telemetry),
    ))
    .unwrap();
    tracing::callsite::rebuild_interest_cache();
    // The exporter takes the layers' spans, not the access lines (the log's, here off).
    assert!(tracing::enabled!(target: "seawall::failover", tracing::Level::INFO));
    assert!(!tracing::enabled!(target: "seawall_gateway::access", tracing::Level::INFO));
    assert!(!tracing::enabled!(target: "seawall::failover", tracing::Level::DEBUG));

    let (sim, gateway) = start_with(
        |c| {
            c.telemetry = telemetry_config.clone();
            c.targets[0].max_attempts = Some(1);
            c.keys.push(VirtualKeyConfig {
                name: "team-otlp".into(),
                key_env: "OTLP_VK".into(),
                requests_per_minute: None,
                token_budget: None,
                budgets: Vec::new(),
            });
        },
        &[("OTLP_VK", VIRTUAL_KEY), ("OTLP_TOKEN", COLLECTOR_TOKEN)],
    )
    .await;
    // The first target fails once: the call fails over to the second.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::status(500))],
    );
    let body = serde_json::to_vec(&hello(false)).unwrap();
    let auth = format!("Bearer {VIRTUAL_KEY}");
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = send(
        gateway.local_addr(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth), ("traceparent", &traceparent)],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
    let upstream: Vec<String> = sim
        .requests()
        .iter()
        .map(|r| r.header("traceparent").expect("a traceparent").to_owned())
        .collect();
    assert_eq!(upstream.len(), 2, "the failed attempt and the failover");

    // A stream without a traceparent: a trace of the gateway's own, whose request span
    // ends with the stream.
    sim.clear_log();
    let body = serde_json::to_vec(&hello(true)).unwrap();
    let streamed = send(
        gateway.local_addr(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(streamed.status, 200, "{}", streamed.body);
    assert_eq!(streamed.events().last(), Some(&"[DONE]"));
    let [stream_upstream] = &sim.requests()[..] else {
        panic!("one upstream request");
    };
    let stream_upstream = stream_upstream
        .header("traceparent")
        .expect("a traceparent")
        .to_owned();

    // Bounded and deterministic: the server drains, then the exporter's shutdown sends
    // what is queued and returns once the collector has answered.
    gateway.shutdown().await;
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();

    let exports = received.0.lock().unwrap().clone();
    assert!(!exports.is_empty(), "nothing reached the collector");
    let mut spans = Vec::new();
    for (headers, bytes) in &exports {
        assert_eq!(
            headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(COLLECTOR_TOKEN),
            "the configured header reaches the collector"
        );
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/x-protobuf")
        );
        for secret in [VIRTUAL_KEY, PROVIDER_KEY, COLLECTOR_TOKEN] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} was exported"
            );
        }
        let request = ExportTraceServiceRequest::decode(bytes.as_ref()).expect("OTLP protobuf");
        for resource in request.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            assert_eq!(
                service,
                Some(Value::StringValue("gateway-under-test".into()))
            );
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }

    let by_id: HashMap<String, &Span> = spans.iter().map(|s| (hex(&s.span_id), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");
    // Two traces: the caller's, and the stream's own.
    let (spans, own): (Vec<Span>, Vec<Span>) = spans
        .into_iter()
        .partition(|span| hex(&span.trace_id) == TRACE_ID);
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };

    // The request span, a child of the caller's span.
    let [server] = named("POST /v1/chat/completions")[..] else {
        panic!("one request span: {spans:#?}");
    };
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(text(server, "http.request.method"), "POST");
    assert_eq!(text(server, "url.path"), "/v1/chat/completions");
    assert_eq!(int(server, "http.response.status_code"), 200);
    assert_eq!(text(server, "seawall.key.name"), "team-otlp");

    // The call, under the request.
    let [call] = named("chat")[..] else {
        panic!("one call span: {spans:#?}");
    };
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(text(call, "gen_ai.operation.name"), "chat");
    assert_eq!(text(call, "gen_ai.request.model"), "demo");
    assert_eq!(text(call, "gen_ai.provider.name"), "anthropic");
    assert_eq!(
        text(call, "gen_ai.response.model"),
        "claude-3-5-haiku-latest"
    );
    assert!(int(call, "gen_ai.usage.input_tokens") > 0);
    assert!(int(call, "gen_ai.usage.output_tokens") > 0);

    // An attempt per target tried, under the call, in order.
    let mut attempts = named("attempt");
    attempts.sort_by_key(|s| int(s, "seawall.attempt"));
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for attempt in &attempts {
        assert_eq!(attempt.parent_span_id, call.span_id);
    }
    let (failed, answered) = (attempts[0], attempts[1]);
    assert_eq!(text(failed, "seawall.target"), "sim-openai");
    assert_eq!(text(failed, "gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(text(failed, "seawall.outcome"), "failed");
    assert!(attr(failed, "error.type").is_some());
    assert_eq!(text(answered, "seawall.target"), "sim-anthropic");
    assert_eq!(
        text(answered, "gen_ai.request.model"),
        "claude-3-5-haiku-latest"
    );
    assert_eq!(text(answered, "seawall.outcome"), "succeeded");
    assert_eq!(text(answered, "gen_ai.provider.name"), "anthropic");
    assert!(int(answered, "gen_ai.usage.output_tokens") > 0);

    // Each upstream request carried its attempt's span as the parent, in the caller's
    // trace.
    for (sent, attempt) in upstream.iter().zip(&attempts) {
        assert_eq!(
            sent,
            &format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id)),
            "attempt {}",
            int(attempt, "seawall.attempt")
        );
    }

    // The stream's trace: a root request span, the call, one attempt, and the attempt's
    // span upstream.
    let own_named = |name: &str| -> Vec<&Span> { own.iter().filter(|s| s.name == name).collect() };
    assert_eq!(own.len(), 3, "{own:#?}");
    let ([server], [call], [attempt]) = (
        &own_named("POST /v1/chat/completions")[..],
        &own_named("chat")[..],
        &own_named("attempt")[..],
    ) else {
        panic!("{own:#?}");
    };
    assert!(server.parent_span_id.is_empty(), "a root span");
    assert_eq!(int(server, "http.response.status_code"), 200);
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(attempt.parent_span_id, call.span_id);
    assert_eq!(text(attempt, "seawall.target"), "sim-openai");
    assert_eq!(text(call, "gen_ai.provider.name"), "openai");
    // The request span ends with the stream, after the call and its attempt.
    assert!(server.end_time_unix_nano >= call.end_time_unix_nano);
    assert!(call.end_time_unix_nano >= attempt.end_time_unix_nano);
    assert_eq!(
        stream_upstream,
        format!("00-{}-{}-01", hex(&attempt.trace_id), hex(&attempt.span_id))
    );
}
