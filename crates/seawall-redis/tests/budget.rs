//! Replicas spend one budget between them through Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall::budget::{BudgetStore, Line, Refused};
use seawall_redis::testing::RedisServer;
use seawall_redis::{FailMode, RedisBudgets, RedisConfig, RedisState};

fn store(server: &RedisServer, mode: FailMode) -> (RedisState, RedisBudgets) {
    let state = RedisState::new(
        RedisConfig::new(server.url())
            .prefix("test:")
            .timeout(Duration::from_millis(200))
            .fail_mode(mode),
    )
    .unwrap();
    let budgets = RedisBudgets::new(&state);
    (state, budgets)
}

fn line(budget: usize, value: &str, window: u64, amount: u64, limit: u64) -> Line {
    Line::new(budget, Arc::from(value), window, amount, limit)
}

/// Waits until the settlements sent in the background are counted.
async fn settled(store: &RedisBudgets, budget: usize, value: &str, window: u64, want: u64) {
    for _ in 0..200 {
        // A reservation of nothing reads the server's count back into the mirror.
        let _ = store
            .reserve(&[line(budget, value, window, 0, u64::MAX)])
            .await;
        if store.used(budget, value, window) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "use of {value} never reached {want}: {}",
        store.used(budget, value, window)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_spend_one_budget_and_settle_into_it() {
    let server = RedisServer::start().unwrap();
    let replicas: Vec<_> = (0..4).map(|_| store(&server, FailMode::Open).1).collect();
    // Key "team-a": 1,000 tokens per window; each call reserves 100.
    let call = line(0, "team-a", 7, 100, 1_000);
    let mut admitted = 0;
    for i in 0..40 {
        if replicas[i % 4]
            .reserve(std::slice::from_ref(&call))
            .await
            .is_ok()
        {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 10,
        "the four replicas together admit the budget once"
    );
    let refused = replicas[2].reserve(std::slice::from_ref(&call)).await;
    assert_eq!(refused, Err(Refused::over(0, 1_000)));

    // Two calls used 30 tokens instead of 100; the room they leave is everyone's.
    replicas[0].settle(&call, 30, 7);
    replicas[1].settle(&call, 30, 7);
    settled(&replicas[3], 0, "team-a", 7, 860).await;
    assert!(
        replicas[3]
            .reserve(std::slice::from_ref(&call))
            .await
            .is_ok()
    );
    // A call that ends in the next window is counted there.
    replicas[2].settle(&call, 40, 8);
    settled(&replicas[0], 0, "team-a", 8, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_are_all_or_none_across_budgets() {
    let server = RedisServer::start().unwrap();
    let (_, budgets) = store(&server, FailMode::Open);
    let key = line(0, "key-1", 3, 50, 100);
    let user = line(1, "alice", 3, 50, 60);
    assert!(budgets.reserve(&[key.clone(), user.clone()]).await.is_ok());
    // The user's budget refuses the second call: the key's is not charged either.
    assert_eq!(
        budgets.reserve(&[key.clone(), user.clone()]).await,
        Err(Refused::over(1, 50))
    );
    settled(&budgets, 0, "key-1", 3, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_on_local_spend_or_closed_and_settlements_survive() {
    let mut server = RedisServer::start().unwrap();
    let (open_state, open) = store(&server, FailMode::Open);
    let (_, closed) = store(&server, FailMode::Closed);
    let call = line(0, "team-b", 9, 100, 250);
    assert!(open.reserve(std::slice::from_ref(&call)).await.is_ok());

    server.kill();
    let started = std::time::Instant::now();
    let refused = closed
        .reserve(std::slice::from_ref(&call))
        .await
        .unwrap_err();
    assert!(refused.unavailable);
    // Open: this replica's own spending decides (none in process yet), so 2 fit.
    assert!(open.reserve(std::slice::from_ref(&call)).await.is_ok());
    assert!(open.reserve(std::slice::from_ref(&call)).await.is_ok());
    assert!(open.reserve(std::slice::from_ref(&call)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(open_state.stats().fallbacks >= 3);
    // The first call (reserved in Redis) ends while Redis is down: its spending waits.
    open.settle(&call, 70, 9);

    server.restart().unwrap();
    // Redis came back empty; the retried settlement still lands there.
    settled(&closed, 0, "team-b", 9, 70).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_goes_out_once_over_every_replica() {
    let server = RedisServer::start().unwrap();
    let replicas: Vec<_> = (0..4).map(|_| store(&server, FailMode::Open).1).collect();
    let sent = Arc::new(AtomicU32::new(0));
    for replica in &replicas {
        // Alerts follow a settlement, which the replica counts too.
        replica.settle(&line(0, "team-a", 7, 0, u64::MAX), 0, 7);
        replica.settle(&line(0, "team-a", 8, 0, u64::MAX), 0, 8);
        for _ in 0..3 {
            let sent = Arc::clone(&sent);
            replica.alert_once(
                0,
                "team-a",
                7,
                1,
                Box::new(move || {
                    sent.fetch_add(1, Ordering::SeqCst);
                }),
            );
        }
    }
    // Another mark and another window are other alerts.
    let other = Arc::clone(&sent);
    replicas[0].alert_once(
        0,
        "team-a",
        8,
        1,
        Box::new(move || {
            other.fetch_add(10, Ordering::SeqCst);
        }),
    );
    for _ in 0..200 {
        if sent.load(Ordering::SeqCst) >= 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        sent.load(Ordering::SeqCst),
        11,
        "once per window over the four replicas"
    );
}

/// Named budgets are counted by name: a replica (or a reloaded config) that lists the same
/// budgets in another order spends the same counters; index-known budgets would mix them up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_budgets_keep_their_counters_whatever_their_order() {
    let server = RedisServer::start().unwrap();
    let (state, _) = store(&server, FailMode::Closed);
    let first = RedisBudgets::named(&state, ["alice\0usd", "bob\0usd"]);
    // A key added before the others: bob's budget is now the layer's third.
    let reordered = first.renamed(["carol\0usd", "alice\0usd", "bob\0usd"]);

    let bob_before = line(1, "k", 7, 300, 1_000);
    assert!(
        first
            .reserve(std::slice::from_ref(&bob_before))
            .await
            .is_ok()
    );
    first.settle(&bob_before, 300, 7);
    settled(&reordered, 2, "k", 7, 300).await;
    // Carol, new, counts from zero; alice keeps hers.
    settled(&reordered, 0, "k", 7, 0).await;
    settled(&reordered, 1, "k", 7, 0).await;
    let bob_after = line(2, "k", 7, 800, 1_000);
    assert_eq!(
        reordered.reserve(std::slice::from_ref(&bob_after)).await,
        Err(Refused::over(0, 300)),
        "bob's spend followed his name"
    );

    // Known by index, the same reordering reads another budget's counters.
    let by_index = RedisBudgets::new(&state);
    let (_, other) = store(&server, FailMode::Closed);
    assert!(
        by_index
            .reserve(&[line(1, "k", 7, 300, 1_000)])
            .await
            .is_ok()
    );
    settled(&other, 1, "k", 7, 300).await;
}

/// The server's count for `value` in budget 0, window 7 (the budgets are known by index).
async fn stored_use(server: &RedisServer, value: &str) -> u64 {
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let used: Option<u64> = redis::cmd("HGET")
        .arg("test:{budgets}:0:7")
        .arg(value)
        .query_async(&mut connection)
        .await
        .unwrap();
    used.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_reserve_without_round_trips_and_replicas_never_pass_the_limit() {
    let server = RedisServer::start().unwrap();
    let (state_a, a) = store(&server, FailMode::Open);
    let (state_b, b) = store(&server, FailMode::Open);
    // 64,000 per window, 100 a call: a lease is 20 calls (1/32 of the limit).
    let call = line(0, "team-a", 7, 100, 64_000);
    a.reserve(std::slice::from_ref(&call)).await.unwrap();
    let trips = state_a.stats().calls;
    for _ in 0..20 {
        a.reserve(std::slice::from_ref(&call)).await.unwrap();
    }
    assert_eq!(
        state_a.stats().calls,
        trips,
        "a leased reservation went to Redis"
    );
    // What a call did not use goes back into the lease, with no round trip either.
    a.settle(&call, 40, 7);
    assert_eq!(state_a.stats().calls, trips);
    assert_eq!(a.used(0, "team-a", 7), 21 * 100 - 60);

    // Both replicas reserve until neither can: never past the limit.
    let mut admitted = 21;
    let mut refused_in_a_row = 0;
    for i in 0.. {
        let replica = if i % 2 == 0 { &a } else { &b };
        if replica.reserve(std::slice::from_ref(&call)).await.is_ok() {
            admitted += 1;
            refused_in_a_row = 0;
        } else {
            refused_in_a_row += 1;
            if refused_in_a_row == 2 {
                break;
            }
        }
    }
    // 60 of the first calls' reservation went back: no room for a whole call.
    assert_eq!(admitted, 640, "{admitted} calls of 100 within 64,000");
    assert!(stored_use(&server, "team-a").await <= 64_000);
    let trips = state_a.stats().calls + state_b.stats().calls;
    assert!(trips < 300, "{trips} round trips for {admitted} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_lease_holds_unused_goes_back_to_the_server() {
    let server = RedisServer::start().unwrap();
    let (_, a) = store(&server, FailMode::Open);
    let call = line(0, "team-a", 7, 100, 64_000);
    a.reserve(std::slice::from_ref(&call)).await.unwrap();
    a.settle(&call, 30, 7);
    // The server counts the call and its lease, until the lease ends.
    let mut stored = stored_use(&server, "team-a").await;
    assert!([100 + 2_000, 30].contains(&stored), "{stored}");
    // The replica reads the use back with the server's answer to the give-back, just after
    // the server has it.
    for _ in 0..200 {
        if stored == 30 && a.used(0, "team-a", 7) == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        stored = stored_use(&server, "team-a").await;
    }
    assert_eq!(stored, 30, "the lease never went back");
    assert_eq!(a.used(0, "team-a", 7), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_gives_its_leases_back_at_once() {
    let server = RedisServer::start().unwrap();
    let (state, a) = store(&server, FailMode::Open);
    let call = line(0, "team-a", 7, 100, 64_000);
    a.reserve(std::slice::from_ref(&call)).await.unwrap();
    a.settle(&call, 30, 7);
    assert_eq!(stored_use(&server, "team-a").await, 100 + 2_000);
    state.give_back_leases().await;
    assert_eq!(stored_use(&server, "team-a").await, 30);
}
