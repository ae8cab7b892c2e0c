//! The response cache on Redis, over two replicas (two stores on two connections to one
//! real `redis-server`): a hit shared, expiry, stale-if-error, a stream replayed as it came,
//! the size bound, hashed keys, and Redis killed under both fail modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall::cache::{CacheLayer, CacheUnavailable};
use seawall_core::{
    AssistantMessage, BoxError, CacheStatus, ChatRequest, ChatResponse, ErrorKind, EventStream,
    FinishReason, LlmError, Message, ProviderKind, StreamEvent, Usage,
};
use seawall_redis::testing::RedisServer;
use seawall_redis::{FailMode, RedisCache, RedisConfig, RedisState};
use tower::{Layer, ServiceExt, service_fn};

fn replica_state(server: &RedisServer, mode: FailMode) -> RedisState {
    RedisState::new(
        RedisConfig::new(server.url())
            .prefix("test:")
            .timeout(Duration::from_millis(200))
            .fail_mode(mode),
    )
    .unwrap()
}

/// One replica's cache: its own connection, the shared Redis.
fn replica(
    server: &RedisServer,
    ttl: Duration,
    stale: Option<Duration>,
) -> (CacheLayer, RedisCache) {
    let store = RedisCache::new(&replica_state(server, FailMode::Open), 1024 * 1024);
    let mut builder = CacheLayer::builder(ttl).store(Arc::new(store.clone()));
    if let Some(stale) = stale {
        builder = builder.stale_if_error(stale);
    }
    (builder.build(), store)
}

fn question() -> ChatRequest {
    ChatRequest::new("gpt-4o", [Message::user("Capital of France?")])
}

/// The events of a complete streamed answer.
fn events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::Start {
            id: Some("chatcmpl-1".into()),
            model: Some("gpt-4o-2024-08-06".into()),
        },
        StreamEvent::TextDelta("Par".into()),
        StreamEvent::TextDelta("is — \"ünïcode\"\n".into()),
        StreamEvent::ToolCallDelta {
            index: 0,
            id: Some("call_1".into()),
            name: Some("lookup".into()),
            arguments: "{\"q\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            id: None,
            name: None,
            arguments: "\"x\"}".into(),
        },
        StreamEvent::Usage(Usage::new(12, 5)),
        StreamEvent::Finish(FinishReason::Stop),
    ]
}

/// An upstream that answers "Paris" (streamed when asked) while `failing` is 0, and fails
/// with a 503 once it is set; counts the calls it gets.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicU32>,
    failing: Arc<AtomicU32>,
}

