//! Idempotency keys on the paused clock: coalescing (streams fanned out), replay, conflicts,
//! failures and abandoned first calls.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::idempotency::{FirstCallFailed, IdempotencyConflict, IdempotencyLayer};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason, LlmError, Message, StreamEvent,
};
use support::{collect, reply, streamed};
use tower::{Layer, Service, ServiceExt, service_fn};

/// An upstream that answers after 300 ms (streams: events 100 ms apart), or fails, counting
/// its calls.
#[derive(Clone)]
struct Upstream(Arc<Mutex<(bool, u32)>>);

impl Upstream {
    fn new() -> Self {
        Self(Arc::new(Mutex::new((false, 0))))
    }

    fn fail(&self, fail: bool) {
        self.0.lock().unwrap().0 = fail;
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
            let (fail, n) = {
                let mut state = state.lock().unwrap();
                state.1 += 1;
                (state.0, state.1)
            };
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if fail {
                    return Err(BoxError::from(
                        LlmError::new(ErrorKind::Overloaded, "overloaded").with_status(529),
                    ));
                }
                if request.stream {
                    return Ok(streamed(
                        "gpt-4o",
                        Duration::from_millis(100),
                        vec![
                            StreamEvent::TextDelta(format!("answer {n}: ")),
                            StreamEvent::TextDelta("Paris".into()),
                            StreamEvent::Finish(FinishReason::Stop),
                        ],
                    ));
                }
                Ok(reply("gpt-4o", &format!("answer {n}")))
            }
        })
    }
}

