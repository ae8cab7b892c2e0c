//! The response cache on the paused clock: hits, misses, TTL, the key, streamed replay,
//! stale-if-error, the caller's directives and the size bound.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::cache::CacheLayer;
use seawall_core::{
    AllTargetsFailed, BoxError, CacheDirectives, CacheStatus, ChatRequest, ChatResponse, ErrorKind,
    FinishReason, LlmError, Message, StreamEvent,
};
use support::{collect, reply, streamed};
use tower::{Layer, Service, ServiceExt, service_fn};

/// What the upstream does next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Answer,
    Stream,
    CutStream,
    Fail,
    FailInvalid,
}

/// An upstream whose behaviour the test sets, counting its calls.
#[derive(Clone)]
struct Upstream(Arc<Mutex<(Next, u32)>>);

impl Upstream {
    fn new() -> Self {
        Self(Arc::new(Mutex::new((Next::Answer, 0))))
    }

    fn set(&self, next: Next) {
        self.0.lock().unwrap().0 = next;
    }

    fn calls(&self) -> u32 {
        self.0.lock().unwrap().1
    }

    fn service(
        &self,
    ) -> impl Service<ChatRequest, Response = ChatResponse, Error = BoxError, Future: Send> + Clone + use<>
    {
        let state = Arc::clone(&self.0);
        service_fn(move |request: ChatRequest| {
            let next = {
                let mut state = state.lock().unwrap();
                state.1 += 1;
                state.0
            };
            let text = format!("answer #{} to {}", 1, request.texts().next().unwrap_or(""));
            async move {
                match next {
                    Next::Answer => Ok(reply("gpt-4o", &text)),
                    Next::Stream | Next::CutStream => {
                        let mut events = vec![
                            StreamEvent::Start {
                                id: Some("chatcmpl-1".into()),
                                model: Some("gpt-4o".into()),
                            },
                            StreamEvent::TextDelta("Par".into()),
                            StreamEvent::TextDelta("is".into()),
                        ];
                        events.push(if next == Next::Stream {
                            StreamEvent::Finish(FinishReason::Stop)
                        } else {
                            StreamEvent::Error(LlmError::new(ErrorKind::StreamTruncated, "cut"))
                        });
                        Ok(streamed("gpt-4o", Duration::ZERO, events))
                    }
                    Next::Fail => Err(BoxError::from(AllTargetsFailed::new(Vec::new()))),
                    Next::FailInvalid => Err(BoxError::from(LlmError::new(
                        ErrorKind::InvalidRequest,
                        "bad request",
                    ))),
                }
            }
        })
    }
}

fn question(text: &str) -> ChatRequest {
    ChatRequest::new("gpt-4o", [Message::user(text)])
}

