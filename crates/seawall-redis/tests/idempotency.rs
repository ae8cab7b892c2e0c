//! Idempotency keys on Redis, over two replicas (two stores on two connections to one real
//! `redis-server`): concurrent duplicates coalesced to one upstream call, replay after the
//! call, a conflict refused, an owner that dies taken over after its lease, and Redis
//! killed under both fail modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall::idempotency::{IdempotencyConflict, IdempotencyLayer, IdempotencyUnavailable};
use seawall_core::{
    AssistantMessage, BoxError, CacheStatus, ChatRequest, ChatResponse, EventStream, FinishReason,
    Message, ProviderKind, StreamEvent, Usage,
};
use seawall_redis::testing::RedisServer;
use seawall_redis::{FailMode, RedisConfig, RedisIdempotency, RedisState};
use tokio::sync::{Semaphore, mpsc};
use tower::{Layer, ServiceExt, service_fn};

const TTL: Duration = Duration::from_secs(600);

fn state(server: &RedisServer, mode: FailMode) -> RedisState {
    RedisState::new(
        RedisConfig::new(server.url())
            .prefix("test:")
            .timeout(Duration::from_millis(200))
            .fail_mode(mode),
    )
    .unwrap()
}

fn replica(server: &RedisServer) -> (IdempotencyLayer, RedisIdempotency) {
    let store = RedisIdempotency::new(&state(server, FailMode::Open), TTL);
    (IdempotencyLayer::with_store(Arc::new(store.clone())), store)
}

fn order(text: &str, stream: bool) -> ChatRequest {
    let mut request = ChatRequest::new("gpt-4o", [Message::user(text)]);
    request.stream = stream;
    request.context.options_mut().idempotency_key = Some("order-42".into());
    request
}

fn events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::Start {
            id: Some("chatcmpl-7".into()),
            model: Some("gpt-4o".into()),
        },
        StreamEvent::TextDelta("Order ".into()),
        StreamEvent::TextDelta("placed.".into()),
        StreamEvent::Usage(Usage::new(9, 3)),
        StreamEvent::Finish(FinishReason::Stop),
    ]
}

/// An upstream that holds each call until `gate` lets it through, then answers "Order
/// placed." (streamed when asked); counts the calls it gets and reports each on `seen`.
#[derive(Clone)]
struct Upstream {
    calls: Arc<AtomicU32>,
    gate: Arc<Semaphore>,
    seen: mpsc::UnboundedSender<()>,
}

impl Upstream {
    fn new(open: bool) -> (Self, mpsc::UnboundedReceiver<()>) {
        let (seen, receive) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(if open {
            Semaphore::MAX_PERMITS
        } else {
            0
        }));
        (
            Self {
                calls: Arc::default(),
                gate,
                seen,
            },
            receive,
        )
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        ChatRequest,
        Response = ChatResponse,
        Error = BoxError,
        Future = impl Send + 'static,
    > + Clone
    + Send
    + 'static {
        let this = self.clone();
        service_fn(move |request: ChatRequest| {
            let this = this.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                let _ = this.seen.send(());
                let _permit = this.gate.acquire().await?;
                Ok::<_, BoxError>(if request.stream {
                    ChatResponse::streaming(
                        ProviderKind::OpenAi,
                        "gpt-4o",
                        EventStream::from_events(events()),
                    )
                } else {
                    ChatResponse::new(
                        ProviderKind::OpenAi,
                        "gpt-4o",
                        AssistantMessage::text("Order placed."),
                        FinishReason::Stop,
                    )
                })
            }
        })
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn call(
    layer: &IdempotencyLayer,
    upstream: &Upstream,
    request: ChatRequest,
) -> Result<ChatResponse, BoxError> {
    tokio::time::timeout(
        Duration::from_secs(10),
        layer.layer(upstream.service()).oneshot(request),
    )
    .await
    .expect("an idempotent call never hangs")
}

