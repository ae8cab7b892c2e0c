//! What a production user counts on, one test per behaviour, over real loopback HTTP against
//! `seawall-sim`: the recommended stack (`Deadline → Failover → per target [Retry → Breaker →
//! RateLimit → AttemptTimeout → adapter]`) around the real provider adapters, with faults from
//! the simulator's fault plan. Assertions read the outcome, the trail and the simulator's
//! request log (call counts, gaps).
//!
//! Real time: durations are tens to hundreds of milliseconds, upper bounds are generous.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::{
    calls, drain, fast_retry, gaps, guarded, question, stack, streamed_question, target_id,
};
use seawall::ServiceBuilderExt;
use seawall::breaker::{BreakerEvent, BreakerLayer};
use seawall::failover::{Failover, Target};
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::{
    AllTargetsFailed, AttemptOutcome, BoxError, BreakerState, ChatRequest, ChatResponse,
    ClassifyPolicy, ContentFilterPolicy, DeadlineExceeded, ErrorKind, ErrorWithTrail, FinishReason,
    LlmError,
};
use seawall_sim::{Fault, FaultRule, Provider, RateLimitKind, RetryAfter, RetryHeaders, Simulator};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

async fn sim() -> Simulator {
    Simulator::builder()
        .scripted_reply("capital of France", "Paris.")
        .start()
        .await
        .expect("the simulator starts")
}

fn router(targets: impl IntoIterator<Item = Target>) -> Failover {
    Failover::builder().targets(targets).build()
}

async fn call(router: &Failover, request: ChatRequest) -> Result<ChatResponse, BoxError> {
    router.clone().oneshot(request).await
}

fn final_target(response: &ChatResponse) -> &str {
    response
        .trail
        .final_target
        .as_ref()
        .map_or("", |target| target.as_str())
}

fn llm_error(error: &BoxError) -> Option<&LlmError> {
    seawall_core::find_error(error.as_ref())
}

// --- 429 with retry-after, each header form ---------------------------------------------

/// One target whose first request gets `fault`; the retry layer must wait the server's hint
/// (at least `min_gap`) and succeed on the second request.
async fn retry_after_is_honoured(provider: Provider, fault: Fault, min_gap: Duration) {
    let sim = sim().await;
    sim.set_faults(provider, vec![FaultRule::first(1, fault)]);
    let router = router([guarded(&sim, provider, stack(provider)).target]);

    let response = call(&router, question("What is the capital of France?"))
        .await
        .expect("answered after the wait");
    assert_eq!(response.text(), "Paris.");
    assert_eq!(calls(&sim, provider), 2, "one 429, one retry");
    let gap = gaps(&sim, provider)[0];
    assert!(
        gap >= min_gap,
        "waited {gap:?}, the server asked {min_gap:?}"
    );
    assert!(gap < min_gap + Duration::from_secs(2), "waited {gap:?}");
}

fn rate_limited(retry: RetryHeaders) -> Fault {
    Fault::RateLimited {
        limit: RateLimitKind::Requests,
        retry,
    }
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let fault = rate_limited(RetryHeaders {
        retry_after: Some(RetryAfter::Seconds(1)),
        ..RetryHeaders::default()
    });
    retry_after_is_honoured(Provider::OpenAi, fault, Duration::from_millis(950)).await;
}

#[tokio::test]
async fn retry_after_ms_is_honoured() {
    let fault = rate_limited(RetryHeaders {
        retry_after_ms: Some(400),
        ..RetryHeaders::default()
    });
    retry_after_is_honoured(Provider::OpenAi, fault, Duration::from_millis(380)).await;
}

#[tokio::test]
async fn retry_after_fractional_seconds_is_honoured() {
    let fault = rate_limited(RetryHeaders {
        retry_after: Some(RetryAfter::Float(0.4)),
        ..RetryHeaders::default()
    });
    retry_after_is_honoured(Provider::Anthropic, fault, Duration::from_millis(380)).await;
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    // An HTTP date has whole-second resolution: "2 s from now" is between 1 and 2 s away.
    let fault = rate_limited(RetryHeaders {
        retry_after: Some(RetryAfter::HttpDateIn(2)),
        ..RetryHeaders::default()
    });
    retry_after_is_honoured(Provider::OpenAi, fault, Duration::from_millis(900)).await;
}

