//! Mid-stream recovery in the failover router, on tokio's paused clock with scripted
//! streams: a stream that breaks after content reached the caller is finished by a
//! continuation or a prefix-matched restart, or ends with an explicit error.

mod support;

use seawall::timeout::TokioClock;
use seawall_core::Clock as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::failover::{Continuation, Failover, Target};
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::{
    AttemptOutcome, BoxError, ChatRequest, ChatResponse, Deadline, ErrorKind, FinishReason,
    LlmError, Message, ProviderKind, RecoveryOutcome, RecoveryPath, Role, StreamAccumulator,
    StreamEvent, Trail, TrailRecorder, Usage,
};
use support::{collect, streamed, streaming};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const FULL: &str = "The tide rises over the harbor.";

/// A fake target that records the requests it gets and answers each with `answer`.
#[derive(Clone, Default)]
struct Model {
    requests: Arc<Mutex<Vec<ChatRequest>>>,
}

impl Model {
    fn service<F>(
        &self,
        answer: F,
    ) -> impl tower::Service<
        ChatRequest,
        Response = ChatResponse,
        Error = BoxError,
        Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
    where
        F: Fn(usize, &ChatRequest) -> Result<ChatResponse, BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let requests = Arc::clone(&self.requests);
        service_fn(move |request: ChatRequest| {
            let call = {
                let mut requests = requests.lock().unwrap();
                requests.push(request.clone());
                requests.len() - 1
            };
            let result = answer(call, &request);
            async move { result }
        })
    }

    fn calls(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn prefills(&self) -> Vec<Option<String>> {
        self.requests.lock().unwrap().iter().map(prefill).collect()
    }
}

/// The trailing assistant text of a request, if it ends with one.
fn prefill(request: &ChatRequest) -> Option<String> {
    request
        .messages
        .last()
        .filter(|message| message.role == Role::Assistant)
        .map(Message::joined_text)
}

fn start() -> StreamEvent {
    StreamEvent::Start {
        id: None,
        model: None,
    }
}

fn text(text: &str) -> StreamEvent {
    StreamEvent::TextDelta(text.into())
}

fn cut() -> StreamEvent {
    StreamEvent::Error(LlmError::new(
        ErrorKind::StreamTruncated,
        "the connection closed before the end of message",
    ))
}

/// A stream of `text` in `pieces` of about equal length, then the end of message and usage.
fn answer_in_pieces(text: &str, pieces: usize, usage: Usage) -> Vec<StreamEvent> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    let mut events = vec![start()];
    events.extend(
        chars
            .chunks(size)
            .map(|chunk| StreamEvent::TextDelta(chunk.iter().collect())),
    );
    events.push(StreamEvent::Finish(FinishReason::Stop));
    events.push(StreamEvent::Usage(usage));
    events
}

/// A model that continues a prefill of `FULL` (or answers `FULL` without one).
fn continuing(request: &ChatRequest) -> Result<ChatResponse, BoxError> {
    let rest = match prefill(request) {
        Some(prefill) => FULL
            .strip_prefix(&*prefill)
            .expect("a prefix of the answer"),
        None => FULL,
    };
    Ok(streamed(
        &request.model,
        Duration::from_millis(100),
        answer_in_pieces(rest, 3, Usage::new(20, 5)),
    ))
}

/// A model that rejects a prefill with Anthropic's 400 and otherwise answers `FULL` in
/// pieces cut at other places than the broken stream's.
fn rejecting_prefill(request: &ChatRequest) -> Result<ChatResponse, BoxError> {
    if prefill(request).is_some() {
        return Err(LlmError::new(
            ErrorKind::InvalidRequest,
            "This model does not support assistant message prefill. The conversation must end with a user message.",
        )
        .with_status(400)
        .with_provider(ProviderKind::Anthropic)
        .into());
    }
    Ok(streamed(
        &request.model,
        Duration::from_millis(100),
        answer_in_pieces(FULL, 4, Usage::new(20, 8)),
    ))
}

