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

/// A limit large enough to lease from: 1/32 of it is more than the 64 calls of a lease, and
/// over a test's second the hour gives back less than one call.
fn hourly(requests: u64) -> RateLimitConfig {
    RateLimitConfig::new().requests(Rate::new(requests, Duration::from_secs(3_600)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_admit_without_round_trips_and_never_past_the_limit_between_replicas() {
    let server = RedisServer::start().unwrap();
    let config = hourly(3_200);
    let (one, two) = (
        connect(&server, FailMode::Open),
        connect(&server, FailMode::Open),
    );
    let replicas = [replica(&one, &config), replica(&two, &config)];
    let first = replicas[0].acquire_now(&CALL).await.unwrap();
    let calls = one.stats().calls;
    // The first call's round trip leased 64 more: they wait for none. Past half of the
    // lease, the next one is asked for in the background, once.
    let leased = admit(std::slice::from_ref(&replicas[0]), 64).await;
    assert_eq!(leased.len(), 64);
    assert!(one.stats().calls <= calls + 1, "leased calls went to Redis");

    // Both replicas together admit the hour's limit and not one call more.
    let rest = admit(&replicas, 4_000).await;
    let admitted = 1 + leased.len() + rest.len();
    assert!((3_200..=3_201).contains(&admitted), "{admitted} admitted");
    // Far fewer round trips than calls.
    let trips = one.stats().calls + two.stats().calls;
    assert!(trips < 1_000, "{trips} round trips for {admitted} calls");
    drop((first, leased, rest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_lease_holds_unused_goes_back_to_the_other_replicas() {
    let server = RedisServer::start().unwrap();
    let config = hourly(3_200);
    let (a, b) = (
        replica(&connect(&server, FailMode::Open), &config),
        replica(&connect(&server, FailMode::Open), &config),
    );
    // A takes one call and a lease of 64 it will not use.
    let first = a.acquire_now(&CALL).await.unwrap();
    let mut taken = Vec::new();
    while let Ok(reservation) = b.acquire_now(&CALL).await {
        taken.push(reservation);
    }
    // B is refused while A holds the lease (or while B's own next lease is on its way, if
    // A's already ended).
    assert!(taken.len() < 3_200, "{}", taken.len());
    // The lease ends within its life, and B admits what A did not use.
    let mut waited = 0;
    while taken.len() < 3_200 - 1 && waited < 200 {
        taken.extend(admit(std::slice::from_ref(&b), 64).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(taken.len(), 3_200 - 1, "A's unused lease never came back");
    assert!(a.acquire_now(&CALL).await.is_err());
    drop((first, taken));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_report_below_what_a_lease_holds_ends_the_lease() {
    let server = RedisServer::start().unwrap();
    let redis = connect(&server, FailMode::Open);
    let limiter = replica(&redis, &hourly(3_200));
    let first = limiter.acquire_now(&CALL).await.unwrap();
    // The provider says 3 requests are left: fewer than the 64 leased.
    limiter.sync(&QuotaSnapshot::default().with_requests(QuotaWindow::new(
        Some(100),
        Some(3),
        Some(Duration::from_secs(30)),
    )));
    // The report reaches the server in the background: read the server until it has it.
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut stored = false;
    for _ in 0..200 {
        let requests: Option<String> = redis::cmd("HGET")
            .arg("test:{limiter:openai/gpt-4o}")
            .arg("d1")
            .query_async(&mut connection)
            .await
            .unwrap();
        // "tat,left,...": the provider's 3 left is stored.
        if requests.is_some_and(|dim| dim.split(',').nth(1) == Some("3")) {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(stored, "the report never reached the server");
    let in_flight = admit(std::slice::from_ref(&limiter), 10).await;
    assert!(
        in_flight.len() <= 3,
        "{} admitted after a report of 3 left",
        in_flight.len()
    );
    drop((first, in_flight));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_gives_its_lease_back_at_once() {
    let server = RedisServer::start().unwrap();
    let config = hourly(3_200);
    let stopping = connect(&server, FailMode::Open);
    let (a, b) = (
        replica(&stopping, &config),
        replica(&connect(&server, FailMode::Open), &config),
    );
    let first = a.acquire_now(&CALL).await.unwrap();
    stopping.give_back_leases().await;
    // A's lease is back: B admits all but A's call at once, without waiting for the lease
    // to end.
    let taken = admit(std::slice::from_ref(&b), 3_300).await;
    assert_eq!(taken.len(), 3_200 - 1);
    drop(first);
}
