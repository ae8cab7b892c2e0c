//! The layers on raw HTTP: a plain hyper-util client calling an OpenAI-compatible endpoint
//! (here the simulator's vLLM profile), with no typed adapter in between.
//!
//! ```text
//! Deadline → Retry → Breaker → RateLimit → AttemptTimeout → ReadErrorBody → hyper-util client
//! ```
//!
//! Every layer works on `http::Request<Full<Bytes>>` → `http::Response<B>`: a 4xx or 5xx
//! response is a failure classified from its status, its headers (`retry-after-ms` here) and
//! its body, which `ReadErrorBodyLayer` decodes in the provider's dialect (so a 429
//! `insufficient_quota` is not retried); the limiter is corrected from the `x-ratelimit-*`
//! headers of every response.
//!
//! Run with `cargo run --example raw_http`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seawall::ServiceBuilderExt;
use seawall::breaker::BreakerLayer;
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
use seawall::retry::RetryLayer;
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::BoxError;
use seawall_providers::raw::ReadErrorBodyLayer;
use seawall_sim::{Fault, FaultRule, Provider, RetryHeaders, Simulator};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::builder().start().await?;
    // The first request gets a 503 asking to retry after 300 ms.
    sim.set_faults(
        Provider::Vllm,
        vec![FaultRule::first(
            1,
            Fault::overloaded().with_retry(RetryHeaders {
                retry_after_ms: Some(300),
                ..RetryHeaders::default()
            }),
        )],
    );

    // Any hyper-util client will do; this one speaks plain HTTP/1.1.
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let limiter = RateLimiter::new(
        "vllm/llama",
        RateLimitConfig::new()
            .requests(Rate::per_minute(100))
            .tokens(Rate::per_minute(50_000)),
    );
    let service = ServiceBuilder::new()
        .deadline(Duration::from_secs(10))
        .retry_target(RetryLayer::new().max_attempts(3))
        .breaker(BreakerLayer::new("vllm/llama"))
        .rate_limit_target(limiter.clone())
        .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_secs(5)))
        .layer(ReadErrorBodyLayer::openai())
        .service(client);

    let body = r#"{"model":"llama-3.1-8b","max_tokens":32,"messages":[{"role":"user","content":"Say hello to the harbor."}]}"#;
    let request = http::Request::post(format!("{}/chat/completions", sim.base_url(Provider::Vllm)))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;

    let started = tokio::time::Instant::now();
    let response = service.oneshot(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    println!(
        "status {status} after {} ms: {}",
        started.elapsed().as_millis(),
        String::from_utf8_lossy(&bytes)
    );

    let log = sim.requests_for(Provider::Vllm);
    println!("requests sent: {}", log.len());
    for pair in log.windows(2) {
        println!(
            "  retried after {} ms",
            (pair[1].at - pair[0].at).as_millis()
        );
    }
    let snapshot = limiter.snapshot();
    println!(
        "limiter: {} requests admitted, {} tokens reserved, {} used (charged as estimated: raw \
         HTTP carries no typed usage), {:?} requests left",
        snapshot.requests_admitted,
        snapshot.tokens_reserved,
        snapshot.tokens_used,
        snapshot.capacity.requests
    );
    sim.shutdown().await;
    Ok(())
}