/// How a request ends: with an assistant prefill, a user message after the assistant's
/// partial turn, or as the caller sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Prefill,
    UserMessage,
    Plain,
}

fn shape(request: &ChatRequest) -> Shape {
    let n = request.messages.len();
    match (
        request.messages.last(),
        n.checked_sub(2).map(|i| &request.messages[i]),
    ) {
        (Some(last), _) if last.role == Role::Assistant => Shape::Prefill,
        (Some(last), Some(before)) if last.role == Role::User && before.role == Role::Assistant => {
            Shape::UserMessage
        }
        _ => Shape::Plain,
    }
}

impl Model {
    fn shapes(&self) -> Vec<Shape> {
        self.requests.lock().unwrap().iter().map(shape).collect()
    }
}

/// A model that refuses a prefill and a user-message continuation with a 400, and answers
/// `FULL` otherwise.
fn rejecting_continuations(request: &ChatRequest) -> Result<ChatResponse, BoxError> {
    if shape(request) == Shape::UserMessage {
        return Err(LlmError::new(
            ErrorKind::InvalidRequest,
            "this deployment refuses the user message continuation",
        )
        .with_status(400)
        .into());
    }
    rejecting_prefill(request)
}

/// A model asked to continue by a user message: answers `answer`.
fn continuing_after_user_message(
    request: &ChatRequest,
    answer: &str,
) -> Result<ChatResponse, BoxError> {
    assert_eq!(shape(request), Shape::UserMessage, "{request:?}");
    Ok(streamed(
        &request.model,
        Duration::from_millis(100),
        answer_in_pieces(answer, 5, Usage::new(25, 6)),
    ))
}

/// The first target: sends the start of `FULL` ("The tide"), then breaks with `error`.
fn breaking(
    error: StreamEvent,
) -> impl Fn(usize, &ChatRequest) -> Result<ChatResponse, BoxError> + Clone {
    move |_, request| {
        Ok(streamed(
            &request.model,
            Duration::from_millis(50),
            vec![
                start(),
                StreamEvent::Usage(Usage::new(20, 1)),
                text("The"),
                text(" tide"),
                error.clone(),
            ],
        ))
    }
}

fn request() -> ChatRequest {
    ChatRequest::new("chat", [Message::user("Tell me about the sea.")]).streaming()
}

/// Sends `request` through `router`, collects the caller's stream; returns the events and
/// the call's trail as it is once the stream has ended.
async fn run(router: &Failover, mut request: ChatRequest) -> (Vec<StreamEvent>, Trail) {
    let trail = request.context.trail().clone();
    let mut response = router.clone().oneshot(request).await.unwrap();
    let events = collect(response.stream.take().expect("a stream")).await;
    (events, trail.snapshot())
}

/// The text the caller got, whether the stream completed, and its last usage or error.
fn fold(events: &[StreamEvent]) -> (String, bool, Option<Usage>, Option<LlmError>) {
    let mut accumulator = StreamAccumulator::new();
    let mut error = None;
    for event in events {
        if let Err(e) = accumulator.push(event) {
            error = Some(e);
        }
    }
    (
        accumulator.text().to_owned(),
        accumulator.is_complete(),
        accumulator.usage(),
        error,
    )
}

fn recovered_by(trail: &Trail) -> Vec<(RecoveryPath, String)> {
    trail
        .recoveries
        .iter()
        .filter_map(|record| match &record.outcome {
            RecoveryOutcome::Recovered { path, target } => Some((*path, target.to_string())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_continuation_appends_exactly_the_rest_once() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(
            Target::new("fallback", fallback.service(|_, r| continuing(r))).accepts_prefill(true),
        )
        .build();

    let (events, trail) = run(&router, request()).await;

    let (text, complete, usage, error) = fold(&events);
    assert_eq!(text, FULL, "the answer arrives whole, nothing repeated");
    assert!(complete);
    assert_eq!(error, None);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Start { .. }))
            .count(),
        1,
        "one start, the caller's stream is one message"
    );
    assert_eq!(fallback.prefills(), vec![Some("The tide".to_owned())]);
    assert_eq!(
        usage,
        Some(Usage::new(40, 6)),
        "usage is summed over both attempts"
    );
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Usage(Usage::new(40, 6))),
        "the summed usage comes last"
    );
    assert_eq!(trail.tokens_used, Some(46));

    assert_eq!(trail.recoveries.len(), 1);
    let record = &trail.recoveries[0];
    assert_eq!(record.broken_target.as_str(), "primary");
    assert_eq!(record.delivered_chars, 8);
    assert_eq!(record.delivered_deltas, 2);
    assert_eq!(
        recovered_by(&trail),
        vec![(RecoveryPath::Continuation, "fallback".to_owned())]
    );
    assert_eq!(trail.final_target.as_ref().unwrap().as_str(), "fallback");
}

