//! Breakers of one target in two processes, joined by a peer bus as a shared store joins
//! them: an open, a close and a cooldown on one hold on the other, and half-open probes are
//! counted over both.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::breaker::{
    BreakerHandle, BreakerLayer, BreakerPeers, OpenReason, PeerChange, WeakBreakerHandle,
};
use seawall_core::{BoxError, BreakerState, ChatRequest, ChatResponse, ErrorKind};
use support::{answer, error, request};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

/// The other process's breaker, and the probe slots both share.
#[derive(Debug)]
struct Bus {
    other: Mutex<Option<WeakBreakerHandle>>,
    probes: Arc<AtomicU32>,
}

impl BreakerPeers for Bus {
    fn publish(&self, change: PeerChange) {
        let other = self.other.lock().unwrap().clone();
        if let Some(other) = other.and_then(|weak| weak.upgrade()) {
            other.adopt(change);
        }
        if let PeerChange::Opened { .. } = change {
            self.probes.store(1, Ordering::SeqCst);
        }
    }

    fn claim_probe(&self) -> bool {
        self.probes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1))
            .is_ok()
    }
}

fn breaker() -> BreakerLayer {
    BreakerLayer::builder("openai/gpt-4o")
        .consecutive_failures(2)
        .no_failure_ratio()
        .break_duration(Duration::from_secs(5), Duration::from_secs(20))
        .half_open_probes(1)
        .default_cooldown(Duration::from_secs(3))
        .build()
}

/// Two breakers of one target, joined.
fn pair() -> (BreakerLayer, BreakerLayer) {
    let (a, b) = (breaker(), breaker());
    let probes = Arc::new(AtomicU32::new(0));
    let join = |from: &BreakerHandle, to: &BreakerHandle| {
        from.share(Arc::new(Bus {
            other: Mutex::new(Some(to.downgrade())),
            probes: Arc::clone(&probes),
        }));
    };
    join(&a.handle(), &b.handle());
    join(&b.handle(), &a.handle());
    (a, b)
}

/// The result of one call with `step` ("S" answers, "F" fails, "R" is a 429) through `layer`.
async fn call(layer: &BreakerLayer, step: &'static str) -> Result<ChatResponse, BoxError> {
    let service = layer.layer(service_fn(move |_request: ChatRequest| async move {
        match step {
            "S" => Ok(answer("ok")),
            "F" => Err(BoxError::from(error(ErrorKind::Server, 500))),
            _ => Err(error(ErrorKind::RateLimited, 429).into()),
        }
    }));
    service.oneshot(request()).await
}

#[tokio::test(start_paused = true)]
async fn an_open_on_one_process_holds_on_the_other_until_a_probe_closes_both() {
    let (a, b) = pair();
    assert!(call(&a, "F").await.is_err());
    assert!(call(&a, "F").await.is_err());
    assert_eq!(a.handle().state(), BreakerState::Open);
    // B never saw a failure; A's open holds on it, for A's break.
    assert_eq!(b.handle().state(), BreakerState::Open);
    let open = b.handle().check(Instant::now()).unwrap_err();
    assert_eq!(open.reason, OpenReason::Unhealthy);
    assert_eq!(open.retry_in, Duration::from_secs(5));

    tokio::time::advance(Duration::from_secs(5)).await;
    // One probe for both: B takes it, A stays open with nothing to wait for.
    assert!(call(&b, "S").await.is_ok());
    assert_eq!(b.handle().state(), BreakerState::Closed);
    // B's probe closed A too.
    assert_eq!(a.handle().state(), BreakerState::Closed);
    assert!(call(&a, "S").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn half_open_probes_are_counted_over_both_processes() {
    let (a, b) = pair();
    assert!(call(&a, "F").await.is_err());
    assert!(call(&a, "F").await.is_err());
    tokio::time::advance(Duration::from_secs(5)).await;
    // The service of A's probe is still running when B asks for one.
    let slow = a.layer(service_fn(|_request: ChatRequest| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, BoxError>(answer("ok"))
    }));
    let probe = tokio::spawn(slow.oneshot(request()));
    tokio::task::yield_now().await;
    assert_eq!(a.handle().state(), BreakerState::HalfOpen);
    let refused = call(&b, "S").await.unwrap_err();
    let open = refused
        .downcast_ref::<seawall_core::CircuitOpen>()
        .expect("rejected without a call");
    assert_eq!(open.retry_in, Duration::ZERO);
    assert!(probe.await.unwrap().is_ok());
    assert_eq!(b.handle().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_both_and_a_cooldown_parks_both() {
    let (a, b) = pair();
    assert!(call(&a, "F").await.is_err());
    assert!(call(&a, "F").await.is_err());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(call(&a, "F").await.is_err());
    // The second break is longer, on both.
    let open = b.handle().check(Instant::now()).unwrap_err();
    assert!(
        open.retry_in > Duration::from_secs(5),
        "{:?}",
        open.retry_in
    );
    a.handle().reset();
    assert_eq!(b.handle().state(), BreakerState::Closed);

    // A 429 on A parks the target on B for the same wait.
    assert!(call(&a, "R").await.is_err());
    let parked = b.handle().check(Instant::now()).unwrap_err();
    assert_eq!(parked.reason, OpenReason::OutOfCapacity);
    assert_eq!(parked.retry_in, Duration::from_secs(3));
}
