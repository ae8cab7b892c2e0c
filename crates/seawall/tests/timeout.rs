//! The deadline, attempt, first-token and idle timeouts on the paused clock.

mod support;

use seawall::timeout::TokioClock;
use seawall_core::Clock as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use seawall::retry::RetryLayer;
use seawall::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use seawall_core::{
    BoxError, Cause, ChatRequest, ChatResponse, Deadline, DeadlineExceeded, Disposition, ErrorKind,
    ErrorWithTrail, FinishReason, LlmError, LlmRequest, StreamEvent, TimedOut, TimeoutKind,
    classify,
};
use support::{answer, error, next_event, request, streaming};
use tokio::time::{Instant, sleep};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_test::mock;

fn timed_out_in(event: Option<StreamEvent>) -> (TimedOut, LlmError) {
    let Some(StreamEvent::Error(error)) = event else {
        panic!("expected a timeout error event, got {event:?}");
    };
    let timed_out = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<TimedOut>())
        .expect("the error's source is a TimedOut")
        .clone();
    (timed_out, error)
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_set_on_the_request_and_an_earlier_one_is_kept() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = DeadlineLayer::new(Duration::from_secs(30)).layer(service);
    let start = Instant::now();

    let call = tokio::spawn(service.clone().oneshot(request()));
    let (sent, reply) = handle.next_request().await.unwrap();
    let deadline = sent.context.deadline.expect("the deadline is set");
    assert_eq!(deadline.at(), (start + Duration::from_secs(30)).into_std());
    reply.send_response(answer("ok"));
    call.await.unwrap().unwrap();

    let mut tight = request();
    tight.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(5)));
    let call = tokio::spawn(service.clone().oneshot(tight));
    let (sent, reply) = handle.next_request().await.unwrap();
    assert_eq!(
        sent.context.deadline.unwrap().budget(),
        Duration::from_secs(5)
    );
    reply.send_response(answer("ok"));
    call.await.unwrap().unwrap();

    let mut loose = request();
    loose.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(90)));
    let call = tokio::spawn(service.oneshot(loose));
    let (sent, reply) = handle.next_request().await.unwrap();
    assert_eq!(
        sent.context.deadline.unwrap().budget(),
        Duration::from_secs(30)
    );
    reply.send_response(answer("ok"));
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_call_exactly_when_it_passes() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = DeadlineLayer::new(Duration::from_secs(3)).layer(service);
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(request()));
    let (_, _never_answered) = handle.next_request().await.unwrap();
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    let exceeded = deadline_exceeded(&error);
    assert_eq!(exceeded.budget, Duration::from_secs(3));
    assert_eq!(classify(error.as_ref()).disposition, Disposition::Fatal);
}

#[tokio::test(start_paused = true)]
async fn an_expired_deadline_fails_without_a_call() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let mut service = DeadlineLayer::new(Duration::from_secs(3)).layer(service);
    let mut request = request();
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(1)));
    sleep(Duration::from_secs(2)).await;
    let error = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap_err();
    deadline_exceeded(&error);
    drop(service);
    assert!(handle.next_request().await.is_none(), "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_retries_end_to_end() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(2)))
        .layer(RetryLayer::new().max_attempts(10))
        .service(service);
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(request()));
    // A wait that fits, then an attempt that never answers.
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(error(ErrorKind::RateLimited, 429).with_retry_after(Duration::from_secs(1)));
    let (_, _never_answered) = handle.next_request().await.unwrap();
    let error = call.await.unwrap().unwrap_err();
    deadline_exceeded(&error);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn raw_http_calls_get_the_deadline_in_their_extensions() {
    type Req = http::Request<Full<Bytes>>;
    type Res = http::Response<Full<Bytes>>;
    let (service, mut handle) = mock::pair::<Req, Res>();
    let service = DeadlineLayer::new(Duration::from_secs(4)).layer(service);
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(http::Request::new(Full::new(Bytes::new()))));
    let (sent, _never_answered) = handle.next_request().await.unwrap();
    let deadline = sent.context().and_then(|context| context.deadline).unwrap();
    assert_eq!(deadline.budget(), Duration::from_secs(4));
    deadline_exceeded(&call.await.unwrap().unwrap_err());
    assert_eq!(start.elapsed(), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_ends_the_attempt_with_a_typed_error() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = AttemptTimeoutLayer::new(Duration::from_millis(2500)).layer(service);
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(request()));
    let (_, _never_answered) = handle.next_request().await.unwrap();
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
    assert_eq!(
        error.downcast_ref::<TimedOut>(),
        Some(&TimedOut::new(
            TimeoutKind::Attempt,
            Duration::from_millis(2500)
        ))
    );
    let verdict = classify(error.as_ref());
    assert_eq!(verdict.disposition, Disposition::Failover);
    assert!(verdict.health_failure);
}