#[tokio::test(start_paused = true)]
async fn a_repeated_request_is_answered_from_the_cache_until_its_ttl() {
    let upstream = Upstream::new();
    let layer = CacheLayer::new(Duration::from_secs(60));
    let service = layer.layer(upstream.service());

    let first = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(first.trail.cache, Some(CacheStatus::Miss));
    let second = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(second.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(second.text(), first.text());
    assert_eq!(second.id, first.id);
    assert_eq!(upstream.calls(), 1);

    tokio::time::advance(Duration::from_secs(59)).await;
    service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(upstream.calls(), 1, "still fresh at 59 s");
    tokio::time::advance(Duration::from_secs(1)).await;
    let third = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(third.trail.cache, Some(CacheStatus::Miss));
    assert_eq!(upstream.calls(), 2, "expired at 60 s");

    let stats = layer.stats();
    assert_eq!((stats.hits, stats.misses, stats.stored), (2, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn the_key_is_what_changes_the_answer() {
    let upstream = Upstream::new();
    let service = CacheLayer::new(Duration::from_secs(60)).layer(upstream.service());
    service.clone().oneshot(question("hi")).await.unwrap();

    // Who asks does not change the answer.
    let mut other_user = question("hi");
    other_user.user = Some("alice".into());
    let hit = service.clone().oneshot(other_user).await.unwrap();
    assert_eq!(hit.trail.cache, Some(CacheStatus::Hit));

    // The sampling temperature, the question and the model do.
    for request in [
        question("hi").with_temperature(0.7),
        question("hello"),
        ChatRequest::new("gpt-4o-mini", [Message::user("hi")]),
    ] {
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.trail.cache, Some(CacheStatus::Miss));
    }
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_answer_is_replayed_event_for_event_and_a_cut_one_is_not_stored() {
    let upstream = Upstream::new();
    let service = CacheLayer::new(Duration::from_secs(60)).layer(upstream.service());
    let streamed_question = || {
        let mut request = question("hi");
        request.stream = true;
        request
    };

    upstream.set(Next::CutStream);
    let mut cut = service.clone().oneshot(streamed_question()).await.unwrap();
    collect(cut.stream.take().unwrap()).await;
    upstream.set(Next::Stream);
    let mut original = service.clone().oneshot(streamed_question()).await.unwrap();
    assert_eq!(
        original.trail.cache,
        Some(CacheStatus::Miss),
        "the cut answer was not kept"
    );
    let original = collect(original.stream.take().unwrap()).await;

    let mut replay = service.clone().oneshot(streamed_question()).await.unwrap();
    assert_eq!(replay.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(collect(replay.stream.take().unwrap()).await, original);

    // The same answer, asked for whole.
    let whole = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(whole.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(whole.text(), "Paris");
    assert_eq!(whole.id, "chatcmpl-1");
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_expired_answer_stands_in_when_every_target_failed_but_not_for_the_callers_mistake() {
    let upstream = Upstream::new();
    let layer = CacheLayer::builder(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(600))
        .build();
    let service = layer.layer(upstream.service());
    let fresh = service.clone().oneshot(question("hi")).await.unwrap();

    tokio::time::advance(Duration::from_secs(300)).await;
    upstream.set(Next::Fail);
    let stale = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(stale.trail.cache, Some(CacheStatus::Stale));
    assert_eq!(stale.text(), fresh.text());
    assert_eq!(upstream.calls(), 2, "the upstream was asked first");

    upstream.set(Next::FailInvalid);
    let error = service.clone().oneshot(question("hi")).await.unwrap_err();
    assert!(error.is::<LlmError>(), "{error}");

    // Past the stale age, the failure is the answer.
    tokio::time::advance(Duration::from_secs(400)).await;
    upstream.set(Next::Fail);
    let error = service.clone().oneshot(question("hi")).await.unwrap_err();
    assert!(error.is::<AllTargetsFailed>(), "{error}");
    assert_eq!(layer.stats().stale, 1);
}

#[tokio::test(start_paused = true)]
async fn the_callers_directives_are_followed() {
    let upstream = Upstream::new();
    let service = CacheLayer::new(Duration::from_secs(600)).layer(upstream.service());
    let with = |directives: CacheDirectives| {
        let mut request = question("hi");
        request.context.options_mut().cache = directives;
        request
    };

    let response = service
        .clone()
        .oneshot(with(CacheDirectives::default().no_store()))
        .await
        .unwrap();
    assert_eq!(response.trail.cache, Some(CacheStatus::Miss));
    service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(upstream.calls(), 2, "no-store kept nothing");

    let response = service
        .clone()
        .oneshot(with(CacheDirectives::default().no_cache()))
        .await
        .unwrap();
    assert_eq!(response.trail.cache, Some(CacheStatus::Miss));
    assert_eq!(upstream.calls(), 3, "no-cache asked upstream");

    tokio::time::advance(Duration::from_secs(30)).await;
    let max_age = CacheDirectives::default().max_age(Duration::from_secs(10));
    let response = service.clone().oneshot(with(max_age)).await.unwrap();
    assert_eq!(
        response.trail.cache,
        Some(CacheStatus::Miss),
        "older than max-age"
    );
    let response = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(response.trail.cache, Some(CacheStatus::Hit));

    assert_eq!(
        CacheDirectives::from_header("no-cache, max-age=30"),
        CacheDirectives::default()
            .no_cache()
            .max_age(Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn the_store_stays_within_its_bound() {
    let upstream = Upstream::new();
    let layer = CacheLayer::builder(Duration::from_secs(600))
        .max_bytes(8 * 1024)
        .max_entry_bytes(512)
        .build();
    let service = layer.layer(upstream.service());
    for i in 0..200 {
        service
            .clone()
            .oneshot(question(&format!("question {i}")))
            .await
            .unwrap();
    }
    let big = "x".repeat(1_000);
    service.clone().oneshot(question(&big)).await.unwrap();
    service.clone().oneshot(question(&big)).await.unwrap();
    assert_eq!(
        upstream.calls(),
        202,
        "an answer over the entry bound is not stored"
    );
    let stats = layer.stats();
    assert!(stats.bytes <= 8 * 1024, "{stats:?}");
    assert!(stats.entries < 200, "{stats:?}");
}

/// A store that answers after a 5 ms round trip (as a shared store does), over answers
/// kept in process; or, `down`, refuses every lookup as a store failing closed.
struct Remote {
    answers: seawall::cache::InProcessCache,
    down: bool,
}

const ROUND_TRIP: Duration = Duration::from_millis(5);

impl seawall::cache::CacheStore for Remote {
    fn get(
        &self,
        key: &seawall::cache::CacheKey,
        younger_than: Duration,
    ) -> seawall::cache::Answered<seawall::cache::Lookup> {
        let found = self.answers.find(key, younger_than);
        let down = self.down;
        seawall::cache::Answered::Later(Box::pin(async move {
            tokio::time::sleep(ROUND_TRIP).await;
            if down {
                return Err(seawall::cache::CacheUnavailable::default());
            }
            Ok(found)
        }))
    }

    fn put(
        &self,
        key: &seawall::cache::CacheKey,
        answer: seawall::cache::StoredAnswer,
        keep_for: Duration,
    ) -> bool {
        self.answers.keep(key, answer, keep_for)
    }
}

fn remote(down: bool) -> Arc<Remote> {
    Arc::new(Remote {
        answers: seawall::cache::InProcessCache::new(1 << 20, 1 << 20),
        down,
    })
}

#[tokio::test(start_paused = true)]
async fn a_store_that_answers_after_a_round_trip_gives_hits_misses_and_stale_answers() {
    let upstream = Upstream::new();
    let layer = CacheLayer::builder(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(600))
        .store(remote(false))
        .build();
    let service = layer.layer(upstream.service());

    let started = tokio::time::Instant::now();
    let first = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(first.trail.cache, Some(CacheStatus::Miss));
    assert_eq!(started.elapsed(), ROUND_TRIP, "one lookup, then the call");
    let started = tokio::time::Instant::now();
    let second = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(second.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(second.text(), first.text());
    assert_eq!(started.elapsed(), ROUND_TRIP);
    assert_eq!(upstream.calls(), 1);

    // Past the TTL, a failed call gets the stale answer (a second lookup after the call).
    tokio::time::advance(Duration::from_secs(61)).await;
    upstream.set(Next::Fail);
    let started = tokio::time::Instant::now();
    let stale = service.clone().oneshot(question("hi")).await.unwrap();
    assert_eq!(stale.trail.cache, Some(CacheStatus::Stale));
    assert_eq!(stale.text(), first.text());
    assert_eq!(started.elapsed(), ROUND_TRIP * 2);
    assert_eq!(upstream.calls(), 2);
    // A failure that is the caller's own is not hidden.
    upstream.set(Next::FailInvalid);
    assert!(service.clone().oneshot(question("hi")).await.is_err());
    assert_eq!(layer.stats().stale, 1);
}

#[tokio::test(start_paused = true)]
async fn a_store_failing_closed_refuses_the_call_without_sending_it() {
    let upstream = Upstream::new();
    let service = CacheLayer::builder(Duration::from_secs(60))
        .store(remote(true))
        .build()
        .layer(upstream.service());
    let error = service.oneshot(question("hi")).await.unwrap_err();
    assert!(
        error
            .downcast_ref::<seawall::cache::CacheUnavailable>()
            .is_some()
    );
    assert_eq!(upstream.calls(), 0);
}