/// 50 identical calls, split over two replicas, while the first is held upstream; each
/// caller reads its stream (if any) as it gets it.
async fn fifty(stream: bool) -> (Upstream, Vec<(ChatResponse, Vec<StreamEvent>)>) {
    let server = RedisServer::start().unwrap();
    let (a, _) = replica(&server);
    let (b, _) = replica(&server);
    let (upstream, mut seen) = Upstream::new(false);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..50 {
        let layer = if i % 2 == 0 { a.clone() } else { b.clone() };
        let upstream = upstream.clone();
        calls.spawn(async move {
            let mut response = call(&layer, &upstream, order("Place order 42.", stream)).await?;
            let events = match response.stream.take() {
                Some(stream) => stream.collect().await,
                None => Vec::new(),
            };
            Ok::<_, BoxError>((response, events))
        });
    }
    // One call reached upstream and is held there. (A call that claims only after it
    // answered gets a replay: one upstream call either way.)
    seen.recv().await.unwrap();
    upstream.gate.add_permits(Semaphore::MAX_PERMITS);
    let mut responses = Vec::new();
    while let Some(result) = calls.join_next().await {
        responses.push(result.unwrap().unwrap());
    }
    drop(server);
    (upstream, responses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_duplicates_over_two_replicas_make_one_upstream_call() {
    let (upstream, responses) = fifty(false).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(responses.len(), 50);
    for (response, _) in &responses {
        assert_eq!(response.text(), "Order placed.");
        assert_eq!(response.finish_reason, Some(FinishReason::Stop));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_streamed_duplicates_over_two_replicas_get_the_same_events() {
    let (upstream, responses) = fifty(true).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(responses.len(), 50);
    for (_, seen) in &responses {
        assert_eq!(*seen, events());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_call_is_replayed_on_the_other_replica_and_another_request_refused() {
    let server = RedisServer::start().unwrap();
    let (a, a_store) = replica(&server);
    let (b, _) = replica(&server);
    let (upstream, _seen) = Upstream::new(true);

    let first = call(&a, &upstream, order("Place order 42.", false))
        .await
        .unwrap();
    assert_eq!(first.text(), "Order placed.");
    a_store.flush().await;
    let again = call(&b, &upstream, order("Place order 42.", false))
        .await
        .unwrap();
    assert_eq!(again.text(), "Order placed.");
    assert_eq!(again.trail.cache, Some(CacheStatus::Replayed));
    assert_eq!(upstream.calls(), 1);

    let other = call(&b, &upstream, order("Place order 43.", false))
        .await
        .unwrap_err();
    let conflict = other
        .downcast_ref::<IdempotencyConflict>()
        .expect("a conflict");
    assert_eq!(conflict.key, "order-42");
    assert_eq!(upstream.calls(), 1, "a conflict is never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_takes_over_once_a_dead_owners_lease_runs_out() {
    let server = RedisServer::start().unwrap();
    let lease = Duration::from_millis(300);
    let url = server.url();
    let (owner_upstream, mut owner_seen) = Upstream::new(false);
    // The owner lives on its own runtime, in its own thread: shutting that runtime down
    // mid-call is its process dying (no release, no lease renewal).
    let (owner_started, started) = std::sync::mpsc::channel();
    let owner = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let state = RedisState::new(
                RedisConfig::new(url)
                    .prefix("test:")
                    .timeout(Duration::from_millis(200)),
            )
            .unwrap();
            let store = RedisIdempotency::with_lease(&state, TTL, lease);
            let layer = IdempotencyLayer::with_store(Arc::new(store));
            let service = layer.layer(owner_upstream.service());
            tokio::spawn(service.oneshot(order("Place order 42.", false)));
            owner_seen.recv().await.unwrap();
        });
        owner_started.send(()).unwrap();
        // Live (and renew the lease) while the waiter waits, then die.
        runtime.block_on(async { tokio::time::sleep(lease).await });
        drop(runtime);
        std::time::Instant::now()
    });
    tokio::task::spawn_blocking(move || started.recv().unwrap())
        .await
        .unwrap();

    let store = RedisIdempotency::with_lease(&state(&server, FailMode::Open), TTL, lease);
    let waiter = IdempotencyLayer::with_store(Arc::new(store));
    let (upstream, _seen) = Upstream::new(true);
    let taken_over = call(&waiter, &upstream, order("Place order 42.", false))
        .await
        .unwrap();
    let done = std::time::Instant::now();
    let died = tokio::task::spawn_blocking(move || owner.join().unwrap())
        .await
        .unwrap();
    assert_eq!(taken_over.text(), "Order placed.");
    assert_eq!(upstream.calls(), 1, "the waiter made the call itself");
    // It waited while the owner lived (and renewed its lease), and took over once the
    // lease ran out after its death.
    assert!(
        done > died,
        "the waiter took over while the owner was alive"
    );
    let after = done - died;
    assert!(
        after < lease + Duration::from_secs(2),
        "took over {after:?} after the death"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_fail_open_calls_through_and_fail_closed_refuses() {
    let mut server = RedisServer::start().unwrap();
    let open = IdempotencyLayer::with_store(Arc::new(RedisIdempotency::new(
        &state(&server, FailMode::Open),
        TTL,
    )));
    let closed = IdempotencyLayer::with_store(Arc::new(RedisIdempotency::new(
        &state(&server, FailMode::Closed),
        TTL,
    )));
    let (upstream, _seen) = Upstream::new(true);
    server.kill();

    let started = std::time::Instant::now();
    let through = call(&open, &upstream, order("Place order 42.", false))
        .await
        .unwrap();
    assert_eq!(through.text(), "Order placed.");
    // Replayed in process meanwhile.
    let again = call(&open, &upstream, order("Place order 42.", false))
        .await
        .unwrap();
    assert_eq!(again.trail.cache, Some(CacheStatus::Replayed));
    assert_eq!(upstream.calls(), 1);

    let refused = call(&closed, &upstream, order("Place order 42.", false))
        .await
        .unwrap_err();
    assert!(
        refused.downcast_ref::<IdempotencyUnavailable>().is_some(),
        "{refused}"
    );
    assert_eq!(upstream.calls(), 1, "nothing sent when refused");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the Redis timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_caller_gives_up_frees_the_key_for_a_waiting_replica() {
    let server = RedisServer::start().unwrap();
    let (a, _) = replica(&server);
    let (b, _) = replica(&server);
    let (held, mut held_seen) = Upstream::new(false);
    let owner = tokio::spawn({
        let a = a.clone();
        let held = held.clone();
        async move { call(&a, &held, order("Place order 42.", false)).await }
    });
    held_seen.recv().await.unwrap();

    let (upstream, mut seen) = Upstream::new(true);
    let waiter = tokio::spawn(async move {
        call(&b, &upstream, order("Place order 42.", false))
            .await
            .map(|r| (r, upstream.calls()))
    });
    // The waiter has not called upstream while the owner runs; the owner's caller gives up.
    assert!(seen.try_recv().is_err());
    owner.abort();
    let (response, calls) = waiter.await.unwrap().unwrap();
    assert_eq!(response.text(), "Order placed.");
    assert_eq!(
        calls, 1,
        "the waiting replica made the call once the key was freed"
    );
    assert_eq!(held.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_dropped_before_it_was_decided_frees_the_key() {
    use seawall::idempotency::{Answered, Claim, IdempotencyStore};
    let server = RedisServer::start().unwrap();
    let (_, store) = replica(&server);
    let undecided = store.claim("order-42", b"request", None);
    assert!(matches!(undecided, Answered::Later(_)), "decided in Redis");
    drop(undecided);
    // Neither joined to a call that will never run, nor held in Redis.
    let again = store.claim("order-42", b"request", None).get().await;
    assert!(matches!(again, Claim::First(_)), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_waits_for_another_replicas_call_no_later_than_its_deadline() {
    use seawall::idempotency::{Claim, IdempotencyStore};
    let server = RedisServer::start().unwrap();
    let (_, a) = replica(&server);
    let (_, b) = replica(&server);
    let owned = a.claim("order-42", b"request", None).get().await;
    assert!(matches!(owned, Claim::First(_)));

    let deadline = Duration::from_millis(200);
    let started = tokio::time::Instant::now();
    let waited = b
        .claim("order-42", b"request", Some(started + deadline))
        .get()
        .await;
    let took = started.elapsed();
    assert!(matches!(waited, Claim::StillRunning), "{waited:?}");
    assert!(took <= deadline, "gave up after {took:?}");
    assert!(took >= deadline / 2, "gave up early, after {took:?}");
    // The same key with another request is refused at once, even while it runs.
    let other = b.claim("order-42", b"another", None).get().await;
    assert!(matches!(other, Claim::Conflict), "{other:?}");
}