async fn stream_through(
    layer: AttemptTimeoutLayer,
) -> (
    seawall_core::EventStream,
    tokio::sync::mpsc::UnboundedSender<StreamEvent>,
    Instant,
) {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = layer.layer(service);
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(request().streaming()));
    let (_, reply) = handle.next_request().await.unwrap();
    let (response, events) = streaming();
    reply.send_response(response);
    let mut response = call.await.unwrap().unwrap();
    (response.stream.take().unwrap(), events, start)
}

#[tokio::test(start_paused = true)]
async fn a_first_token_timeout_ends_the_stream_with_a_timeout_event() {
    let layer = AttemptTimeoutLayer::new(Duration::from_secs(30))
        .first_token(Duration::from_secs(2))
        .idle(Duration::from_secs(10));
    let (mut stream, events, start) = stream_through(layer).await;
    events
        .send(StreamEvent::Start {
            id: None,
            model: None,
        })
        .unwrap();
    assert!(matches!(
        next_event(&mut stream).await,
        Some(StreamEvent::Start { .. })
    ));
    let (timed_out, error) = timed_out_in(next_event(&mut stream).await);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(timed_out.kind, TimeoutKind::FirstToken);
    assert_eq!(timed_out.after, Duration::from_secs(2));
    assert_eq!(error.kind(), ErrorKind::Timeout);
    let verdict = classify(&error);
    assert_eq!(verdict.disposition, Disposition::Failover);
    assert_eq!(verdict.cause, Cause::Provider(ErrorKind::Timeout));
    assert!(verdict.health_failure);
    assert_eq!(next_event(&mut stream).await, None, "nothing follows");
}

#[tokio::test(start_paused = true)]
async fn a_first_token_in_time_disarms_the_first_token_timeout() {
    let layer = AttemptTimeoutLayer::streams_only().first_token(Duration::from_secs(2));
    let (mut stream, events, _) = stream_through(layer).await;
    sleep(Duration::from_millis(1900)).await;
    events.send(StreamEvent::TextDelta("Par".into())).unwrap();
    assert!(next_event(&mut stream).await.unwrap().is_content());
    // No idle timeout set: a long pause after the first token is fine.
    let producer = tokio::spawn(async move {
        sleep(Duration::from_secs(60)).await;
        events.send(StreamEvent::TextDelta("is".into())).unwrap();
        events
            .send(StreamEvent::Finish(FinishReason::Stop))
            .unwrap();
    });
    assert_eq!(
        next_event(&mut stream).await,
        Some(StreamEvent::TextDelta("is".into()))
    );
    assert_eq!(
        next_event(&mut stream).await,
        Some(StreamEvent::Finish(FinishReason::Stop))
    );
    producer.await.unwrap();
    assert_eq!(next_event(&mut stream).await, None);
}

