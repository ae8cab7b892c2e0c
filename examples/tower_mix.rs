//! seawall layers mixed with plain tower and tower-http layers in one `ServiceBuilder`, on
//! raw HTTP to an OpenAI-compatible endpoint (the simulator's Ollama profile).
//!
//! ```text
//! Deadline → Retry → Breaker → ConcurrencyLimit (tower) → SetRequestHeader (tower-http)
//!          → AttemptTimeout → hyper-util client
//! ```
//!
//! seawall's layers are ordinary tower layers: anything that is a `Layer` composes with them.
//! Here tower's concurrency limit caps in-flight requests to the local server at 2 (its
//! `poll_ready` waits for a slot, which the retry layer above drives), and tower-http sets a
//! `user-agent` header on every attempt, retries included.
//!
//! Run with `cargo run --example tower_mix`.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http::header::USER_AGENT;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seawall::ServiceBuilderExt;
use seawall::breaker::BreakerLayer;
use seawall::retry::RetryLayer;
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::BoxError;
use seawall_sim::{Fault, FaultRule, Provider, Simulator};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::builder()
        .first_token(Duration::from_millis(100))
        .start()
        .await?;
    // Every third request fails with a 503 (reproducibly, by request number).
    sim.set_faults(
        Provider::Ollama,
        vec![
            FaultRule::nth(3, Fault::overloaded()),
            FaultRule::nth(6, Fault::overloaded()),
        ],
    );

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let service = ServiceBuilder::new()
        .deadline(Duration::from_secs(10))
        .retry_target(RetryLayer::new().max_attempts(3))
        .breaker(BreakerLayer::new("ollama/llama3.2"))
        .concurrency_limit(2)
        .layer(SetRequestHeaderLayer::overriding(
            USER_AGENT,
            HeaderValue::from_static("seawall-example/0.1"),
        ))
        .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_secs(5)))
        .service(client);

    let url = format!("{}/chat/completions", sim.base_url(Provider::Ollama));
    let body = r#"{"model":"llama3.2","messages":[{"role":"user","content":"Name a harbor."}]}"#;
    let started = tokio::time::Instant::now();
    let mut calls = Vec::new();
    for _ in 0..5 {
        let request = http::Request::post(&url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))?;
        let mut service = service.clone();
        calls.push(tokio::spawn(async move {
            service.ready().await?.call(request).await
        }));
    }
    for call in calls {
        let response = call.await??;
        println!(
            "{} after {} ms",
            response.status(),
            started.elapsed().as_millis()
        );
    }

    let log = sim.requests_for(Provider::Ollama);
    println!(
        "\n{} requests reached the server for 5 calls ({} retries):",
        log.len(),
        log.len().saturating_sub(5)
    );
    for request in &log {
        println!(
            "  #{} at {:>4} ms, user-agent {:?}",
            request.seq,
            request.at.as_millis(),
            request.header("user-agent").unwrap_or("-")
        );
    }
    sim.shutdown().await;
    Ok(())
}