#[tokio::test(start_paused = true)]
async fn a_recovery_is_an_event_of_the_call_and_the_call_span_ends_on_the_new_target() {
    let capture = support::capture::Capture::default();
    let _guard = capture.install();
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(
            Target::new("fallback", fallback.service(|_, r| continuing(r))).accepts_prefill(true),
        )
        .build();
    let (events, _) = run(&router, request()).await;
    assert_eq!(fold(&events).0, FULL);

    let recovered = capture.events("stream recovered");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].parent.as_deref(), Some("chat"));
    assert_eq!(
        support::capture::field(&recovered[0], "seawall.target"),
        "fallback"
    );
    assert_eq!(
        support::capture::field(&recovered[0], "seawall.recovery"),
        "Continuation"
    );
    let attempts = capture.spans("attempt");
    let targets: Vec<_> = attempts
        .iter()
        .map(|a| support::capture::field(a, "seawall.target"))
        .collect();
    assert_eq!(targets, ["primary", "fallback"]);
    assert_eq!(
        support::capture::field(&attempts[1], "seawall.outcome"),
        "succeeded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_prefill_is_followed_by_a_user_message_then_a_restart_and_is_remembered() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        // Configured as accepting a prefill, but the server refuses it, and refuses a
        // conversation that does not end as it began too.
        .target(
            Target::new(
                "fallback",
                fallback.service(|_, r| rejecting_continuations(r)),
            )
            .accepts_prefill(true),
        )
        .build();

    let (events, trail) = run(&router, request()).await;

    let (text, complete, usage, error) = fold(&events);
    assert_eq!(
        text, FULL,
        "exactly the answer, the delivered prefix not repeated"
    );
    assert!(complete);
    assert_eq!(
        error, None,
        "the prefill rejection never reaches the caller"
    );
    assert_eq!(usage, Some(Usage::new(40, 9)));
    assert_eq!(
        fallback.shapes(),
        vec![Shape::Prefill, Shape::UserMessage, Shape::Plain],
        "a continuation, a user message, then a restart"
    );
    assert_eq!(router.accepts_prefill("fallback"), Some(false));
    assert_eq!(router.continuation("fallback"), Some(Continuation::Restart));
    assert_eq!(
        recovered_by(&trail),
        vec![(RecoveryPath::Restart, "fallback".to_owned())]
    );
    // Within the default budget of two hops: the refused forms and the restart that
    // replaces them are one hop.
    assert!(matches!(
        &trail.attempts.iter().rev().nth(1).unwrap().outcome,
        AttemptOutcome::Failed { message, .. } if message.contains("user message")
    ));

    // The next break goes straight to a restart.
    let (events, _) = run(&router, request()).await;
    assert_eq!(fold(&events).0, FULL);
    assert_eq!(fallback.shapes()[3..], [Shape::Plain]);
}