impl Upstream {
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
                if this.failing.load(Ordering::SeqCst) > 0 {
                    return Err(BoxError::from(
                        LlmError::new(ErrorKind::Server, "status 503").with_status(503),
                    ));
                }
                Ok(if request.stream {
                    ChatResponse::streaming(
                        ProviderKind::OpenAi,
                        "gpt-4o",
                        EventStream::from_events(events()),
                    )
                } else {
                    ChatResponse::new(
                        ProviderKind::OpenAi,
                        "gpt-4o",
                        AssistantMessage::text("Paris"),
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
    layer: &CacheLayer,
    upstream: &Upstream,
    request: ChatRequest,
) -> Result<ChatResponse, BoxError> {
    tokio::time::timeout(
        Duration::from_secs(5),
        layer.layer(upstream.service()).oneshot(request),
    )
    .await
    .expect("a cached call never hangs")
}

/// Calls through `layer` until a call is not a hit (at most 5 s), returning it and how
/// long after `since` it came.
async fn until_not_hit(
    layer: &CacheLayer,
    upstream: &Upstream,
    since: std::time::Instant,
) -> (Result<ChatResponse, BoxError>, Duration) {
    for _ in 0..500 {
        let result = call(layer, upstream, question()).await;
        let hit = matches!(&result, Ok(r) if r.trail.cache == Some(CacheStatus::Hit));
        if !hit {
            return (result, since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the answer stayed fresh past its TTL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stored_by_one_replica_is_a_hit_on_the_other() {
    let server = RedisServer::start().unwrap();
    let (a, a_store) = replica(&server, Duration::from_secs(600), None);
    let (b, _) = replica(&server, Duration::from_secs(600), None);
    let upstream = Upstream::default();

    let first = call(&a, &upstream, question()).await.unwrap();
    assert_eq!(first.trail.cache, Some(CacheStatus::Miss));
    a_store.flush().await;
    let second = call(&b, &upstream, question()).await.unwrap();
    assert_eq!(second.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(second.text(), "Paris");
    assert_eq!(second.finish_reason, Some(FinishReason::Stop));
    assert_eq!(upstream.calls(), 1, "one upstream call for both replicas");
    assert_eq!(b.stats().hits, 1);

    // The key is a digest under the prefix: no prompt text in it.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("test:{cache:"), "{keys:?}");
    assert_eq!(
        keys[0].len(),
        "test:{cache:}".len() + 64,
        "a SHA-256 in hex"
    );
    assert!(!keys[0].contains("France"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_expires_after_its_ttl_for_every_replica() {
    let server = RedisServer::start().unwrap();
    let ttl = Duration::from_millis(400);
    let (a, a_store) = replica(&server, ttl, None);
    let (b, _) = replica(&server, ttl, None);
    let upstream = Upstream::default();

    let stored = std::time::Instant::now();
    call(&a, &upstream, question()).await.unwrap();
    a_store.flush().await;
    let (after, at) = until_not_hit(&b, &upstream, stored).await;
    assert_eq!(after.unwrap().trail.cache, Some(CacheStatus::Miss));
    assert!(
        at >= ttl,
        "a hit until the TTL passed, a miss after ({at:?})"
    );
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_upstream_fails_answers_with_another_replicas_stale_answer() {
    let server = RedisServer::start().unwrap();
    let ttl = Duration::from_millis(300);
    let (a, a_store) = replica(&server, ttl, Some(Duration::from_secs(60)));
    let (b, _) = replica(&server, ttl, Some(Duration::from_secs(60)));
    let upstream = Upstream::default();

    let stored = std::time::Instant::now();
    call(&a, &upstream, question()).await.unwrap();
    a_store.flush().await;
    upstream.failing.store(1, Ordering::SeqCst);
    let (stale, at) = until_not_hit(&b, &upstream, stored).await;
    let stale = stale.expect("the stale answer instead of the 503");
    assert!(at >= ttl);
    assert_eq!(stale.trail.cache, Some(CacheStatus::Stale));
    assert_eq!(stale.text(), "Paris");
    assert_eq!(b.stats().stale, 1);
    assert_eq!(
        upstream.calls(),
        2,
        "the stale answer came after the call failed"
    );

    // Without a stale window, the failure is the caller's.
    let (c, _) = replica(&server, ttl, None);
    let error = call(&c, &upstream, question()).await.unwrap_err();
    assert!(seawall_core::find_error::<LlmError>(&*error).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_replayed_on_another_replica_event_for_event() {
    let server = RedisServer::start().unwrap();
    let (a, a_store) = replica(&server, Duration::from_secs(600), None);
    let (b, _) = replica(&server, Duration::from_secs(600), None);
    let upstream = Upstream::default();

    let mut request = question();
    request.stream = true;
    let first = call(&a, &upstream, request.clone()).await.unwrap();
    let relayed = first.stream.unwrap().collect().await;
    assert_eq!(relayed, events());
    a_store.flush().await;

    let replayed = call(&b, &upstream, request).await.unwrap();
    assert_eq!(replayed.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(replayed.stream.unwrap().collect().await, events());
    // Asked whole, the same answer folded.
    let whole = call(&b, &upstream, question()).await.unwrap();
    assert_eq!(whole.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(whole.text(), "Paris — \"ünïcode\"\n");
    assert_eq!(whole.message.tool_calls[0].arguments, "{\"q\":\"x\"}");
    assert_eq!(whole.usage, Some(Usage::new(12, 5)));
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_larger_than_the_entry_bound_is_not_stored() {
    let server = RedisServer::start().unwrap();
    let small = |server: &RedisServer| {
        let store = RedisCache::new(&replica_state(server, FailMode::Open), 40);
        let layer = CacheLayer::builder(Duration::from_secs(600))
            .store(Arc::new(store.clone()))
            .build();
        (layer, store)
    };
    let (a, a_store) = small(&server);
    let (b, _) = small(&server);
    let upstream = Upstream::default();
    call(&a, &upstream, question()).await.unwrap();
    a_store.flush().await;
    let again = call(&b, &upstream, question()).await.unwrap();
    assert_eq!(again.trail.cache, Some(CacheStatus::Miss));
    assert_eq!(upstream.calls(), 2);
    assert_eq!(a.stats().stored, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_fail_open_caches_in_process_and_fail_closed_refuses() {
    let mut server = RedisServer::start().unwrap();
    let open_store = RedisCache::new(&replica_state(&server, FailMode::Open), 1024 * 1024);
    let open = CacheLayer::builder(Duration::from_secs(600))
        .store(Arc::new(open_store.clone()))
        .build();
    let closed = CacheLayer::builder(Duration::from_secs(600))
        .store(Arc::new(RedisCache::new(
            &replica_state(&server, FailMode::Closed),
            1024 * 1024,
        )))
        .build();
    let upstream = Upstream::default();
    server.kill();

    let started = std::time::Instant::now();
    let first = call(&open, &upstream, question()).await.unwrap();
    assert_eq!(first.text(), "Paris");
    open_store.flush().await;
    let second = call(&open, &upstream, question()).await.unwrap();
    assert_eq!(
        second.trail.cache,
        Some(CacheStatus::Hit),
        "kept in process"
    );
    assert_eq!(upstream.calls(), 1);

    let refused = call(&closed, &upstream, question()).await.unwrap_err();
    assert!(
        refused.downcast_ref::<CacheUnavailable>().is_some(),
        "{refused}"
    );
    assert_eq!(upstream.calls(), 1, "nothing sent when refused");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the Redis timeout: {:?}",
        started.elapsed()
    );
}