#[tokio::test]
async fn gemini_retry_info_is_honoured() {
    // Gemini sends the wait in the body (`RetryInfo.retryDelay`), not in a header.
    retry_after_is_honoured(
        Provider::Gemini,
        Fault::rate_limited(1),
        Duration::from_millis(950),
    )
    .await;
}

#[tokio::test]
async fn retry_after_beyond_the_threshold_parks_the_target_and_fails_over_at_once() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::rate_limited(30))],
    );
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);

    let started = Instant::now();
    let response = call(&router, question("What is the capital of France?"))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "no 30 s wait");
    assert_eq!(final_target(&response), "anthropic");
    // The next call skips the parked target without sending it anything.
    let response = call(&router, question("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(final_target(&response), "anthropic");
    assert_eq!(calls(&sim, Provider::OpenAi), 1);
    assert!(matches!(
        response.trail.attempts[0].outcome,
        AttemptOutcome::Skipped { .. }
    ));
}

// --- overload, silence, slowness ----------------------------------------------------------

#[tokio::test]
async fn overload_backs_off_then_fails_over() {
    let sim = sim().await;
    sim.set_faults(
        Provider::Anthropic,
        vec![FaultRule::always(Fault::overloaded())],
    );
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let gemini = guarded(&sim, Provider::Gemini, stack(Provider::Gemini));
    let router = router([anthropic.target, gemini.target]);

    let response = call(&router, question("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(response.text(), "Paris.");
    assert_eq!(final_target(&response), "gemini");
    assert_eq!(
        calls(&sim, Provider::Anthropic),
        3,
        "three attempts, then failover"
    );
    assert_eq!(calls(&sim, Provider::Gemini), 1);
    // Full-jitter backoff: each gap is within its ceiling (20 ms, then 40 ms) plus slack.
    for gap in gaps(&sim, Provider::Anthropic) {
        assert!(gap < Duration::from_millis(500), "{gap:?}");
    }
    let first = &response.trail.attempts[0];
    assert!(matches!(first.outcome, AttemptOutcome::Failed { .. }));
}

#[tokio::test]
async fn silent_upstream_times_out_and_fails_over_without_retrying_it() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::Hang { ms: Some(60_000) })],
    );
    let openai = guarded(
        &sim,
        Provider::OpenAi,
        stack(Provider::OpenAi)
            .attempt_timeout(AttemptTimeoutLayer::new(Duration::from_millis(200))),
    );
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);

    let started = Instant::now();
    let response = call(&router, question("What is the capital of France?"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(final_target(&response), "anthropic");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    // Far below the minute the upstream stays silent, however loaded the machine.
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(
        calls(&sim, Provider::OpenAi),
        1,
        "a silent target is not retried"
    );
}

#[tokio::test]
async fn slow_first_token_fails_over() {
    let sim = sim().await;
    // The role chunk comes at once, then nothing for a minute: no content within 200 ms.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter {
            events: 1,
            ms: 60_000,
        })],
    );
    let openai = guarded(
        &sim,
        Provider::OpenAi,
        stack(Provider::OpenAi).attempt_timeout(
            AttemptTimeoutLayer::new(Duration::from_secs(5))
                .first_token(Duration::from_millis(200)),
        ),
    );
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);

    let started = Instant::now();
    let response = call(&router, streamed_question("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(final_target(&response), "anthropic");
    let drained = drain(response).await;
    assert_eq!(drained.text, "Paris.");
    assert!(drained.finished && drained.error.is_none());
    // Far below the minute of silence, however loaded the machine.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(calls(&sim, Provider::OpenAi), 1);
}

// --- streams: before and after the commit point --------------------------------------------

#[tokio::test]
async fn stream_cut_before_the_first_token_fails_over_transparently() {
    let sim = sim().await;
    // One event (the role chunk, no content), then the connection is cut.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::CutAfter { events: 1 })],
    );
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let gemini = guarded(&sim, Provider::Gemini, stack(Provider::Gemini));
    let router = router([openai.target, gemini.target]);

    let response = call(&router, streamed_question("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(final_target(&response), "gemini");
    let drained = drain(response).await;
    assert_eq!(drained.text, "Paris.");
    assert!(drained.finished);
    assert!(drained.error.is_none(), "the caller never sees the cut");
}

/// A single target, so that no other target could continue the stream: after the first
/// token a failure must reach the caller as an error event, never as a complete stream.
///
/// (Stream recovery on another target, when it lands, changes what a router with several
/// targets does after the commit point; with one target there is nothing to recover on.)
async fn after_the_first_token_is_an_explicit_error(fault: Fault, timeouts: AttemptTimeoutLayer) {
    let sim = Simulator::builder()
        .reply_tokens(12)
        .start()
        .await
        .expect("the simulator starts");
    sim.set_faults(Provider::OpenAi, vec![FaultRule::always(fault)]);
    let openai = guarded(
        &sim,
        Provider::OpenAi,
        stack(Provider::OpenAi).attempt_timeout(timeouts),
    );
    let router = router([openai.target]);

    let response = call(&router, streamed_question("Tell me about the sea."))
        .await
        .expect("committed: the first token arrived");
    let drained = drain(response).await;
    assert!(!drained.text.is_empty(), "some text was delivered");
    assert!(!drained.finished, "never passed off as complete");
    let error = drained
        .error
        .expect("an explicit error event ends the stream");
    assert!(
        matches!(
            drained.events.last(),
            Some(seawall_core::StreamEvent::Error(_))
        ),
        "the error is the last event"
    );
    assert_eq!(calls(&sim, Provider::OpenAi), 1, "{error}");
}

fn no_stream_timeouts() -> AttemptTimeoutLayer {
    AttemptTimeoutLayer::new(Duration::from_secs(5))
}

#[tokio::test]
async fn stream_cut_after_the_first_token_is_an_explicit_error() {
    after_the_first_token_is_an_explicit_error(Fault::CutAfter { events: 4 }, no_stream_timeouts())
        .await;
}

#[tokio::test]
async fn stream_stall_after_the_first_token_is_an_explicit_error() {
    after_the_first_token_is_an_explicit_error(
        Fault::StallAfter {
            events: 4,
            ms: 3_000,
        },
        no_stream_timeouts().idle(Duration::from_millis(200)),
    )
    .await;
}

#[tokio::test]
async fn error_frame_after_the_first_token_is_an_explicit_error() {
    after_the_first_token_is_an_explicit_error(
        Fault::ErrorFrameAfter { events: 4 },
        no_stream_timeouts(),
    )
    .await;
}

#[tokio::test]
async fn stream_end_without_end_of_message_is_an_explicit_error() {
    after_the_first_token_is_an_explicit_error(
        Fault::EndWithoutTerminal { events: Some(4) },
        no_stream_timeouts(),
    )
    .await;
}

#[tokio::test]
async fn malformed_chunk_is_skipped_and_the_stream_completes() {
    let sim = Simulator::builder()
        .reply_tokens(8)
        .start()
        .await
        .expect("the simulator starts");
    let request = streamed_question("Tell me about the sea.");
    // The same request without the fault: the text the malformed run must still deliver.
    let router = router([guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi)).target]);
    let clean = drain(call(&router, request.clone()).await.unwrap()).await;

    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::MalformedChunkAfter { events: 3 })],
    );
    let drained = drain(call(&router, request).await.unwrap()).await;
    assert!(drained.finished, "the stream completed");
    assert!(drained.error.is_none());
    assert_eq!(
        drained.text, clean.text,
        "nothing lost around the bad chunk"
    );
}

