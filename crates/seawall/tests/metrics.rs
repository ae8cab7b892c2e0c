//! What `seawall::metrics` counts of calls through a router: per model, per target and
//! model, failovers, tokens and cost, streams at their end, breaker transitions; read back
//! from the text exposition a scrape would get.

mod support;

use std::sync::Arc;
use std::time::Duration;

use seawall::breaker::BreakerLayer;
use seawall::failover::{Failover, Target};
use seawall::metrics::prometheus_client::{encoding::text::encode, registry::Registry};
use seawall::metrics::{CallMetrics, MetricsLayer};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason, LlmError, Prices, StreamEvent,
    Usage,
};
use support::{collect, next_event, reply, streamed, weighing};
use tower::{Layer, Service, ServiceExt, service_fn};

fn overloaded(_: ChatRequest) -> std::future::Ready<Result<ChatResponse, BoxError>> {
    std::future::ready(Err(LlmError::new(ErrorKind::Overloaded, "overloaded")
        .with_status(529)
        .into()))
}

fn answers(request: ChatRequest) -> std::future::Ready<Result<ChatResponse, BoxError>> {
    let mut response = reply(&request.model, "ok");
    response.usage = Some(Usage::new(1_000, 500));
    std::future::ready(Ok(response))
}

fn registered(metrics: CallMetrics) -> (Arc<CallMetrics>, Registry) {
    let metrics = Arc::new(metrics);
    let mut registry = Registry::with_prefix("seawall");
    metrics.register(&mut registry);
    (metrics, registry)
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// The value of the sample written exactly as `series` (name and labels), if any.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

fn keyed(mut request: ChatRequest, key: &str) -> ChatRequest {
    request.context.options_mut().virtual_key = Some(Arc::from(key));
    request
}

#[tokio::test(start_paused = true)]
async fn a_failover_is_counted_per_target_and_model_with_its_tokens_and_cost() {
    let (metrics, registry) = registered(CallMetrics::new().prices(Prices::builtin()));
    let router = Failover::builder()
        .target(Target::new("anthropic/opus", service_fn(overloaded)).model("claude-opus-4-1"))
        .target(Target::new("openai/mini", service_fn(answers)).model("gpt-4o-mini"))
        .build();
    let service = MetricsLayer::new(Arc::clone(&metrics)).layer(router);
    let response = service
        .oneshot(keyed(weighing(10), "team-a"))
        .await
        .unwrap();
    assert_eq!(response.model, "gpt-4o-mini");

    let text = scrape(&registry);
    let at = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        at(r#"seawall_calls_total{model="model",outcome="answered"}"#),
        1.0
    );
    assert_eq!(
        at(r#"seawall_call_duration_seconds_count{model="model"}"#),
        1.0
    );
    assert_eq!(
        at(
            r#"seawall_attempts_total{target="anthropic/opus",model="claude-opus-4-1",outcome="overloaded"}"#
        ),
        1.0
    );
    assert_eq!(
        at(
            r#"seawall_attempts_total{target="openai/mini",model="gpt-4o-mini",outcome="succeeded"}"#
        ),
        1.0
    );
    assert_eq!(
        at(r#"seawall_attempt_duration_seconds_count{target="openai/mini",model="gpt-4o-mini"}"#),
        1.0
    );
    assert_eq!(
        at(r#"seawall_failovers_total{from="anthropic/opus",to="openai/mini"}"#),
        1.0
    );
    assert_eq!(
        at(r#"seawall_tokens_total{target="openai/mini",model="gpt-4o-mini",kind="input"}"#),
        1_000.0
    );
    assert_eq!(
        at(r#"seawall_tokens_total{target="openai/mini",model="gpt-4o-mini",kind="output"}"#),
        500.0
    );
    let expected = Prices::builtin()
        .cost("gpt-4o-mini", &Usage::new(1_000, 500))
        .unwrap()
        .usd();
    let cost = at(r#"seawall_cost_usd_total{key="team-a",model="gpt-4o-mini"}"#);
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_counted_at_its_end_with_its_time_to_first_token() {
    let (metrics, registry) = registered(CallMetrics::new());
    let provider = service_fn(|request: ChatRequest| async move {
        Ok::<_, BoxError>(streamed(
            &request.model,
            Duration::from_millis(300),
            vec![
                StreamEvent::TextDelta("Paris".into()),
                StreamEvent::Usage(Usage::new(10, 1)),
                StreamEvent::Finish(FinishReason::Stop),
            ],
        ))
    });
    let service = MetricsLayer::new(Arc::clone(&metrics)).layer(provider);
    let mut request = weighing(10);
    request.stream = true;
    let mut response = service.oneshot(request).await.unwrap();
    let stream = response.stream.take().unwrap();
    assert_eq!(
        value(
            &scrape(&registry),
            r#"seawall_calls_total{model="model",outcome="answered"}"#
        ),
        None,
        "a stream is counted when it ends"
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    let events = collect(stream).await;
    assert_eq!(events.len(), 3);

    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"seawall_calls_total{model="model",outcome="answered"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // First content 300 ms after the call, on the paused clock: in the 0.5 s bucket, not
    // the 0.25 s one.
    let ttft = "seawall_call_time_to_first_token_seconds";
    assert_eq!(
        value(
            &text,
            &format!(r#"{ttft}_bucket{{le="0.25",model="model"}}"#)
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"{ttft}_bucket{{le="0.5",model="model"}}"#)
        ),
        Some(1.0)
    );
    let sum = value(&text, &format!(r#"{ttft}_sum{{model="model"}}"#)).unwrap();
    assert!((sum - 0.3).abs() < 1e-9, "{sum}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_before_its_end_is_abandoned_and_an_error_event_is_its_cause() {
    let (metrics, registry) = registered(CallMetrics::new());
    let events = |last: StreamEvent| {
        vec![
            StreamEvent::TextDelta("Par".into()),
            last,
            StreamEvent::Finish(FinishReason::Stop),
        ]
    };
    let cut = events(StreamEvent::Error(LlmError::new(
        ErrorKind::StreamTruncated,
        "cut",
    )));
    let whole = events(StreamEvent::TextDelta("is".into()));
    let mut scripts = vec![cut, whole];
    let provider = service_fn(move |request: ChatRequest| {
        let events = scripts.remove(0);
        async move { Ok::<_, BoxError>(streamed(&request.model, Duration::ZERO, events)) }
    });
    let mut service = MetricsLayer::new(Arc::clone(&metrics)).layer(provider);
    let mut request = weighing(10);
    request.stream = true;

    // The first stream fails in-band: counted as it fails, by its kind.
    let mut response = service
        .ready()
        .await
        .unwrap()
        .call(request.clone())
        .await
        .unwrap();
    let mut stream = response.stream.take().unwrap();
    while let Some(event) = next_event(&mut stream).await {
        if matches!(event, StreamEvent::Error(_)) {
            break;
        }
    }
    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"seawall_calls_total{model="model",outcome="stream_truncated"}"#
        ),
        Some(1.0),
        "{text}"
    );
    drop(stream);

    // The second is dropped after its first event.
    let mut response = service.ready().await.unwrap().call(request).await.unwrap();
    let mut stream = response.stream.take().unwrap();
    assert!(next_event(&mut stream).await.is_some());
    drop(stream);
    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"seawall_calls_total{model="model",outcome="abandoned"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"seawall_calls_total{model="model",outcome="stream_truncated"}"#
        ),
        Some(1.0),
        "counted once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_is_counted_by_its_cause_with_the_attempts_of_its_trail() {
    let (metrics, registry) = registered(CallMetrics::new());
    let router = Failover::builder()
        .target(Target::new("a", service_fn(overloaded)))
        .target(Target::new("b", service_fn(overloaded)))
        .build();
    let service = MetricsLayer::new(Arc::clone(&metrics)).layer(router);
    let error = service.oneshot(weighing(10)).await.unwrap_err();
    let cause = seawall_core::classify(&*error).cause.as_str();

    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            &format!(r#"seawall_calls_total{{model="model",outcome="{cause}"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    for target in ["a", "b"] {
        assert_eq!(
            value(
                &text,
                &format!(
                    r#"seawall_attempts_total{{target="{target}",model="model",outcome="overloaded"}}"#
                )
            ),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(
        value(&text, r#"seawall_failovers_total{from="a",to="b"}"#),
        Some(1.0)
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_transitions_and_states_and_escaped_target_names() {
    let (metrics, registry) = registered(CallMetrics::new());
    let name = "a \"quoted\" \\ target";
    let breaker = BreakerLayer::builder(name)
        .consecutive_failures(1)
        .on_event(metrics.breaker_events())
        .build();
    metrics.watch_breaker(breaker.handle());
    let router = Failover::builder()
        .target(
            Target::new(name, breaker.layer(service_fn(overloaded)))
                .gate(Arc::new(breaker.handle())),
        )
        .target(Target::new("b", service_fn(answers)))
        .build();
    let service = MetricsLayer::new(Arc::clone(&metrics)).layer(router);
    service.clone().oneshot(weighing(10)).await.unwrap();
    service.oneshot(weighing(10)).await.unwrap();

    let text = scrape(&registry);
    let escaped = r#"a \"quoted\" \\ target"#;
    assert_eq!(
        value(
            &text,
            &format!(r#"seawall_breaker_transitions_total{{target="{escaped}",to="open"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"seawall_breaker_state{{target="{escaped}"}}"#)
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(
                r#"seawall_attempts_total{{target="{escaped}",model="model",outcome="skipped"}}"#
            )
        ),
        Some(1.0),
        "the second call skipped the open target: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_bound_on_model_names_calls_are_counted_as_other() {
    let (metrics, registry) = registered(CallMetrics::new().max_models(2));
    let service = MetricsLayer::new(Arc::clone(&metrics)).layer(service_fn(answers));
    for model in ["team-a-1", "team-a-2", "team-a-3", "team-a-4", "team-a-1"] {
        let mut request = weighing(10);
        request.model = Arc::from(model);
        service.clone().oneshot(request).await.unwrap();
    }
    let text = scrape(&registry);
    let calls = |model: &str| {
        value(
            &text,
            &format!(r#"seawall_calls_total{{model="{model}",outcome="answered"}}"#),
        )
    };
    assert_eq!(calls("team-a-1"), Some(2.0), "{text}");
    assert_eq!(calls("team-a-2"), Some(1.0));
    assert_eq!(calls("other"), Some(2.0));
    assert_eq!(calls("team-a-3"), None);
}
