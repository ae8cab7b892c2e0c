//! An axum application whose handler calls a seawall stack, on the embedded simulator.
//!
//! `POST /ask {"question": "..."}` answers through `Deadline → Failover → per target
//! [Retry → Breaker → RateLimit → AttemptTimeout → adapter]` over OpenAI then Anthropic, and
//! returns the answer with the provider that gave it and the attempts it took. OpenAI's
//! first request is overloaded (503) for the whole demo, so the first question is answered
//! by Anthropic; the stack is built once and shared by every request (its breakers and
//! limiters are shared state).
//!
//! The example serves on 127.0.0.1 (an ephemeral port), asks itself two questions with a
//! plain HTTP client, prints the answers and stops.
//!
//! Run with `cargo run --example axum_app`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seawall::ServiceBuilderExt;
use seawall::failover::Failover;
use seawall::stack::TargetStack;
use seawall::timeout::{AttemptTimeoutLayer, EnforceDeadline};
use seawall_core::{BoxError, ChatRequest, Message};
use seawall_providers::http::HttpClientConfig;
use seawall_providers::{Anthropic, AnthropicConfig, OpenAi, OpenAiConfig};
use seawall_sim::{Fault, FaultRule, Provider, Simulator};
use serde::{Deserialize, Serialize};
use tower::{ServiceBuilder, ServiceExt};

/// The LLM stack, built once and cloned into each request (clones share state).
type Llm = EnforceDeadline<Failover>;

#[derive(Deserialize)]
struct Ask {
    question: String,
}

#[derive(Serialize)]
struct Answer {
    answer: String,
    provider: String,
    model: String,
    attempts: Vec<String>,
}

async fn ask(
    State(llm): State<Llm>,
    Json(ask): Json<Ask>,
) -> Result<Json<Answer>, (StatusCode, String)> {
    let request = ChatRequest::new(
        "chat",
        [
            Message::system("Answer in one sentence."),
            Message::user(ask.question),
        ],
    )
    .with_max_output_tokens(64);
    match llm.oneshot(request).await {
        Ok(response) => Ok(Json(Answer {
            answer: response.text().to_owned(),
            provider: response.provider.as_str().to_owned(),
            model: response.model.clone(),
            attempts: response
                .trail
                .attempts
                .iter()
                .map(ToString::to_string)
                .collect(),
        })),
        // A production handler would map the error kinds to statuses; the message already
        // lists every attempt when every target failed.
        Err(error) => Err((StatusCode::BAD_GATEWAY, error.to_string())),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::builder()
        .scripted_reply("capital of France", "Paris.")
        .faults(
            Provider::OpenAi,
            vec![FaultRule::first(3, Fault::overloaded())],
        )
        .start()
        .await?;
    let http = HttpClientConfig::default().build()?;
    let timeout = AttemptTimeoutLayer::new(Duration::from_secs(10));
    let openai = TargetStack::new("openai")
        .attempt_timeout(timeout)
        .build(OpenAi::new(
            http.clone(),
            OpenAiConfig::new("sk-sim").with_base_url(sim.base_url(Provider::OpenAi)),
        ));
    let anthropic = TargetStack::new("anthropic")
        .attempt_timeout(timeout)
        .build(Anthropic::new(
            http,
            AnthropicConfig::new("sk-sim").with_base_url(sim.base_url(Provider::Anthropic)),
        ));
    let llm: Llm = ServiceBuilder::new()
        .deadline(Duration::from_secs(30))
        .service(
            Failover::builder()
                .target(openai.target.model("gpt-4o-mini"))
                .target(anthropic.target.model("claude-haiku-4-5"))
                .build(),
        );

    let app = Router::new().route("/ask", post(ask)).with_state(llm);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("listening on http://{addr}/ask");

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for question in [
        "What is the capital of France?",
        "Tell me about the harbor.",
    ] {
        let body = format!(r#"{{"question":"{question}"}}"#);
        let request = http::Request::post(format!("http://{addr}/ask"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "POST /ask {question:?}\n  {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    let _ = stop.send(());
    server.await??;
    sim.shutdown().await;
    Ok(())
}
