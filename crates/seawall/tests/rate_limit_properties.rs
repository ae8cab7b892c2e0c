//! A property of the rate limiter's queue, over random call weights on tokio's paused
//! clock: waiters are admitted in the order they arrived (FIFO), whatever their sizes, and
//! the limit is never exceeded over any window.

mod support;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use seawall::rate_limit::{Rate, RateLimit, RateLimitConfig, RateLimiter};
use seawall_core::{ChatRequest, ChatResponse};
use support::{NumberEstimator, reply, weighing};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_test::mock;

const LIMIT: u64 = 1_000;

/// Sends calls of `weights` one after another (each queued before the next arrives) and
/// returns the weights in the order the limiter admitted them, with the admission times.
fn admissions(weights: &[u64]) -> Vec<(u64, Duration)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = RateLimitConfig::new()
            .tokens(Rate::per_minute(LIMIT))
            .default_output_tokens(0)
            .estimator(Arc::new(NumberEstimator))
            .max_wait(Duration::from_secs(3_600))
            .queue_capacity(1_000);
        let limiter = RateLimiter::new("t", config);
        let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
        let mut service = RateLimit::new(service, limiter);
        let start = Instant::now();
        let mut calls = Vec::new();
        for &weight in weights {
            let call = service.ready().await.unwrap().call(weighing(weight));
            calls.push(tokio::spawn(call));
            tokio::task::yield_now().await;
        }
        let mut admitted = Vec::new();
        for _ in weights {
            let (request, send) = handle.next_request().await.unwrap();
            let weight = request.texts().next().unwrap().parse().unwrap();
            admitted.push((weight, start.elapsed()));
            send.send_response(reply("model", "ok"));
        }
        for call in calls {
            call.await.unwrap().unwrap();
        }
        admitted
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn waiters_are_admitted_in_arrival_order_and_never_past_the_limit(
        weights in prop::collection::vec(1..=LIMIT, 1..12)
    ) {
        let admitted = admissions(&weights);
        let order: Vec<u64> = admitted.iter().map(|(w, _)| *w).collect();
        prop_assert_eq!(&order, &weights, "FIFO");
        // What was admitted by time t never exceeds the limit plus what refilled by t
        // (continuous refill: LIMIT per minute).
        let mut total = 0u64;
        for (weight, at) in &admitted {
            total += weight;
            let refilled = (at.as_secs_f64() * LIMIT as f64 / 60.0).floor() as u64;
            prop_assert!(total <= LIMIT + refilled + 1, "{} admitted by {:?}", total, at);
        }
    }
}
