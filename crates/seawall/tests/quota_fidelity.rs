//! Quota fidelity over real loopback HTTP: the rate limiter in front of the OpenAI adapter,
//! against the simulator enforcing a quota of R tokens and M requests per window, with an
//! offered load of twice the quota for several windows. The limiter must serve nearly all of
//! the quota and never let the provider answer 429.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall::ServiceBuilderExt;
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
use seawall_core::{ChatRequest, ErrorKind, LlmError, Message, RateLimitRejected};
use seawall_providers::http::default_client;
use seawall_providers::{ApiKey, OpenAi, OpenAiConfig};
use seawall_sim::{Provider, QuotaConfig, Simulator};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

const WINDOW: Duration = Duration::from_secs(1);
const QUOTA_TOKENS: u64 = 600;
const QUOTA_REQUESTS: u64 = 30;
const WINDOWS: u32 = 4;
const REPLY_TOKENS: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_the_quota_offered_serves_it_all_without_a_single_429() {
    let sim = Simulator::builder()
        .reply_tokens(REPLY_TOKENS)
        .quota(
            Provider::OpenAi,
            QuotaConfig {
                requests: QUOTA_REQUESTS,
                tokens: QUOTA_TOKENS,
                window_ms: WINDOW.as_millis() as u64,
            },
        )
        .start()
        .await
        .unwrap();
    let adapter = OpenAi::new(
        default_client().unwrap(),
        OpenAiConfig::new(ApiKey::new("sk-quota-fidelity"))
            .with_base_url(sim.base_url(Provider::OpenAi)),
    );
    // The limiter is told the same quota the provider enforces; it does not know that the
    // provider counts in fixed windows, and learns it from the rate-limit headers.
    let limiter = RateLimiter::new(
        "openai/gpt-4o-mini",
        RateLimitConfig::new()
            .requests(Rate::new(QUOTA_REQUESTS, WINDOW))
            .tokens(Rate::new(QUOTA_TOKENS, WINDOW))
            .default_output_tokens(REPLY_TOKENS)
            .max_wait(Duration::from_millis(500)),
    );
    let service = ServiceBuilder::new()
        .rate_limit_target(limiter.clone())
        .service(adapter);

    // Each call costs 30 tokens at the provider (10 prompt + 20 reply), so the token quota
    // binds at 20 calls per window; offer 40 per window.
    let request = ChatRequest::new("gpt-4o-mini", [Message::user("Say something.")])
        .with_max_output_tokens(REPLY_TOKENS);
    let offered_per_window = 2 * QUOTA_TOKENS / 30;
    let interval = WINDOW / offered_per_window as u32;

    let served_tokens = Arc::new(AtomicU64::new(0));
    let served_calls = Arc::new(AtomicU64::new(0));
    let provider_429s = Arc::new(AtomicU64::new(0));
    let shed_locally = Arc::new(AtomicU64::new(0));
    let other_errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + WINDOW * WINDOWS;
    let mut calls = Vec::new();
    let mut ticker = tokio::time::interval(interval);
    while Instant::now() < end {
        ticker.tick().await;
        let (service, request) = (service.clone(), request.clone());
        let counters = (
            served_tokens.clone(),
            served_calls.clone(),
            provider_429s.clone(),
            shed_locally.clone(),
            other_errors.clone(),
        );
        calls.push(tokio::spawn(async move {
            let (tokens, served, too_many, shed, other) = counters;
            match service.oneshot(request).await {
                // Count only what the provider admitted within the measured windows.
                Ok(response) if Instant::now() <= end => {
                    let usage = response.usage.expect("the simulator reports usage");
                    tokens.fetch_add(usage.total(), Ordering::Relaxed);
                    served.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(error) => {
                    if let Some(error) = error.downcast_ref::<LlmError>()
                        && error.kind() == ErrorKind::RateLimited
                    {
                        too_many.fetch_add(1, Ordering::Relaxed);
                    } else if error.is::<RateLimitRejected>() {
                        shed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        other.fetch_add(1, Ordering::Relaxed);
                        println!("unexpected error: {error}");
                    }
                }
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }

    let quota = QUOTA_TOKENS * u64::from(WINDOWS);
    let served = served_tokens.load(Ordering::Relaxed);
    let share = served as f64 / quota as f64;
    let snapshot = limiter.snapshot();
    println!(
        "quota fidelity: {} windows of {} ms, quota {QUOTA_TOKENS} tokens / {QUOTA_REQUESTS} requests per window, \
         offered {offered_per_window} calls per window (2x); served {} calls, {served} of {quota} tokens ({:.1}%); \
         provider 429s: {}; shed by the limiter: {}; limiter tokens reserved {} vs used {}",
        WINDOWS,
        WINDOW.as_millis(),
        served_calls.load(Ordering::Relaxed),
        share * 100.0,
        provider_429s.load(Ordering::Relaxed),
        shed_locally.load(Ordering::Relaxed),
        snapshot.tokens_reserved,
        snapshot.tokens_used,
    );
    assert_eq!(
        provider_429s.load(Ordering::Relaxed),
        0,
        "the provider never answered 429"
    );
    assert_eq!(other_errors.load(Ordering::Relaxed), 0);
    assert!(share >= 0.97, "served {:.1}% of the quota", share * 100.0);
}
