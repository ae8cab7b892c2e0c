//! The budget layer on tokio's paused clock: reservations that concurrent calls cannot
//! overshoot, calendar windows that roll over, caps, downgrades, stream settlement, cost per
//! attempt and alerts.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seawall::budget::{
    Alert, AlertKind, AlertRule, Amount, BudgetExceeded, BudgetLayer, BudgetRule, OverCap,
    RequestCapExceeded, RequestCaps, RequestedModel, Scope, Unpriced, Window,
};
use seawall::failover::{Failover, Target};
use seawall_core::{
    BoxError, CacheStatus, ChatRequest, ChatResponse, Cost, ErrorKind, LlmError, Message,
    ModelPrice, Prices, StreamEvent, Usage,
};
use support::{NumberEstimator, collect, reply, streamed, streaming};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A request weighing `prompt` tokens (with [`NumberEstimator`]) for `model`, by `user`.
fn call(model: &str, prompt: u64, user: &str) -> ChatRequest {
    ChatRequest::new(model, [Message::user(prompt.to_string())]).with_user(user)
}

/// A service answering every call with `usage`, recording the models and caps it was sent.
#[derive(Clone, Default)]
struct Upstream {
    sent: Arc<Mutex<Vec<Sent>>>,
}

/// A model and the output cap a call was sent with.
type Sent = (String, Option<u32>);

impl Upstream {
    fn answering(
        &self,
        usage: Usage,
        delay: Duration,
    ) -> impl Service<
        ChatRequest,
        Response = ChatResponse,
        Error = BoxError,
        Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send,
    > + Clone
    + Send
    + 'static {
        let sent = Arc::clone(&self.sent);
        service_fn(move |request: ChatRequest| {
            sent.lock()
                .unwrap()
                .push((request.model.to_string(), request.max_output_tokens));
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, BoxError>(reply(&request.model, "ok").with_usage(usage))
            }
        })
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2026-01-31T23:59:30Z, thirty seconds before a new hour, day and month in UTC.
const JAN_31_LATE: u64 = 1_769_903_970;

#[tokio::test(start_paused = true)]
async fn two_hundred_concurrent_calls_spend_at_most_the_budget() {
    // Each call reserves 40 + 60 = 100 tokens; the budget fits 20 of them.
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(60)
        .budget(BudgetRule::tokens(Scope::User, Window::Day, 2_000))
        .build();
    let upstream = Upstream::default();
    let service = layer.layer(upstream.answering(Usage::new(40, 60), Duration::from_secs(1)));

    let calls = (0..200).map(|_| service.clone().oneshot(call("gpt-4o", 40, "ada")));
    let results = futures_util_join_all(calls).await;

    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| {
            e.downcast_ref::<BudgetExceeded>()
                .expect("a budget refusal")
        })
        .collect();
    assert_eq!(admitted, 20);
    assert_eq!(refused.len(), 180);
    assert_eq!(upstream.sent().len(), 20, "refused calls are never sent");
    let status = layer.budgets().status("user", "ada");
    assert_eq!(status[0].used, Amount::Tokens(2_000));
    assert_eq!(refused[0].limit, Amount::Tokens(2_000));
    assert_eq!(refused[0].needed, Amount::Tokens(100));
    // Every call went out with the cap it reserved.
    assert!(upstream.sent().iter().all(|(_, cap)| *cap == Some(60)));
}

#[tokio::test(start_paused = true)]
async fn a_money_budget_holds_under_concurrency_and_refunds_what_was_not_used() {
    // gpt-4o: $2.50 in, $10 out per million. Reserve 1,000 + 1,000: $0.0125 a call.
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(1_000)
        .budget(BudgetRule::usd(Scope::User, Window::Month, 0.125))
        .build();
    let upstream = Upstream::default();
    let service = layer.layer(upstream.answering(Usage::new(1_000, 100), Duration::from_secs(1)));
    let results = futures_util_join_all(
        (0..50).map(|_| service.clone().oneshot(call("gpt-4o", 1_000, "ada"))),
    )
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
    // Each used $0.0025 + $0.001: the rest of each reservation came back.
    let used = layer.budgets().status("user", "ada")[0].used;
    assert_eq!(used, Amount::Usd(Cost::from_usd(10.0 * 0.0035)));
    let response = results.into_iter().find_map(Result::ok).unwrap();
    assert_eq!(response.cost, Some(Cost::from_usd(0.0035)));
    assert_eq!(response.trail.cost, Some(Cost::from_usd(0.0035)));
}

