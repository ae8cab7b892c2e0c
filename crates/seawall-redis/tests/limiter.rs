//! Limiters of several replicas share one Redis: the configured limit and the provider's
//! reports hold for the sum of them, and Redis going away neither hangs a call nor loses
//! the limits' meaning.

use std::sync::Arc;
use std::time::Duration;

use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter, Reservation};
use seawall_core::{QuotaSnapshot, QuotaWindow, RejectReason, TokenEstimate};
use seawall_redis::testing::RedisServer;
use seawall_redis::{FailMode, RedisConfig, RedisLimiterState, RedisState};
use tokio::time::Instant;

fn replica(redis: &RedisState, config: &RateLimitConfig) -> RateLimiter {
    let state = RedisLimiterState::new(redis, "openai/gpt-4o", config);
    RateLimiter::with_state("openai/gpt-4o", config.clone(), Arc::new(state))
}

fn connect(server: &RedisServer, mode: FailMode) -> RedisState {
    RedisState::new(
        RedisConfig::new(server.url())
            .prefix("test:")
            .timeout(Duration::from_millis(200))
            .fail_mode(mode),
    )
    .unwrap()
}

const CALL: TokenEstimate = TokenEstimate {
    prompt: 0,
    reserved_output: 0,
};

/// The reservations of the calls admitted among `calls`, spread over `limiters`.
async fn admit(limiters: &[RateLimiter], calls: usize) -> Vec<Reservation> {
    let mut in_flight = Vec::new();
    for i in 0..calls {
        if let Ok(reservation) = limiters[i % limiters.len()].acquire_now(&CALL).await {
            in_flight.push(reservation);
        }
    }
    in_flight
}

/// How many of `calls` calls, spread over `limiters`, are admitted (all kept in flight
/// until they are counted).
async fn admitted(limiters: &[RateLimiter], calls: usize) -> usize {
    admit(limiters, calls).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_admit_the_configured_limit_once_between_them() {
    let server = RedisServer::start().unwrap();
    let config = RateLimitConfig::new().requests(Rate::per_minute(10));
    let replicas: Vec<_> = (0..4)
        .map(|_| replica(&connect(&server, FailMode::Open), &config))
        .collect();
    assert_eq!(admitted(&replicas, 40).await, 10);
    let refused = replicas[3].acquire_now(&CALL).await.unwrap_err();
    let wait = refused.wait().unwrap();
    // One call's share of the minute, as GCRA spaces them.
    assert!(
        wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
        "{wait:?}"
    );
    // Every replica's prediction comes from the shared state, not its own calls.
    let predicted = replicas[0]
        .predict_wait(Instant::now(), &CALL, None)
        .unwrap_or_else(|refused| refused.wait().unwrap());
    assert!(predicted > Duration::from_secs(4), "{predicted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_report_on_one_replica_holds_on_every_replica() {
    let server = RedisServer::start().unwrap();
    let config = RateLimitConfig::new();
    let (a, b) = (
        replica(&connect(&server, FailMode::Open), &config),
        replica(&connect(&server, FailMode::Open), &config),
    );
    // The provider tells replica A that 3 requests are left for the next 30 s.
    let report = QuotaSnapshot::default().with_requests(QuotaWindow::new(
        Some(100),
        Some(3),
        Some(Duration::from_secs(30)),
    ));
    a.sync(&report);
    // The report is written in the background; the next reservation follows it.
    let mut synced = false;
    for _ in 0..100 {
        if b.snapshot().capacity.requests.is_some() {
            synced = true;
            break;
        }
        let probe = b.acquire_now(&CALL).await;
        if let Err(refused) = probe {
            panic!("refused before the report: {refused}");
        }
        // A probe that got through was counted in flight: give it back unreported.
        drop(probe);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(synced, "replica B never saw the report");
    let in_flight = admit(&[b.clone(), a.clone()], 10).await;
    assert!(
        in_flight.len() <= 3,
        "{} admitted after a report of 3 left",
        in_flight.len()
    );
    let refused = b.acquire_now(&CALL).await.unwrap_err();
    let wait = refused.wait().unwrap();
    assert!(
        wait > Duration::from_secs(25) && wait <= Duration::from_secs(31),
        "{wait:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_calls_fail_fast_open_or_closed_and_recover() {
    let mut server = RedisServer::start().unwrap();
    let config = RateLimitConfig::new().requests(Rate::per_minute(5));
    let open = connect(&server, FailMode::Open);
    let closed = connect(&server, FailMode::Closed);
    let (fail_open, fail_closed) = (replica(&open, &config), replica(&closed, &config));
    assert_eq!(admitted(std::slice::from_ref(&fail_open), 2).await, 2);

    server.kill();
    let started = std::time::Instant::now();
    // Open: each replica decides alone, on its own full limit.
    assert_eq!(admitted(std::slice::from_ref(&fail_open), 10).await, 5);
    let refused = fail_closed.acquire_now(&CALL).await.unwrap_err();
    assert_eq!(refused.reason, RejectReason::StateUnavailable);
    // Eleven calls in all: none waited much longer than one timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(open.stats().fallbacks >= 10 && !open.stats().up);
    assert!(closed.stats().refusals >= 1);

    server.restart().unwrap();
    // Back: the shared state (empty after the restart) decides again.
    let mut back = false;
    for _ in 0..100 {
        if fail_closed.acquire_now(&CALL).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "never reconnected");
    assert!(closed.stats().up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_a_call_one_timeout_at_most() {
    let server = RedisServer::start().unwrap();
    let config = RateLimitConfig::new().requests(Rate::per_minute(100));
    let open = replica(&connect(&server, FailMode::Open), &config);
    let closed = replica(&connect(&server, FailMode::Closed), &config);
    assert_eq!(admitted(&[open.clone(), closed.clone()], 2).await, 2);

    server.freeze();
    let started = std::time::Instant::now();
    // The first call of each waits the 200 ms timeout; the calls after fail fast until
    // the next retry.
    assert_eq!(admitted(std::slice::from_ref(&open), 20).await, 20);
    let refused = closed.acquire_now(&CALL).await.unwrap_err();
    assert_eq!(refused.reason, RejectReason::StateUnavailable);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");

    server.thaw();
    let mut back = false;
    for _ in 0..100 {
        if closed.acquire_now(&CALL).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "never answered again");
}
