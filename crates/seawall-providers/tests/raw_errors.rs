//! The raw-HTTP path classifies an error response like the typed adapter does: the
//! `ReadErrorBodyLayer` reads the body and the layers above decide from what it says, not
//! from the status alone. Against the simulator over loopback (real clock, no timing
//! asserts).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use seawall::ServiceBuilderExt;
use seawall::breaker::BreakerLayer;
use seawall::retry::{Backoff, RetryLayer};
use seawall_core::{BoxError, Disposition, ErrorKind, LlmResponse, classify};
use seawall_providers::raw::ReadErrorBodyLayer;
use seawall_sim::{Fault, FaultRule, Provider, RateLimitKind, RetryHeaders, Simulator};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type RawClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> RawClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn retry() -> RetryLayer {
    RetryLayer::new().max_attempts(3).backoff(Backoff::new(
        Duration::from_millis(1),
        Duration::from_millis(2),
    ))
}

fn chat(sim: &Simulator, prompt: &str) -> http::Request<Full<Bytes>> {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": prompt}],
    });
    http::Request::post(format!(
        "{}/chat/completions",
        sim.base_url(Provider::OpenAi)
    ))
    .header("content-type", "application/json")
    .header("authorization", "Bearer sk-test")
    .body(Full::new(Bytes::from(body.to_string())))
    .expect("a valid request")
}

fn quota_exhausted() -> Fault {
    Fault::RateLimited {
        limit: RateLimitKind::QuotaExhausted,
        retry: RetryHeaders::default(),
    }
}

#[tokio::test]
async fn a_raw_insufficient_quota_429_is_not_retried() -> Result<(), BoxError> {
    let sim = Simulator::builder().start().await?;
    sim.set_faults(Provider::OpenAi, vec![FaultRule::always(quota_exhausted())]);

    let service = ServiceBuilder::new()
        .retry_target(retry())
        .breaker(BreakerLayer::new("openai"))
        .layer(ReadErrorBodyLayer::openai())
        .service(client());
    let response = service.oneshot(chat(&sim, "hello")).await?;

    assert_eq!(response.status(), 429);
    let failure = response.failure().expect("a 429 is a failure");
    assert_eq!(failure.kind(), ErrorKind::QuotaExhausted);
    assert_eq!(classify(&failure).disposition, Disposition::Failover);
    assert_eq!(
        sim.requests_for(Provider::OpenAi).len(),
        1,
        "a spent quota is never retried"
    );
    // The caller still reads the provider's own body.
    let body = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(json["error"]["code"], "insufficient_quota");

    // From the status alone, the same 429 looks like an ordinary rate limit and is retried.
    sim.clear_log();
    let status_only = ServiceBuilder::new()
        .retry_target(retry())
        .service(client());
    let response = status_only.oneshot(chat(&sim, "hello")).await?;
    assert_eq!(
        response.failure().map(|failure| failure.kind()),
        Some(ErrorKind::RateLimited)
    );
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 3);
    Ok(())
}

#[tokio::test]
async fn a_raw_context_length_400_fails_over() -> Result<(), BoxError> {
    let sim = Simulator::builder()
        .configure(Provider::OpenAi, |settings| {
            settings.context_window = Some(64);
        })
        .start()
        .await?;
    let long = "the harbour wall holds against the tide ".repeat(40);

    let breaker = BreakerLayer::builder("openai")
        .consecutive_failures(1)
        .build();
    let handle = breaker.handle();
    let service = ServiceBuilder::new()
        .retry_target(retry())
        .breaker(breaker)
        .layer(ReadErrorBodyLayer::openai())
        .service(client());
    let response = service.oneshot(chat(&sim, &long)).await?;

    assert_eq!(response.status(), 400);
    let failure = response.failure().expect("a 400 is a failure");
    assert_eq!(failure.kind(), ErrorKind::ContextLengthExceeded);
    let verdict = classify(&failure);
    assert_eq!(
        verdict.disposition,
        Disposition::Failover,
        "a larger window may take it"
    );
    assert!(!verdict.health_failure);
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 1);
    assert_eq!(
        handle.state(),
        seawall_core::BreakerState::Closed,
        "the caller's prompt says nothing about the target's health"
    );

    // From the status alone it is an invalid request: fatal, no failover.
    let status_only = client();
    let response = status_only.oneshot(chat(&sim, &long)).await?;
    let failure = response.failure().expect("a 400 is a failure");
    assert_eq!(classify(&failure).disposition, Disposition::Fatal);
    Ok(())
}

#[tokio::test]
async fn an_error_body_past_the_bound_is_decoded_from_its_start_and_relayed_whole()
-> Result<(), BoxError> {
    let mut body = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded","padding":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 100_000));
    body.extend_from_slice(br#""}}"#);
    let body = Bytes::from(body);
    let served = body.clone();
    let upstream = service_fn(move |_request: http::Request<Full<Bytes>>| {
        let body = served.clone();
        async move {
            let response = http::Response::builder()
                .status(429)
                .body(Full::new(body))?;
            Ok::<_, BoxError>(response)
        }
    });
    let service = ReadErrorBodyLayer::openai().max_body(1024);
    let service = tower::Layer::layer(&service, upstream);
    let request = http::Request::post("http://localhost/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{}")))?;
    let response = service.oneshot(request).await?;

    assert!(response.failure().is_some());
    let relayed = response.into_body().collect().await?.to_bytes();
    assert_eq!(relayed, body, "not a byte lost");
    Ok(())
}

#[tokio::test]
async fn a_successful_response_passes_through_unread() -> Result<(), BoxError> {
    let sim = Simulator::builder().start().await?;
    let service = ServiceBuilder::new()
        .layer(ReadErrorBodyLayer::openai())
        .service(client());
    let response = service.oneshot(chat(&sim, "hello")).await?;
    assert_eq!(response.status(), 200);
    assert!(response.failure().is_none());
    assert!(
        response
            .extensions()
            .get::<seawall_core::LlmError>()
            .is_none()
    );
    let body = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(json["object"], "chat.completion");
    Ok(())
}