#[tokio::test(start_paused = true)]
async fn hour_day_and_month_windows_roll_over_at_their_boundaries_in_the_offset() {
    for (window, offset, until_boundary) in [
        (Window::Hour, 0, 30),
        (Window::Day, 0, 30),
        (Window::Month, 0, 30),
        // At +02:00 the local month began two hours earlier: 2026-02-01T00:00+02:00 is
        // 2026-01-31T22:00Z, already past. The next local hour is 30 s away.
        (Window::Hour, 7_200, 30),
        // At -05:00 it is 18:59:30 on Jan 31: the local day ends in 5 h 30 s.
        (Window::Day, -18_000, 5 * 3_600 + 30),
    ] {
        let layer = BudgetLayer::builder()
            .estimator(NumberEstimator)
            .default_output_tokens(0)
            .utc_offset_secs(offset)
            .clock_starting_at(at(JAN_31_LATE))
            .budget(BudgetRule::tokens(Scope::User, window, 100))
            .build();
        let service =
            layer.layer(Upstream::default().answering(Usage::new(100, 0), Duration::ZERO));
        service
            .clone()
            .oneshot(call("gpt-4o", 100, "ada"))
            .await
            .unwrap();
        let refused = service
            .clone()
            .oneshot(call("gpt-4o", 1, "ada"))
            .await
            .unwrap_err();
        let refused = refused.downcast_ref::<BudgetExceeded>().unwrap();
        assert_eq!(
            refused.resets_at,
            Some(at(JAN_31_LATE + until_boundary)),
            "{window} at offset {offset}"
        );
        // One second before the boundary: still spent; at the boundary: a new window.
        tokio::time::advance(Duration::from_secs(until_boundary - 1)).await;
        assert!(
            service
                .clone()
                .oneshot(call("gpt-4o", 1, "ada"))
                .await
                .is_err()
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        service
            .clone()
            .oneshot(call("gpt-4o", 100, "ada"))
            .await
            .unwrap();
        // The status reads the new window.
        assert_eq!(
            layer.budgets().status("user", "ada")[0].used,
            Amount::Tokens(100)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_lifetime_budget_never_resets() {
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(0)
        .budget(BudgetRule::tokens(Scope::User, Window::Lifetime, 10))
        .build();
    let service = layer.layer(Upstream::default().answering(Usage::new(10, 0), Duration::ZERO));
    service.clone().oneshot(call("m", 10, "ada")).await.unwrap();
    tokio::time::advance(Duration::from_secs(90 * 86_400)).await;
    let refused = service.oneshot(call("m", 1, "ada")).await.unwrap_err();
    assert_eq!(
        refused.downcast_ref::<BudgetExceeded>().unwrap().resets_at,
        None
    );
}

#[tokio::test(start_paused = true)]
async fn scopes_count_apart_and_a_value_can_have_its_own_budget() {
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(0)
        .budget(BudgetRule::tokens(Scope::VirtualKey, Window::Day, 100))
        .budget(BudgetRule::tokens(Scope::VirtualKey, Window::Day, 1_000).only("big"))
        .build();
    let service = layer.layer(Upstream::default().answering(Usage::new(100, 0), Duration::ZERO));
    let keyed = |key: &str| {
        let mut request = call("m", 100, "u");
        request.context.options_mut().virtual_key = Some(Arc::from(key));
        request
    };
    service.clone().oneshot(keyed("small")).await.unwrap();
    assert!(service.clone().oneshot(keyed("small")).await.is_err());
    // `big` is under both budgets: the general one refuses its second call.
    service.clone().oneshot(keyed("big")).await.unwrap();
    assert!(service.clone().oneshot(keyed("big")).await.is_err());
    assert_eq!(layer.budgets().status("key", "big").len(), 2);
    // A call with no key is under no key budget.
    for _ in 0..3 {
        service.clone().oneshot(call("m", 100, "u")).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn per_request_caps_refuse_or_clamp_before_anything_is_sent() {
    let upstream = Upstream::default();
    let caps = RequestCaps::new()
        .max_input_tokens(1_000)
        .max_output_tokens(500, OverCap::Clamp)
        .max_cost_usd(0.01);
    let service = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .caps(caps)
        .build()
        .layer(upstream.answering(Usage::new(10, 10), Duration::ZERO));

    let error = service
        .clone()
        .oneshot(call("gpt-4o", 1_001, "u"))
        .await
        .unwrap_err();
    assert!(matches!(
        error.downcast_ref::<RequestCapExceeded>(),
        Some(RequestCapExceeded::InputTokens {
            estimated: 1_001,
            cap: 1_000
        })
    ));
    // 1,000 in + 500 out on o1 ($15 / $60): $0.045, above $0.01.
    let error = service
        .clone()
        .oneshot(call("o1", 1_000, "u"))
        .await
        .unwrap_err();
    assert!(matches!(
        error.downcast_ref::<RequestCapExceeded>(),
        Some(RequestCapExceeded::Cost { .. })
    ));
    // A cost cap needs a price.
    let error = service
        .clone()
        .oneshot(call("my-llama", 10, "u"))
        .await
        .unwrap_err();
    assert_eq!(error.downcast_ref::<Unpriced>().unwrap().model, "my-llama");
    assert!(upstream.sent().is_empty());

    // max_tokens 4,000 is clamped to 500.
    let asked = call("gpt-4o", 10, "u").with_max_output_tokens(4_000);
    service.clone().oneshot(asked).await.unwrap();
    assert_eq!(upstream.sent(), vec![("gpt-4o".to_owned(), Some(500))]);

    // The refusing policy refuses it.
    let refusing = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .caps(RequestCaps::new().max_output_tokens(500, OverCap::Refuse))
        .build()
        .layer(upstream.answering(Usage::new(10, 10), Duration::ZERO));
    let error = refusing
        .oneshot(call("gpt-4o", 10, "u").with_max_output_tokens(4_000))
        .await
        .unwrap_err();
    let error = error.downcast_ref::<RequestCapExceeded>().unwrap();
    assert_eq!(error.param(), Some("max_tokens"));
    assert_eq!(upstream.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_does_not_fit_goes_to_the_cheaper_model_and_the_trail_says_so() {
    // $0.02 a day; gpt-4o reserves 1,000 in + 1,000 out = $0.0125, gpt-4o-mini $0.00075.
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(1_000)
        .downgrade_to("gpt-4o-mini")
        .budget(BudgetRule::usd(Scope::User, Window::Day, 0.02))
        .build();
    let upstream = Upstream::default();
    let service = layer.layer(upstream.answering(Usage::new(1_000, 1_000), Duration::ZERO));
    let first = service
        .clone()
        .oneshot(call("gpt-4o", 1_000, "ada"))
        .await
        .unwrap();
    assert_eq!(first.trail.downgrade, None);
    let second = service
        .clone()
        .oneshot(call("gpt-4o", 1_000, "ada"))
        .await
        .unwrap();
    let downgrade = second.trail.downgrade.as_deref().expect("downgraded");
    assert_eq!(
        (downgrade.from.as_str(), downgrade.to.as_str()),
        ("gpt-4o", "gpt-4o-mini")
    );
    assert!(
        downgrade.reason.contains("user:day:usd"),
        "{}",
        downgrade.reason
    );
    assert_eq!(second.cost, Some(Cost::from_usd(0.00075)));
    assert_eq!(
        upstream
            .sent()
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>(),
        ["gpt-4o", "gpt-4o-mini"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_settles_with_its_usage_at_the_end() {
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(100)
        .budget(BudgetRule::tokens(Scope::User, Window::Day, 1_000))
        .build();
    let service = layer.layer(service_fn(|request: ChatRequest| async move {
        Ok::<_, BoxError>(streamed(
            &request.model,
            Duration::from_millis(10),
            vec![
                StreamEvent::TextDelta("Par".into()),
                StreamEvent::TextDelta("is".into()),
                StreamEvent::Finish(seawall_core::FinishReason::Stop),
                StreamEvent::Usage(Usage::new(50, 2)),
            ],
        ))
    }));
    let mut request = call("gpt-4o", 50, "ada").streaming();
    let trail = request.context.trail().clone();
    let mut response = service.oneshot(request).await.unwrap();
    // While the stream is open, the reservation holds.
    assert_eq!(
        layer.budgets().status("user", "ada")[0].used,
        Amount::Tokens(150)
    );
    collect(response.stream.take().unwrap()).await;
    assert_eq!(
        layer.budgets().status("user", "ada")[0].used,
        Amount::Tokens(52)
    );
    let expected = Prices::builtin().cost("gpt-4o", &Usage::new(50, 2));
    assert_eq!(trail.snapshot().cost, expected);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_stream_is_charged_for_what_was_delivered() {
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(1_000)
        .budget(BudgetRule::tokens(Scope::User, Window::Day, 10_000))
        .build();
    let (upstream_response, sender) = streaming();
    let slot = Arc::new(Mutex::new(Some(upstream_response)));
    let service = layer.layer(service_fn(move |_: ChatRequest| {
        let response = slot.lock().unwrap().take().unwrap();
        async move { Ok::<_, BoxError>(response) }
    }));
    let mut response = service
        .oneshot(call("gpt-4o", 200, "ada").streaming())
        .await
        .unwrap();
    let mut stream = response.stream.take().unwrap();
    // Five deltas of 8 characters, then the caller goes away before the usage chunk.
    for _ in 0..5 {
        sender
            .send(StreamEvent::TextDelta("abcdefgh".into()))
            .unwrap();
        support::next_event(&mut stream).await.unwrap();
    }
    drop(stream);
    // 200 prompt tokens (the estimate: no usage arrived) + 10 output (40 characters / 4).
    assert_eq!(
        layer.budgets().status("user", "ada")[0].used,
        Amount::Tokens(210)
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_refunds_its_reservation_and_a_cache_hit_costs_nothing() {
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .budget(BudgetRule::tokens(Scope::User, Window::Day, 10_000))
        .build();
    let failing = layer.layer(service_fn(|_: ChatRequest| async {
        Err::<ChatResponse, BoxError>(
            LlmError::new(ErrorKind::Server, "boom")
                .with_status(500)
                .into(),
        )
    }));
    failing
        .oneshot(call("gpt-4o", 100, "ada"))
        .await
        .unwrap_err();
    assert_eq!(
        layer.budgets().status("user", "ada")[0].used,
        Amount::Tokens(0)
    );

    let cached = layer.layer(service_fn(|request: ChatRequest| async move {
        let mut response = reply(&request.model, "ok").with_usage(Usage::new(100, 10));
        response.trail.cache = Some(CacheStatus::Hit);
        Ok::<_, BoxError>(response)
    }));
    let response = cached.oneshot(call("gpt-4o", 100, "ada")).await.unwrap();
    assert_eq!(response.cost, Some(Cost::ZERO));
    assert_eq!(
        layer.budgets().status("user", "ada")[0].used,
        Amount::Tokens(0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_recovered_stream_is_priced_per_attempt_at_each_targets_price() {
    // The first target (gpt-4o) breaks after two deltas; the second (claude-haiku-4-5)
    // continues. Each attempt's usage is priced at its own model.
    let router = Failover::builder()
        .target(
            Target::new(
                "openai",
                service_fn(|request: ChatRequest| async move {
                    Ok::<_, BoxError>(streamed(
                        &request.model,
                        Duration::from_millis(10),
                        vec![
                            StreamEvent::Usage(Usage::new(30, 1)),
                            StreamEvent::TextDelta("The".into()),
                            StreamEvent::TextDelta(" tide".into()),
                            StreamEvent::Error(LlmError::new(ErrorKind::StreamTruncated, "cut")),
                        ],
                    ))
                }),
            )
            .model("gpt-4o"),
        )
        .target(
            Target::new(
                "anthropic",
                service_fn(|request: ChatRequest| async move {
                    Ok::<_, BoxError>(streamed(
                        &request.model,
                        Duration::from_millis(10),
                        vec![
                            StreamEvent::TextDelta(" rises.".into()),
                            StreamEvent::Finish(seawall_core::FinishReason::Stop),
                            StreamEvent::Usage(Usage::new(40, 3)),
                        ],
                    ))
                }),
            )
            .model("claude-haiku-4-5")
            .accepts_prefill(true),
        )
        .build();
    let layer = BudgetLayer::builder()
        .budget(BudgetRule::usd(Scope::Global, Window::Day, 1.0))
        .build();
    let mut request = ChatRequest::new("chat", [Message::user("The sea?")]).streaming();
    let trail = request.context.trail().clone();
    let service = layer.layer(router);
    // The request names the group, which has no price of its own: price it as gpt-4o.
    let error = service.clone().oneshot(request.clone()).await.unwrap_err();
    assert!(error.downcast_ref::<Unpriced>().is_some());
    let layer = BudgetLayer::builder()
        .prices(Prices::builtin().with("chat", *Prices::builtin().get("gpt-4o").unwrap()))
        .budget(BudgetRule::usd(Scope::Global, Window::Day, 1.0))
        .build();
    let service = layer.layer(service.into_inner());
    let mut response = service.oneshot(request).await.unwrap();
    collect(response.stream.take().unwrap()).await;
    let trail = trail.snapshot();
    let prices = Prices::builtin();
    let expected = prices
        .cost("gpt-4o", &Usage::new(30, 1))
        .unwrap()
        .saturating_add(prices.cost("claude-haiku-4-5", &Usage::new(40, 3)).unwrap());
    assert_eq!(trail.charges.len(), 2);
    assert_eq!(trail.cost, Some(expected));
    assert_eq!(
        layer.budgets().status("global", "")[0].used,
        Amount::Usd(expected)
    );
}

#[tokio::test(start_paused = true)]
async fn alerts_fire_once_per_window() {
    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let sink = Arc::clone(&alerts);
    let layer = BudgetLayer::builder()
        .estimator(NumberEstimator)
        .default_output_tokens(0)
        .clock_starting_at(at(JAN_31_LATE))
        .budget(BudgetRule::tokens(Scope::User, Window::Hour, 1_000))
        .alert(AlertRule::budget_share(0.8))
        .alert(AlertRule::budget_share(1.0))
        .alert(AlertRule::expensive_call(0.002))
        .alert(AlertRule::spend(Window::Hour, 0.007))
        .on_alert(move |alert| sink.lock().unwrap().push(alert.clone()))
        .build();
    // 300 tokens of gpt-4o input each: $0.00075.
    let service = layer.layer(Upstream::default().answering(Usage::new(300, 0), Duration::ZERO));
    let kinds = || {
        alerts
            .lock()
            .unwrap()
            .iter()
            .map(|alert| match &alert.kind {
                AlertKind::BudgetShare { share, .. } => format!("share {share}"),
                other => other.as_str().to_owned(),
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..3 {
        service
            .clone()
            .oneshot(call("gpt-4o", 300, "ada"))
            .await
            .unwrap();
    }
    assert_eq!(kinds(), ["share 0.8"], "900 of 1,000 tokens");
    // An expensive call (o1: 1,000 tokens in, $0.015), which the budget refuses anyway...
    assert!(
        service
            .clone()
            .oneshot(call("o1", 1_000, "ada"))
            .await
            .is_err()
    );
    // ...and one for another user that passes.
    service
        .clone()
        .oneshot(call("o1", 300, "bob"))
        .await
        .unwrap();
    assert_eq!(kinds(), ["share 0.8", "expensive_call"]);
    // Spending passes $0.007 this hour: four gpt-4o calls and one o1 call.
    service
        .clone()
        .oneshot(call("gpt-4o", 100, "ada"))
        .await
        .unwrap();
    assert_eq!(kinds(), ["share 0.8", "expensive_call", "share 1", "spend"]);
    // The next hour starts clean.
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..4 {
        service
            .clone()
            .oneshot(call("gpt-4o", 100, "ada"))
            .await
            .unwrap();
    }
    assert_eq!(
        kinds(),
        [
            "share 0.8",
            "expensive_call",
            "share 1",
            "spend",
            "share 0.8",
            "share 1"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn raw_http_calls_are_budgeted_by_their_model_extension_and_usage() {
    let layer = BudgetLayer::builder()
        .default_output_tokens(100)
        .budget(BudgetRule::usd(Scope::Global, Window::Day, 1.0))
        .build();
    let service = layer.layer(service_fn(|_: http::Request<String>| async {
        let mut response = http::Response::new(String::from("{}"));
        response.extensions_mut().insert(Usage::new(1_000, 100));
        Ok::<_, BoxError>(response)
    }));
    // Without a model, its price is unknown: refused.
    let unnamed = http::Request::new(String::from("{}"));
    let error = service.clone().oneshot(unnamed).await.unwrap_err();
    assert!(error.downcast_ref::<Unpriced>().is_some());
    let mut named = http::Request::new(String::from("{}"));
    named
        .extensions_mut()
        .insert(RequestedModel(Arc::from("gpt-4o-mini")));
    let response = service.oneshot(named).await.unwrap();
    let expected = ModelPrice::per_million(0.15, 0.6).cost(&Usage::new(1_000, 100));
    assert_eq!(response.extensions().get::<Cost>(), Some(&expected));
    assert_eq!(
        layer.budgets().status("global", "")[0].used,
        Amount::Usd(expected)
    );
}

/// Runs futures concurrently on the current task.
async fn futures_util_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<Option<_>> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in handles.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