#[tokio::test(start_paused = true)]
async fn an_idle_timeout_fires_after_silence_between_chunks() {
    let layer = AttemptTimeoutLayer::new(Duration::from_secs(30))
        .first_token(Duration::from_secs(5))
        .idle(Duration::from_secs(1));
    let (mut stream, events, start) = stream_through(layer).await;
    // Chunks 900 ms apart keep the stream alive past several idle periods.
    for i in 0..4 {
        sleep(Duration::from_millis(900)).await;
        events.send(StreamEvent::TextDelta(format!("{i}"))).unwrap();
        assert!(next_event(&mut stream).await.unwrap().is_content());
    }
    let last_chunk = start + Duration::from_millis(3600);
    let (timed_out, _) = timed_out_in(next_event(&mut stream).await);
    assert_eq!(timed_out.kind, TimeoutKind::Idle);
    assert_eq!(Instant::now() - last_chunk, Duration::from_secs(1));
    assert_eq!(next_event(&mut stream).await, None);
    drop(events);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_also_bounds_a_stream() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = DeadlineLayer::new(Duration::from_secs(5)).layer(service);
    let start = Instant::now();
    let call = tokio::spawn(service.oneshot(request().streaming()));
    let (_, reply) = handle.next_request().await.unwrap();
    let (response, events) = streaming();
    reply.send_response(response);
    let mut stream = call.await.unwrap().unwrap().stream.take().unwrap();
    events.send(StreamEvent::TextDelta("slow".into())).unwrap();
    assert!(next_event(&mut stream).await.unwrap().is_content());
    let Some(StreamEvent::Error(error)) = next_event(&mut stream).await else {
        panic!("expected the deadline to end the stream");
    };
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(
        std::error::Error::source(&error).is_some_and(|source| source.is::<DeadlineExceeded>())
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_ends_only_its_own_call() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = AttemptTimeoutLayer::new(Duration::from_secs(1)).layer(service);
    let slow = tokio::spawn(service.clone().oneshot(request()));
    let (_, _never_answered) = handle.next_request().await.unwrap();
    let fast = tokio::spawn(service.oneshot(request()));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(answer("fast"));
    assert_eq!(fast.await.unwrap().unwrap().text(), "fast");
    let error: BoxError = slow.await.unwrap().unwrap_err();
    assert!(error.is::<TimedOut>());
}

#[tokio::test(start_paused = true)]
async fn without_a_first_token_timeout_idle_counts_from_the_stream_head() {
    let (service, mut handle) = mock::pair::<ChatRequest, ChatResponse>();
    let service = AttemptTimeoutLayer::streams_only()
        .idle(Duration::from_secs(2))
        .layer(service);
    let call = tokio::spawn(service.oneshot(request().streaming()));
    let (_, reply) = handle.next_request().await.unwrap();
    // The head takes 3 s, longer than the idle timeout: that is the attempt's business.
    sleep(Duration::from_secs(3)).await;
    let (response, events) = streaming();
    reply.send_response(response);
    let mut stream = call.await.unwrap().unwrap().stream.take().unwrap();
    let head_at = Instant::now();
    let (timed_out, _) = timed_out_in(next_event(&mut stream).await);
    assert_eq!(timed_out.kind, TimeoutKind::Idle);
    assert_eq!(head_at.elapsed(), Duration::from_secs(2));
    drop(events);
}

/// The deadline error inside the trail wrapper every deadline error comes in.
fn deadline_exceeded(error: &BoxError) -> &DeadlineExceeded {
    ErrorWithTrail::find(error.as_ref())
        .and_then(ErrorWithTrail::downcast_inner::<DeadlineExceeded>)
        .expect("a deadline error carrying its trail")
}

#[tokio::test(start_paused = true)]
async fn a_deadline_built_on_tokios_clock_expires_when_tokios_clock_says() {
    let deadline = Deadline::after(TokioClock.now(), Duration::from_secs(30));
    assert_eq!(
        deadline.at(),
        (Instant::now() + Duration::from_secs(30)).into_std()
    );
    tokio::time::advance(Duration::from_millis(29_999)).await;
    assert!(!deadline.is_expired(TokioClock.now()));
    assert_eq!(
        deadline.remaining(TokioClock.now()),
        Duration::from_millis(1)
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(deadline.is_expired(TokioClock.now()));
}