// --- errors that must not be retried ----------------------------------------------------

#[tokio::test]
async fn non_retryable_429_is_not_retried() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::RateLimited {
            limit: RateLimitKind::QuotaExhausted,
            retry: RetryHeaders::default(),
        })],
    );
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);

    let response = call(&router, question("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(final_target(&response), "anthropic");
    assert_eq!(
        calls(&sim, Provider::OpenAi),
        1,
        "an exhausted quota is not retried"
    );
    assert_eq!(calls(&sim, Provider::Anthropic), 1);
}

/// A long prompt: about 2,000 tokens under the simulator's rule.
fn long_question() -> ChatRequest {
    question(&format!(
        "{} What is the capital of France?",
        "Consider the harbor. ".repeat(400)
    ))
}

#[tokio::test]
async fn context_too_long_falls_back_to_a_larger_context_model() {
    let sim = Simulator::builder()
        .scripted_reply("capital of France", "Paris.")
        .configure(Provider::OpenAi, |s| s.context_window = Some(1_000))
        .configure(Provider::Anthropic, |s| s.context_window = Some(200_000))
        .start()
        .await
        .unwrap();
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);

    let response = call(&router, long_question()).await.unwrap();
    assert_eq!(response.text(), "Paris.");
    assert_eq!(final_target(&response), "anthropic");
    assert_eq!(
        calls(&sim, Provider::OpenAi),
        1,
        "never resent to the same window"
    );
    match &response.trail.attempts[0].outcome {
        AttemptOutcome::Failed { cause, .. } => {
            assert_eq!(cause.as_str(), "context_length_exceeded")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn declared_context_window_skips_the_small_model_without_a_request() {
    let sim = sim().await;
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([
        openai.target.context_window(1_000),
        anthropic.target.context_window(200_000),
    ]);

    let response = call(&router, long_question()).await.unwrap();
    assert_eq!(final_target(&response), "anthropic");
    assert_eq!(calls(&sim, Provider::OpenAi), 0);
    assert!(matches!(
        response.trail.attempts[0].outcome,
        AttemptOutcome::Skipped { .. }
    ));
}

fn content_filter() -> Fault {
    Fault::Status {
        status: 400,
        error_type: Some("invalid_request_error".into()),
        message: Some(
            "The response was filtered due to the prompt triggering the content management policy."
                .into(),
        ),
        code: Some("content_filter".into()),
        retry: RetryHeaders::default(),
    }
}

#[tokio::test]
async fn content_filter_is_returned_as_is_by_default() {
    let sim = sim().await;
    sim.set_faults(Provider::OpenAi, vec![FaultRule::always(content_filter())]);
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);

    let error = call(&router, question("What is the capital of France?"))
        .await
        .unwrap_err();
    assert_eq!(
        llm_error(&error).map(LlmError::kind),
        Some(ErrorKind::ContentFiltered)
    );
    assert_eq!(calls(&sim, Provider::OpenAi), 1);
    assert_eq!(
        calls(&sim, Provider::Anthropic),
        0,
        "no other provider asked"
    );

    // A reply a safety system stopped halfway is a response, returned with its reason.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::ContentFiltered)],
    );
    let response = call(&router, question("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(response.finish_reason, Some(FinishReason::ContentFilter));
    assert_eq!(final_target(&response), "openai");
}

#[tokio::test]
async fn content_filter_fails_over_when_the_policy_allows() {
    let sim = sim().await;
    sim.set_faults(Provider::OpenAi, vec![FaultRule::always(content_filter())]);
    // Set once, on the router: it reaches every target's retry layer and breaker.
    let policy = ClassifyPolicy::default().content_filter(ContentFilterPolicy::Failover);
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = Failover::builder()
        .classifier(policy)
        .target(openai.target)
        .target(anthropic.target)
        .build();

    let response = call(&router, question("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(response.text(), "Paris.");
    assert_eq!(final_target(&response), "anthropic");
    assert_eq!(calls(&sim, Provider::OpenAi), 1, "a refusal is not retried");
}

// --- breaker ---------------------------------------------------------------------------

#[tokio::test]
async fn breaker_opens_then_half_opens_and_closes() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(3, Fault::status(500))],
    );
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let breaker = BreakerLayer::builder(target_id(Provider::OpenAi))
        .consecutive_failures(3)
        .break_duration(Duration::from_millis(300), Duration::from_secs(1))
        .on_event(move |event| {
            if let BreakerEvent::Transition { from, to, .. } = event {
                seen.lock().unwrap().push((*from, *to));
            }
        })
        .build();
    let openai = guarded(
        &sim,
        Provider::OpenAi,
        stack(Provider::OpenAi)
            .retry(fast_retry(1))
            .breaker(breaker),
    );
    let handle = openai.breaker.clone();
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);
    let ask = || call(&router, question("What is the capital of France?"));

    for _ in 0..3 {
        assert_eq!(final_target(&ask().await.unwrap()), "anthropic");
    }
    assert_eq!(handle.state(), BreakerState::Open);
    // Open: skipped without a request.
    assert_eq!(final_target(&ask().await.unwrap()), "anthropic");
    assert_eq!(calls(&sim, Provider::OpenAi), 3);

    tokio::time::sleep(Duration::from_millis(350)).await;
    // The break is over: one probe goes to the recovered target and closes the breaker.
    assert_eq!(final_target(&ask().await.unwrap()), "openai");
    assert_eq!(handle.state(), BreakerState::Closed);
    assert_eq!(final_target(&ask().await.unwrap()), "openai");
    assert_eq!(calls(&sim, Provider::OpenAi), 5);
    assert_eq!(
        *events.lock().unwrap(),
        [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
}

// --- deadline and exhaustion -------------------------------------------------------------

#[tokio::test]
async fn deadline_that_runs_out_is_one_clear_error_with_the_trail() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::overloaded())],
    );
    sim.set_faults(
        Provider::Anthropic,
        vec![FaultRule::always(Fault::Hang { ms: Some(60_000) })],
    );
    let openai = guarded(&sim, Provider::OpenAi, stack(Provider::OpenAi));
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let service = ServiceBuilder::new()
        .deadline(Duration::from_millis(500))
        .service(router([openai.target, anthropic.target]));

    let started = Instant::now();
    let error = service
        .oneshot(question("What is the capital of France?"))
        .await
        .unwrap_err();
    let took = started.elapsed();

    // One error: the deadline, carrying the trail of what was tried before it passed.
    let with_trail = ErrorWithTrail::find(&*error).expect("the error carries the trail");
    assert!(
        with_trail.downcast_inner::<DeadlineExceeded>().is_some(),
        "{error}"
    );
    assert!(took >= Duration::from_millis(480), "{took:?}");
    // Ended by the deadline, not by the minute-long hang, however loaded the machine.
    assert!(took < Duration::from_secs(20), "{took:?}");
    let trail = with_trail.trail();
    let first = &trail.attempts[0];
    assert_eq!(first.target.as_str(), "openai");
    assert!(matches!(first.outcome, AttemptOutcome::Failed { .. }));
    assert_eq!(calls(&sim, Provider::OpenAi), 3);
    assert_eq!(calls(&sim, Provider::Anthropic), 1);
}