#[tokio::test(start_paused = true)]
async fn a_user_message_continuation_joins_the_answer_without_its_repeat() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(
            Target::new(
                "fallback",
                // Continues, repeating the delivered last word first, as models do.
                fallback.service(|_, r| {
                    continuing_after_user_message(r, "tide rises over the harbor.")
                }),
            )
            .continuation(Continuation::UserMessage),
        )
        .build();

    let (events, trail) = run(&router, request()).await;
    let (text, complete, _, error) = fold(&events);
    assert_eq!(text, FULL, "joined, the repeated \"tide\" dropped");
    assert!(complete);
    assert_eq!(error, None);
    assert_eq!(fallback.shapes(), vec![Shape::UserMessage]);
    let sent = &fallback.requests.lock().unwrap()[0];
    let n = sent.messages.len();
    assert_eq!(sent.messages[n - 2].joined_text(), "The tide");
    assert_eq!(sent.messages[n - 2].role, Role::Assistant);
    assert!(sent.messages[n - 1].joined_text().contains("cut off"));
    assert_eq!(
        recovered_by(&trail),
        vec![(RecoveryPath::UserMessage, "fallback".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_user_message_answer_that_starts_over_is_matched_like_a_restart() {
    for (answer, recovered) in [
        (FULL, true),
        (
            "A different answer entirely, longer than the window of text held.",
            false,
        ),
    ] {
        let (primary, fallback) = (Model::default(), Model::default());
        let router = Failover::builder()
            .target(Target::new("primary", primary.service(breaking(cut()))))
            .target(
                Target::new(
                    "fallback",
                    fallback.service(move |_, r| continuing_after_user_message(r, answer)),
                )
                .continuation(Continuation::UserMessage),
            )
            .build();
        let (events, _) = run(&router, request()).await;
        let (text, complete, _, error) = fold(&events);
        if recovered {
            assert_eq!(text, FULL, "the delivered start is not repeated");
            assert!(complete && error.is_none());
        } else {
            // An answer that is neither a continuation with a repeat nor a restart is
            // passed on as the rest of the answer: the model was asked for exactly that.
            assert_eq!(text, format!("The tide{answer}"));
            assert!(complete);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn claude_from_4_6_is_continued_by_user_message_by_default() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(
            Target::new(
                "claude",
                fallback
                    .service(|_, r| continuing_after_user_message(r, " rises over the harbor.")),
            )
            .provider(ProviderKind::Anthropic)
            .model("claude-sonnet-4-6"),
        )
        .target(
            Target::new(
                "older-claude",
                Model::default().service(|_, r| continuing(r)),
            )
            .provider(ProviderKind::Anthropic)
            .model("claude-sonnet-4-5"),
        )
        .build();
    assert_eq!(
        router.continuation("claude"),
        Some(Continuation::UserMessage)
    );
    assert_eq!(
        router.continuation("older-claude"),
        Some(Continuation::Prefill)
    );
    let (events, _) = run(&router, request()).await;
    assert_eq!(fold(&events).0, FULL);
    assert_eq!(fallback.shapes(), vec![Shape::UserMessage]);
}

#[tokio::test(start_paused = true)]
async fn a_divergent_restart_ends_with_an_explicit_error_never_a_success() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(Target::new(
            "fallback",
            fallback.service(|_, r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    answer_in_pieces("The boats rest in calm light.", 3, Usage::new(20, 7)),
                ))
            }),
        ))
        .build();

    let (events, trail) = run(&router, request()).await;

    let (text, complete, _, error) = fold(&events);
    assert!(!complete, "never passed off as complete");
    assert_eq!(
        text, "The tide",
        "nothing of the divergent restart reaches the caller"
    );
    let error = error.expect("an explicit error event");
    assert_eq!(
        error.kind(),
        ErrorKind::StreamTruncated,
        "the original failure's kind"
    );
    assert!(error.message().contains("diverged"), "{error}");
    assert!(matches!(events.last(), Some(StreamEvent::Error(_))));
    assert!(matches!(
        &trail.recoveries[0].outcome,
        RecoveryOutcome::Failed { reason } if reason.contains("diverged")
    ));
}

#[tokio::test(start_paused = true)]
async fn a_stall_is_recovered_within_the_idle_timeout_and_one_attempt() {
    let (stalled, sender) = streaming();
    sender.send(start()).unwrap();
    sender.send(text("The")).unwrap();
    sender.send(text(" tide")).unwrap();
    let stalled = Arc::new(Mutex::new(Some(stalled)));
    let primary = Model::default();
    let idle = Duration::from_secs(2);
    let router =
        Failover::builder()
            .target(Target::new(
                "primary",
                ServiceBuilder::new()
                    .layer(AttemptTimeoutLayer::streams_only().idle(idle))
                    .service(primary.service(move |_, _| {
                        Ok(stalled.lock().unwrap().take().expect("called once"))
                    })),
            ))
            .target(
                Target::new("fallback", Model::default().service(|_, r| continuing(r)))
                    .provider(ProviderKind::Anthropic),
            )
            .build();

    let started = Instant::now();
    let (events, trail) = run(&router, request()).await;

    assert_eq!(fold(&events).0, FULL);
    assert!(fold(&events).1);
    // Idle timeout, then the fallback's 100 ms to its stream.
    assert_eq!(started.elapsed(), idle + Duration::from_millis(100));
    assert_eq!(
        recovered_by(&trail),
        vec![(RecoveryPath::Continuation, "fallback".to_owned())]
    );
    assert!(
        trail.recoveries[0].cause.contains("idle"),
        "{:?}",
        trail.recoveries[0]
    );
    drop(sender);
}

#[tokio::test(start_paused = true)]
async fn an_error_frame_is_recovered_on_the_same_target_when_it_is_alone() {
    // One target: an overloaded frame is worth retrying there, so the target itself
    // finishes the answer. It answered as OpenAI, which continues no prefill: a restart.
    let model = Model::default();
    let router = Failover::builder()
        .target(Target::new(
            "only",
            model.service(|call, r| {
                if call == 0 {
                    breaking(StreamEvent::Error(
                        LlmError::new(ErrorKind::Overloaded, "Overloaded").with_status(529),
                    ))(call, r)
                } else {
                    rejecting_prefill(r)
                }
            }),
        ))
        .max_hops(2)
        .build();

    let (events, trail) = run(&router, request()).await;

    let (text, complete, _, error) = fold(&events);
    assert_eq!(text, FULL);
    assert!(complete);
    assert_eq!(error, None);
    assert_eq!(model.prefills(), vec![None, None]);
    assert_eq!(router.accepts_prefill("only"), Some(false));
    assert_eq!(
        recovered_by(&trail),
        vec![(RecoveryPath::Restart, "only".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_broken_inside_tool_call_arguments_is_restarted_with_prefix_match() {
    let tool =
        |index, id: Option<&str>, name: Option<&str>, arguments: &str| StreamEvent::ToolCallDelta {
            index,
            id: id.map(Into::into),
            name: name.map(Into::into),
            arguments: arguments.into(),
        };
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new(
            "primary",
            primary.service(move |_, r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![
                        start(),
                        tool(0, Some("call_a"), Some("get_weather"), ""),
                        tool(0, None, None, "{\"city\":"),
                        cut(),
                    ],
                ))
            }),
        ))
        .target(
            Target::new(
                "fallback",
                fallback.service(move |_, r| {
                    Ok(streamed(
                        &r.model,
                        Duration::ZERO,
                        vec![
                            start(),
                            tool(0, Some("call_b"), Some("get_weather"), "{\"ci"),
                            tool(0, None, None, "ty\":\"Par"),
                            tool(0, None, None, "is\"}"),
                            StreamEvent::Finish(FinishReason::ToolCalls),
                        ],
                    ))
                }),
            )
            .accepts_prefill(true),
        )
        .build();

    let (events, trail) = run(&router, request()).await;

    let mut accumulator = StreamAccumulator::new();
    for event in &events {
        accumulator.push(event).unwrap();
    }
    let calls = accumulator.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "call_a", "the id the caller already has");
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[0].arguments, "{\"city\":\"Paris\"}");
    assert_eq!(accumulator.finish_reason(), Some(&FinishReason::ToolCalls));
    assert_eq!(
        fallback.prefills(),
        vec![None],
        "a tool call is never continued by prefill"
    );
    assert_eq!(
        recovered_by(&trail),
        vec![(RecoveryPath::Restart, "fallback".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_calling_another_tool_ends_with_an_error() {
    let (primary, fallback) = (Model::default(), Model::default());
    let call = |name: &str, arguments: &str| StreamEvent::ToolCallDelta {
        index: 0,
        id: Some("call".into()),
        name: Some(name.into()),
        arguments: arguments.into(),
    };
    let first = vec![start(), call("get_weather", "{\"city\":"), cut()];
    let second = vec![
        start(),
        call("get_time", "{\"zone\":\"UTC\"}"),
        StreamEvent::Finish(FinishReason::ToolCalls),
    ];
    let router = Failover::builder()
        .target(Target::new(
            "primary",
            primary.service(move |_, r| Ok(streamed(&r.model, Duration::ZERO, first.clone()))),
        ))
        .target(Target::new(
            "fallback",
            fallback.service(move |_, r| Ok(streamed(&r.model, Duration::ZERO, second.clone()))),
        ))
        .build();

    let (events, _) = run(&router, request()).await;
    let (_, complete, _, error) = fold(&events);
    assert!(!complete);
    assert!(
        error
            .expect("an error event")
            .message()
            .contains("get_time")
    );
}

#[tokio::test(start_paused = true)]
async fn recovery_stays_within_the_hop_budget() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(
            Target::new("fallback", fallback.service(|_, r| continuing(r))).accepts_prefill(true),
        )
        .max_hops(1)
        .build();

    let (events, trail) = run(&router, request()).await;

    let (text, complete, _, error) = fold(&events);
    assert_eq!(text, "The tide");
    assert!(!complete);
    let error = error.expect("an explicit error");
    assert_eq!(error.kind(), ErrorKind::StreamTruncated);
    assert!(error.message().contains("not recovered"), "{error}");
    assert_eq!(fallback.calls(), 0, "no hop left");
    assert!(matches!(
        trail.recoveries[0].outcome,
        RecoveryOutcome::Failed { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn recovery_stays_within_the_deadline() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new(
            "primary",
            primary.service(|_, r| {
                Ok(streamed(
                    &r.model,
                    Duration::from_secs(3),
                    vec![start(), text("The"), cut()],
                ))
            }),
        ))
        .target(
            Target::new("fallback", fallback.service(|_, r| continuing(r))).accepts_prefill(true),
        )
        .build();
    let mut request = request();
    request.context.deadline = Some(Deadline::after(TokioClock.now(), Duration::from_secs(2)));

    let (events, _) = run(&router, request).await;

    let error = fold(&events).3.expect("an explicit error");
    assert!(error.message().contains("deadline"), "{error}");
    assert_eq!(fallback.calls(), 0, "the deadline had passed");
}

#[tokio::test(start_paused = true)]
async fn each_targets_limiter_reconciles_its_own_attempt() {
    let limiter = |name: &str| {
        RateLimiter::new(
            name,
            RateLimitConfig::new().tokens(Rate::per_minute(1_000_000)),
        )
    };
    let (primary_limiter, fallback_limiter) = (limiter("primary"), limiter("fallback"));
    let router = Failover::builder()
        .target(Target::new(
            "primary",
            ServiceBuilder::new()
                .layer(RateLimitLayer::new(primary_limiter.clone()))
                .service(Model::default().service(breaking(cut()))),
        ))
        .target(
            Target::new(
                "fallback",
                ServiceBuilder::new()
                    .layer(RateLimitLayer::new(fallback_limiter.clone()))
                    .service(Model::default().service(|_, r| continuing(r))),
            )
            .accepts_prefill(true),
        )
        .build();

    let (events, _) = run(&router, request().with_max_output_tokens(64)).await;
    assert_eq!(fold(&events).2, Some(Usage::new(40, 6)));

    let (primary, fallback) = (primary_limiter.snapshot(), fallback_limiter.snapshot());
    assert_eq!(primary.requests_admitted, 1);
    assert_eq!(primary.requests_in_flight, 0);
    assert_eq!(
        primary.tokens_used, 21,
        "the usage the broken stream reported"
    );
    assert_eq!(fallback.requests_admitted, 1);
    assert_eq!(fallback.requests_in_flight, 0);
    assert_eq!(fallback.tokens_used, 25, "the continuation's own usage");
}

#[tokio::test(start_paused = true)]
async fn with_recovery_off_the_break_is_the_callers_error() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(
            Target::new("fallback", fallback.service(|_, r| continuing(r))).accepts_prefill(true),
        )
        .recover_streams(false)
        .build();
    let mut request = request();
    request.context.trail = Some(TrailRecorder::new());
    let (events, trail) = run(&router, request).await;
    assert_eq!(fold(&events).3.unwrap().kind(), ErrorKind::StreamTruncated);
    assert_eq!(fallback.calls(), 0);
    assert!(trail.recoveries.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_continuation_prefill_leaves_out_trailing_whitespace_without_losing_it() {
    // Anthropic refuses a prefill that ends with whitespace; the continuation is sent
    // "The tide" and its leading space, already delivered, is not repeated.
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new(
            "primary",
            primary.service(|_, r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![start(), text("The"), text(" tide "), cut()],
                ))
            }),
        ))
        .target(
            Target::new("fallback", fallback.service(|_, r| continuing(r)))
                .provider(ProviderKind::Anthropic),
        )
        .build();

    let (events, trail) = run(&router, request()).await;

    assert_eq!(fallback.prefills(), vec![Some("The tide".to_owned())]);
    let (text, complete, _, error) = fold(&events);
    assert_eq!(error, None);
    assert!(complete);
    assert_eq!(text, FULL);
    assert_eq!(
        recovered_by(&trail),
        vec![(RecoveryPath::Continuation, "fallback".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn an_end_without_the_end_of_message_is_recovered() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new(
            "primary",
            primary.service(|_, r| {
                // A clean end of body, but no finish: truncated.
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![start(), text("The"), text(" tide")],
                ))
            }),
        ))
        .target(
            Target::new("fallback", fallback.service(|_, r| continuing(r))).accepts_prefill(true),
        )
        .build();

    let (events, trail) = run(&router, request()).await;

    let (text, complete, _, error) = fold(&events);
    assert_eq!((text.as_str(), complete, error), (FULL, true, None));
    assert!(trail.recoveries[0].cause.contains("end of message"));
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_stops_short_of_the_delivered_text_is_an_error() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(Target::new(
            "fallback",
            fallback.service(|_, r| {
                Ok(streamed(
                    &r.model,
                    Duration::ZERO,
                    vec![
                        start(),
                        text("The"),
                        StreamEvent::Finish(FinishReason::Stop),
                    ],
                ))
            }),
        ))
        .build();

    let (events, _) = run(&router, request()).await;

    let (text, complete, _, error) = fold(&events);
    assert_eq!(text, "The tide");
    assert!(!complete);
    assert!(error.unwrap().message().contains("before reproducing"));
}

#[tokio::test(start_paused = true)]
async fn when_nothing_recovers_the_caller_sees_the_original_failure_not_the_prefill_refusal() {
    let (primary, fallback) = (Model::default(), Model::default());
    let router = Failover::builder()
        .target(Target::new("primary", primary.service(breaking(cut()))))
        .target(
            Target::new(
                "fallback",
                fallback.service(|_, r| {
                    if prefill(r).is_some() {
                        rejecting_prefill(r)
                    } else {
                        Err(LlmError::new(ErrorKind::Overloaded, "overloaded")
                            .with_status(529)
                            .into())
                    }
                }),
            )
            .accepts_prefill(true),
        )
        .build();

    let (events, trail) = run(&router, request()).await;

    let error = fold(&events).3.expect("an explicit error");
    assert_eq!(error.kind(), ErrorKind::StreamTruncated, "{error}");
    assert_eq!(error.status(), None, "not the 400 of the refused prefill");
    assert!(
        error
            .message()
            .starts_with("the connection closed before the end of message"),
        "{error}"
    );
    assert_eq!(fallback.calls(), 2);
    assert!(matches!(
        trail.recoveries[0].outcome,
        RecoveryOutcome::Failed { .. }
    ));
}
