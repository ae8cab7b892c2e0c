//! What a subscriber sees of a call through a router: a `chat` span per call and an
//! `attempt` span per target tried, with the OpenTelemetry GenAI attribute names, and an
//! event for each skip and each failed attempt.

mod support;

use std::sync::Arc;

use seawall::breaker::BreakerLayer;
use seawall::failover::{Failover, Target};
use seawall_core::{BoxError, ChatRequest, ChatResponse, ErrorKind, LlmError, Usage};
use support::capture::{Capture, field};
use support::{reply, weighing};
use tower::{Layer, ServiceExt, service_fn};

fn overloaded(_: ChatRequest) -> std::future::Ready<Result<ChatResponse, BoxError>> {
    std::future::ready(Err(LlmError::new(ErrorKind::Overloaded, "overloaded")
        .with_status(529)
        .into()))
}

fn answers(request: ChatRequest) -> std::future::Ready<Result<ChatResponse, BoxError>> {
    let mut response = reply(&request.model, "ok");
    response.usage = Some(Usage::new(12, 34));
    std::future::ready(Ok(response))
}

#[tokio::test(start_paused = true)]
async fn a_failover_is_one_chat_span_with_an_attempt_span_per_target() {
    let capture = Capture::default();
    let _guard = capture.install();
    let router = Failover::builder()
        .target(Target::new("anthropic/opus", service_fn(overloaded)).model("claude-opus-4-1"))
        .target(Target::new("openai/mini", service_fn(answers)).model("gpt-4o-mini"))
        .build();
    let response = router.oneshot(weighing(10)).await.unwrap();
    assert_eq!(response.model, "gpt-4o-mini");

    let calls = capture.spans("chat");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(field(call, "gen_ai.operation.name"), "chat");
    assert_eq!(field(call, "gen_ai.response.model"), "gpt-4o-mini");
    assert_eq!(field(call, "gen_ai.provider.name"), "openai");
    assert_eq!(field(call, "gen_ai.usage.input_tokens"), "12");
    assert_eq!(field(call, "gen_ai.usage.output_tokens"), "34");
    assert_eq!(field(call, "seawall.target"), "openai/mini");
    assert_eq!(field(call, "seawall.attempts"), "2");
    assert!(
        !call.fields.contains_key("error.type"),
        "the call succeeded: {call:?}"
    );

    let attempts = capture.spans("attempt");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let (first, second) = (&attempts[0], &attempts[1]);
    assert_eq!(first.parent.as_deref(), Some("chat"));
    assert_eq!(field(first, "seawall.target"), "anthropic/opus");
    assert_eq!(field(first, "gen_ai.request.model"), "claude-opus-4-1");
    assert_eq!(field(first, "seawall.attempt"), "0");
    assert_eq!(field(first, "seawall.outcome"), "failed");
    assert_eq!(field(first, "error.type"), "overloaded");
    assert_eq!(field(second, "seawall.target"), "openai/mini");
    assert_eq!(field(second, "seawall.attempt"), "1");
    assert_eq!(field(second, "seawall.outcome"), "succeeded");
    assert_eq!(field(second, "gen_ai.usage.output_tokens"), "34");

    let failed = capture.events("attempt failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].parent.as_deref(), Some("chat"));
    assert_eq!(field(&failed[0], "seawall.target"), "anthropic/opus");
    assert_eq!(field(&failed[0], "error.type"), "overloaded");
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_a_skip_event_and_its_opening_a_warning() {
    let capture = Capture::default();
    let _guard = capture.install();
    let breaker = BreakerLayer::builder("anthropic/opus")
        .consecutive_failures(1)
        .build();
    let router = Failover::builder()
        .target(
            Target::new("anthropic/opus", breaker.layer(service_fn(overloaded)))
                .gate(Arc::new(breaker.handle())),
        )
        .target(Target::new("openai/mini", service_fn(answers)))
        .build();
    for _ in 0..2 {
        assert!(router.clone().oneshot(weighing(10)).await.is_ok());
    }
    let opened = capture.events("breaker transition");
    assert!(
        opened
            .iter()
            .any(|e| field(e, "to") == "open" && field(e, "target_id") == "anthropic/opus"),
        "{opened:?}"
    );
    let skipped = capture.events("target skipped");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(field(&skipped[0], "seawall.target"), "anthropic/opus");
    assert!(
        field(&skipped[0], "seawall.skip_reason").contains("circuit open"),
        "{skipped:?}"
    );
    // The second call made one attempt: the open target was skipped, not tried.
    let calls = capture.spans("chat");
    assert_eq!(field(&calls[1], "seawall.attempts"), "1");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_fails_everywhere_carries_its_error_type() {
    let capture = Capture::default();
    let _guard = capture.install();
    let router = Failover::builder()
        .target(Target::new("anthropic/opus", service_fn(overloaded)))
        .target(Target::new("openai/mini", service_fn(overloaded)))
        .build();
    assert!(router.oneshot(weighing(10)).await.is_err());
    let call = &capture.spans("chat")[0];
    assert_eq!(field(call, "error.type"), "all_targets_failed");
    assert_eq!(capture.events("attempt failed").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_an_event_with_its_cause_and_wait() {
    let capture = Capture::default();
    let _guard = capture.install();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let flaky = service_fn(move |request: ChatRequest| {
        let call = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if call == 0 {
            overloaded(request)
        } else {
            answers(request)
        }
    });
    let service = seawall::retry::RetryLayer::new().layer(flaky);
    assert!(service.oneshot(weighing(10)).await.is_ok());
    let retried = capture.events("retrying the same target");
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(field(&retried[0], "cause"), "overloaded");
    assert_eq!(field(&retried[0], "attempts"), "1");
    assert!(field(&retried[0], "wait_ms").parse::<u64>().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_limiter_that_sheds_a_call_says_which_target_and_why() {
    use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};

    let capture = Capture::default();
    let _guard = capture.install();
    let limiter = RateLimiter::new(
        "openai/mini",
        RateLimitConfig::new()
            .requests(Rate::per_minute(1))
            .max_wait(std::time::Duration::ZERO),
    );
    let service = RateLimitLayer::new(limiter).layer(service_fn(answers));
    assert!(service.clone().oneshot(weighing(10)).await.is_ok());
    assert!(service.oneshot(weighing(10)).await.is_err());
    let shed = capture.events("limiter shed");
    assert_eq!(shed.len(), 1, "{shed:?}");
    assert_eq!(field(&shed[0], "seawall.target"), "openai/mini");
    assert!(!field(&shed[0], "seawall.reason").is_empty(), "{shed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_budget_refusal_names_the_budget() {
    use seawall::budget::{BudgetLayer, BudgetRule, Scope, Window};

    let capture = Capture::default();
    let _guard = capture.install();
    let layer = BudgetLayer::builder()
        .estimator(support::NumberEstimator)
        .default_output_tokens(0)
        .budget(BudgetRule::tokens(Scope::VirtualKey, Window::Day, 5))
        .build();
    let service = layer.layer(service_fn(answers));
    let mut request = weighing(10);
    request.context.options_mut().virtual_key = Some(Arc::from("team-a"));
    assert!(service.oneshot(request).await.is_err());
    let refused = capture.events("budget refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(field(&refused[0], "seawall.budget"), "key:day:tokens");
    assert_eq!(field(&refused[0], "seawall.scope_value"), "team-a");
}

#[tokio::test(start_paused = true)]
async fn a_streamed_call_records_its_usage_on_its_spans_when_the_stream_ends() {
    use seawall_core::{FinishReason, StreamEvent};

    let capture = Capture::default();
    let _guard = capture.install();
    let streams = service_fn(|request: ChatRequest| {
        std::future::ready(Ok::<_, BoxError>(support::streamed(
            &request.model,
            std::time::Duration::from_millis(10),
            vec![
                StreamEvent::TextDelta("Paris".into()),
                StreamEvent::Finish(FinishReason::Stop),
                StreamEvent::Usage(Usage::new(21, 3)),
            ],
        )))
    });
    let router = Failover::builder()
        .target(Target::new("openai/mini", streams).model("gpt-4o-mini"))
        .build();
    let mut request = weighing(10);
    request.stream = true;
    let mut response = router.oneshot(request).await.unwrap();
    let events = support::collect(response.stream.take().unwrap()).await;
    assert_eq!(events.len(), 3);

    let call = &capture.spans("chat")[0];
    assert_eq!(field(call, "gen_ai.usage.input_tokens"), "21");
    assert_eq!(field(call, "gen_ai.usage.output_tokens"), "3");
    let attempt = &capture.spans("attempt")[0];
    assert_eq!(field(attempt, "gen_ai.usage.output_tokens"), "3");
}