#[tokio::test]
async fn every_provider_down_is_an_error_that_lists_every_attempt() {
    let sim = sim().await;
    for provider in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        sim.set_faults(provider, vec![FaultRule::always(Fault::overloaded())]);
    }
    let targets = [Provider::OpenAi, Provider::Anthropic, Provider::Gemini]
        .map(|provider| guarded(&sim, provider, stack(provider)).target);
    let router = router(targets);

    let error = call(&router, question("What is the capital of France?"))
        .await
        .unwrap_err();
    let with_trail = ErrorWithTrail::find(&*error).expect("the error carries the trail");
    let all_failed = with_trail
        .downcast_inner::<AllTargetsFailed>()
        .expect("every target failed");
    let targets: Vec<&str> = all_failed
        .attempts
        .iter()
        .map(|attempt| attempt.target.as_str())
        .collect();
    assert_eq!(targets, ["openai", "anthropic", "gemini"]);
    let message = error.to_string();
    for target in ["openai", "anthropic", "gemini"] {
        assert!(message.contains(target), "{message}");
    }
    for provider in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        assert_eq!(
            calls(&sim, provider),
            3,
            "{provider:?}: three attempts each"
        );
    }
}

// --- flapping ----------------------------------------------------------------------------

#[tokio::test]
async fn flapping_provider_never_fails_a_call_and_gets_traffic_back() {
    let sim = sim().await;
    // OpenAI fails its requests 1-2 and 6-7 and answers the others: two outages, scripted by
    // request number, so the outcome does not depend on how fast the machine is.
    let breaker = BreakerLayer::builder(target_id(Provider::OpenAi))
        .consecutive_failures(2)
        .break_duration(Duration::from_millis(100), Duration::from_millis(200))
        .build();
    let openai = guarded(
        &sim,
        Provider::OpenAi,
        stack(Provider::OpenAi)
            .retry(fast_retry(1))
            .breaker(breaker),
    );
    let anthropic = guarded(&sim, Provider::Anthropic, stack(Provider::Anthropic));
    let router = router([openai.target, anthropic.target]);
    sim.set_faults(
        Provider::OpenAi,
        vec![
            FaultRule::requests(1, 2, Fault::status(503)),
            FaultRule::requests(6, 7, Fault::status(503)),
        ],
    );

    // Who served, with repeats folded: down, back, down, back.
    let mut phases: Vec<String> = Vec::new();
    for _ in 0..1_000 {
        let response = call(&router, question("What is the capital of France?"))
            .await
            .expect("no call fails while one provider is up");
        assert_eq!(response.text(), "Paris.");
        let target = final_target(&response);
        if phases.last().map(String::as_str) != Some(target) {
            phases.push(target.to_owned());
        }
        if phases.len() == 4 {
            break;
        }
        // The breaker's break passes on the real clock; the bound above caps the wait.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(phases, ["anthropic", "openai", "anthropic", "openai"]);
    assert_eq!(
        calls(&sim, Provider::OpenAi),
        8,
        "two failures, a probe and two answers, two failures, a probe: nothing sent while open"
    );
}
