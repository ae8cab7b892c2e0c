//! Properties of the breaker over random sequences of calls, failures, abandoned calls and
//! time, on the paused clock: it never admits a call while open, and it never sticks (a
//! recovered target always gets its traffic back: every probe slot is released, even by a
//! call its caller gave up on).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use seawall::breaker::BreakerLayer;
use seawall_core::{BoxError, BreakerState, ChatRequest, ChatResponse, CircuitOpen, ErrorKind};
use support::{answer, error, request};
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Debug, Clone)]
enum Op {
    Succeed,
    Fail,
    /// A call whose caller gives up before it completes.
    Abandon,
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Succeed),
        Just(Op::Fail),
        Just(Op::Abandon),
        (1..3_000u64).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn never_admits_while_open_and_never_sticks(ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async move {
            // What the next call's upstream does: 0 answer, 1 fail, 2 never answer.
            let behaviour = Arc::new(AtomicU32::new(0));
            let sent = Arc::new(AtomicU32::new(0));
            let upstream = {
                let (behaviour, sent) = (Arc::clone(&behaviour), Arc::clone(&sent));
                service_fn(move |_request: ChatRequest| {
                    sent.fetch_add(1, Ordering::SeqCst);
                    let behaviour = behaviour.load(Ordering::SeqCst);
                    async move {
                        match behaviour {
                            0 => Ok::<ChatResponse, BoxError>(answer("ok")),
                            1 => Err(error(ErrorKind::Server, 500).into()),
                            _ => std::future::pending().await,
                        }
                    }
                })
            };
            let layer = BreakerLayer::builder("t")
                .consecutive_failures(2)
                .no_failure_ratio()
                .break_duration(Duration::from_secs(1), Duration::from_secs(4))
                .build();
            let handle = layer.handle();
            let mut service = layer.layer(upstream);
            for op in ops {
                let open_before = handle.state() == BreakerState::Open
                    && handle.check(tokio::time::Instant::now()).is_err();
                let sent_before = sent.load(Ordering::SeqCst);
                match op {
                    Op::Wait(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                    Op::Succeed | Op::Fail => {
                        behaviour.store(u32::from(matches!(op, Op::Fail)), Ordering::SeqCst);
                        let outcome = service.ready().await.unwrap().call(request()).await;
                        if open_before {
                            let rejected = outcome.as_ref().err().is_some_and(|e| e.is::<CircuitOpen>());
                            assert!(rejected, "admitted while open");
                            assert_eq!(sent.load(Ordering::SeqCst), sent_before, "sent while open");
                        }
                    }
                    Op::Abandon => {
                        behaviour.store(2, Ordering::SeqCst);
                        let call = service.ready().await.unwrap().call(request());
                        // Given up on after a moment: the future is dropped unfinished.
                        let _ = tokio::time::timeout(Duration::from_millis(10), call).await;
                    }
                }
            }
            // The target has recovered: within the longest break, and a few probes, its
            // traffic comes back.
            behaviour.store(0, Ordering::SeqCst);
            tokio::time::advance(Duration::from_secs(5)).await;
            for _ in 0..5 {
                let _ = service.ready().await.unwrap().call(request()).await;
            }
            assert_eq!(handle.state(), BreakerState::Closed, "the breaker stuck");
        });
    }
}
