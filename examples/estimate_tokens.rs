//! Estimates what a request weighs against a tokens-per-minute limit, and shows how the
//! classifier judges a few provider errors.
//!
//! Run with `cargo run -p examples --features tiktoken --example estimate_tokens`.

use std::time::Duration;

use seawall_core::tokens::{HeuristicEstimator, TiktokenEstimator, TokenEstimator, warm_up};
use seawall_core::{ChatRequest, ErrorKind, LlmError, Message, ProviderKind, classify};

fn main() {
    // Build the rank tables once, before the first request needs them.
    warm_up();
    let messages = [
        Message::system("You answer geography questions in one word."),
        Message::user("What is the capital of France?"),
    ];
    for model in ["gpt-4o", "gpt-4", "claude-sonnet-4-5", "gemini-2.5-flash"] {
        let request = ChatRequest::new(model, messages.clone()).with_max_output_tokens(64);
        let exact = TiktokenEstimator::new().estimate(&request, 1024);
        let upper = HeuristicEstimator::default().estimate(&request, 1024);
        println!(
            "{model:<18} prompt {:>3} tokens (heuristic upper bound {:>3}), weight with reserved output {}",
            exact.prompt,
            upper.prompt,
            exact.total()
        );
    }

    let errors = [
        LlmError::new(ErrorKind::RateLimited, "Rate limit reached for requests")
            .with_provider(ProviderKind::OpenAi)
            .with_status(429)
            .with_retry_after(Duration::from_secs(2)),
        LlmError::new(ErrorKind::QuotaExhausted, "You exceeded your current quota")
            .with_provider(ProviderKind::OpenAi)
            .with_status(429),
        LlmError::new(ErrorKind::Overloaded, "Overloaded")
            .with_provider(ProviderKind::Anthropic)
            .with_status(529),
        LlmError::new(
            ErrorKind::ContextLengthExceeded,
            "input token count exceeds the maximum",
        )
        .with_provider(ProviderKind::Gemini)
        .with_status(400),
    ];
    for error in &errors {
        let verdict = classify(error);
        println!(
            "{error}\n    -> {:?}, server wait {:?}, health failure {}, out of capacity {}",
            verdict.disposition,
            verdict.retry_after,
            verdict.health_failure,
            verdict.out_of_capacity
        );
    }
}