fn keyed(key: &str, text: &str) -> ChatRequest {
    let mut request = ChatRequest::new("gpt-4o", [Message::user(text)]);
    request.context.options_mut().idempotency_key = Some(key.into());
    request
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_calls_with_one_key_are_one_upstream_call() {
    let upstream = Upstream::new();
    let service = IdempotencyLayer::new(Duration::from_secs(60)).layer(upstream.service());
    let calls: Vec<_> = (0..50)
        .map(|_| tokio::spawn(service.clone().oneshot(keyed("k1", "hi"))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().text(), "answer 1");
    }
    assert_eq!(upstream.calls(), 1);

    // Finished: replayed within the TTL, nothing sent.
    let replay = service.clone().oneshot(keyed("k1", "hi")).await.unwrap();
    assert_eq!(replay.text(), "answer 1");
    assert_eq!(upstream.calls(), 1);
    // After the TTL the key runs anew.
    tokio::time::advance(Duration::from_secs(61)).await;
    let fresh = service.clone().oneshot(keyed("k1", "hi")).await.unwrap();
    assert_eq!(fresh.text(), "answer 2");

    // Calls without a key pass through.
    let plain = || ChatRequest::new("gpt-4o", [Message::user("hi")]);
    service.clone().oneshot(plain()).await.unwrap();
    service.clone().oneshot(plain()).await.unwrap();
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_fanned_out_to_every_caller_from_its_first_event() {
    let upstream = Upstream::new();
    let service = IdempotencyLayer::new(Duration::from_secs(60)).layer(upstream.service());
    let streamed_call = || {
        let mut request = keyed("k2", "hi");
        request.stream = true;
        let service = service.clone();
        tokio::spawn(async move {
            let mut response = service.oneshot(request).await.unwrap();
            collect(response.stream.take().expect("streamed")).await
        })
    };
    let first = streamed_call();
    tokio::time::sleep(Duration::from_millis(350)).await;
    // One joins mid-stream, one asks for the whole answer.
    let late = streamed_call();
    let whole = tokio::spawn(service.clone().oneshot(keyed("k2", "hi")));

    let expected = first.await.unwrap();
    assert_eq!(expected.len(), 3);
    assert_eq!(late.await.unwrap(), expected, "from the first event");
    assert_eq!(whole.await.unwrap().unwrap().text(), "answer 1: Paris");
    assert_eq!(upstream.calls(), 1);

    // Finished with its end of message: replayed event for event.
    assert_eq!(streamed_call().await.unwrap(), expected);
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_same_key_with_another_request_is_refused_and_not_sent() {
    let upstream = Upstream::new();
    let service = IdempotencyLayer::new(Duration::from_secs(60)).layer(upstream.service());
    let first = tokio::spawn(service.clone().oneshot(keyed("k3", "hi")));
    tokio::task::yield_now().await;
    let error = service
        .clone()
        .oneshot(keyed("k3", "hello"))
        .await
        .unwrap_err();
    let conflict = error
        .downcast_ref::<IdempotencyConflict>()
        .expect("a conflict");
    assert_eq!(conflict.key, "k3");
    first.await.unwrap().unwrap();
    // Also once the first call finished.
    let error = service
        .clone()
        .oneshot(keyed("k3", "hello"))
        .await
        .unwrap_err();
    assert!(error.is::<IdempotencyConflict>());
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_call_fails_the_joined_ones_and_frees_the_key() {
    let upstream = Upstream::new();
    upstream.fail(true);
    let service = IdempotencyLayer::new(Duration::from_secs(60)).layer(upstream.service());
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(service.clone().oneshot(keyed("k4", "hi"))))
        .collect();
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        let error = error
            .downcast_ref::<LlmError>()
            .expect("the provider's error");
        assert_eq!(error.kind(), ErrorKind::Overloaded);
    }
    assert_eq!(upstream.calls(), 1);

    upstream.fail(false);
    let retried = service.clone().oneshot(keyed("k4", "hi")).await.unwrap();
    assert_eq!(retried.text(), "answer 2", "a failure is not replayed");
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_first_call_fails_the_joined_ones() {
    let upstream = Upstream::new();
    let service = IdempotencyLayer::new(Duration::from_secs(60)).layer(upstream.service());
    let first = tokio::spawn(service.clone().oneshot(keyed("k5", "hi")));
    tokio::task::yield_now().await;
    let joined = tokio::spawn(service.clone().oneshot(keyed("k5", "hi")));
    tokio::task::yield_now().await;
    first.abort();
    let error = joined.await.unwrap().unwrap_err();
    assert!(error.is::<FirstCallFailed>(), "{error}");
    // The key is free: the next call runs.
    let again = service.clone().oneshot(keyed("k5", "hi")).await.unwrap();
    assert_eq!(again.text(), "answer 2");
}

#[tokio::test(start_paused = true)]
async fn answers_given_by_another_call_say_so_in_the_trail() {
    let upstream = Upstream::new();
    let service = IdempotencyLayer::new(Duration::from_secs(60)).layer(upstream.service());
    let first = service.clone().oneshot(keyed("k6", "hi")).await.unwrap();
    assert_eq!(first.trail.cache, None, "the first call ran");
    let again = service.clone().oneshot(keyed("k6", "hi")).await.unwrap();
    assert_eq!(again.trail.cache, Some(seawall_core::CacheStatus::Replayed));
}

/// A store that decides a first claim after a 5 ms round trip (as a shared store does):
/// the call runs, or (`down`) it is refused as by a store failing closed, with the calls
/// that joined it meanwhile.
struct Remote {
    keys: seawall::idempotency::InProcessIdempotency,
    down: bool,
}

const ROUND_TRIP: Duration = Duration::from_millis(5);

impl seawall::idempotency::IdempotencyStore for Remote {
    fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        _wait_until: Option<tokio::time::Instant>,
    ) -> seawall::idempotency::Answered<seawall::idempotency::Claim> {
        use seawall::idempotency::{Answered, Claim};
        match self.keys.claim_now(key, fingerprint) {
            Claim::First(flight) => {
                let down = self.down;
                let key = key.to_owned();
                Answered::Later(Box::pin(async move {
                    tokio::time::sleep(ROUND_TRIP).await;
                    if down {
                        flight.refused(&key, &Claim::Unavailable);
                        return Claim::Unavailable;
                    }
                    Claim::First(flight)
                }))
            }
            claim => Answered::Now(claim),
        }
    }

    fn complete(
        &self,
        key: &str,
        fingerprint: &[u8],
        answer: Arc<seawall::idempotency::StoredAnswer>,
    ) {
        self.keys.complete(key, fingerprint, answer);
    }

    fn release(&self, key: &str) {
        self.keys.release(key);
    }
}

fn remote(down: bool) -> IdempotencyLayer {
    IdempotencyLayer::with_store(Arc::new(Remote {
        keys: seawall::idempotency::InProcessIdempotency::new(Duration::from_secs(60)),
        down,
    }))
}

#[tokio::test(start_paused = true)]
async fn with_a_store_that_answers_later_concurrent_calls_are_still_one_call() {
    let upstream = Upstream::new();
    let service = remote(false).layer(upstream.service());
    let started = tokio::time::Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| tokio::spawn(service.clone().oneshot(keyed("k1", "hi"))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().text(), "answer 1");
    }
    assert_eq!(started.elapsed(), ROUND_TRIP + Duration::from_millis(300));
    assert_eq!(upstream.calls(), 1);
    let replay = service.clone().oneshot(keyed("k1", "hi")).await.unwrap();
    assert_eq!(
        replay.trail.cache,
        Some(seawall_core::CacheStatus::Replayed)
    );
    let conflict = service
        .clone()
        .oneshot(keyed("k1", "other"))
        .await
        .unwrap_err();
    assert!(conflict.downcast_ref::<IdempotencyConflict>().is_some());
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_store_failing_closed_refuses_the_call_and_the_ones_that_joined_it() {
    let upstream = Upstream::new();
    let service = remote(true).layer(upstream.service());
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(service.clone().oneshot(keyed("k1", "hi"))))
        .collect();
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        assert!(
            error
                .downcast_ref::<seawall::idempotency::IdempotencyUnavailable>()
                .is_some(),
            "{error}"
        );
    }
    assert_eq!(upstream.calls(), 0);
}
