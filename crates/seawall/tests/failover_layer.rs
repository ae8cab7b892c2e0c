//! `FailoverLayer` in a `ServiceBuilder`, and routers behind `tower::steer::Steer` picking a
//! provider stack by model.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use seawall::breaker::BreakerLayer;
use seawall::failover::{Failover, FailoverLayer, Target};
use seawall_core::{BoxError, ChatRequest, ChatResponse, ErrorKind, LlmError, ProviderKind};
use support::{reply, weighing};
use tower::steer::Steer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// A provider that answers as `name`, or fails with a 529 while `down` is set; counts calls.
fn provider(
    name: &'static str,
    down: Arc<std::sync::atomic::AtomicBool>,
    calls: Arc<AtomicU32>,
) -> impl Service<
    ChatRequest,
    Response = ChatResponse,
    Error = BoxError,
    Future = std::future::Ready<Result<ChatResponse, BoxError>>,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |request: ChatRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if down.load(Ordering::SeqCst) {
            Err(
                LlmError::new(ErrorKind::Overloaded, format!("{name} overloaded"))
                    .with_status(529)
                    .into(),
            )
        } else {
            let mut response = reply(&request.model, name);
            response.provider = if name == "anthropic" {
                ProviderKind::Anthropic
            } else {
                ProviderKind::OpenAi
            };
            Ok(response)
        })
    })
}

#[tokio::test(start_paused = true)]
async fn a_primary_in_a_service_builder_falls_back_and_its_breaker_skips_it() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (primary_calls, backup_calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let breaker = BreakerLayer::builder("anthropic/opus")
        .consecutive_failures(2)
        .build();
    let backup = provider("openai", Arc::default(), Arc::clone(&backup_calls));
    let service = ServiceBuilder::new()
        .layer(
            FailoverLayer::new("anthropic/opus")
                .primary_model("claude-opus-4-1")
                .primary_gate(Arc::new(breaker.handle()))
                .fallback(Target::new("openai/mini", backup).model("gpt-4o-mini")),
        )
        .layer(breaker)
        .service(provider(
            "anthropic",
            Arc::clone(&down),
            Arc::clone(&primary_calls),
        ));

    for _ in 0..4 {
        let response = service.clone().oneshot(weighing(10)).await.unwrap();
        assert_eq!(response.model, "gpt-4o-mini");
        assert_eq!(response.text(), "openai");
    }
    // Two failures opened the primary's breaker: the last two calls skipped it.
    assert_eq!(primary_calls.load(Ordering::SeqCst), 2);
    assert_eq!(backup_calls.load(Ordering::SeqCst), 4);

    // Once it is back (and its breaker's break is over), the primary answers again.
    down.store(false, Ordering::SeqCst);
    tokio::time::advance(std::time::Duration::from_secs(120)).await;
    let response = service.oneshot(weighing(10)).await.unwrap();
    assert_eq!(response.model, "claude-opus-4-1");
}

#[tokio::test(start_paused = true)]
async fn steer_picks_a_provider_stack_by_model_and_each_falls_back_to_the_other() {
    let (openai_down, anthropic_down) = (
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let (openai_calls, anthropic_calls) =
        (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let openai = || {
        provider(
            "openai",
            Arc::clone(&openai_down),
            Arc::clone(&openai_calls),
        )
    };
    let anthropic = || {
        provider(
            "anthropic",
            Arc::clone(&anthropic_down),
            Arc::clone(&anthropic_calls),
        )
    };
    // One router per provider: its own stack first, the other provider as the fallback.
    let gpt: Failover = FailoverLayer::new("openai")
        .fallback(Target::new("anthropic", anthropic()).model("claude-sonnet-4-5"))
        .layer(openai());
    let claude: Failover = FailoverLayer::new("anthropic")
        .fallback(Target::new("openai", openai()).model("gpt-4o"))
        .layer(anthropic());
    let mut steer = Steer::new(
        vec![gpt, claude],
        |request: &ChatRequest, _: &[Failover]| usize::from(request.model.starts_with("claude")),
    );
    let call = |model: &str| {
        let mut request = weighing(10);
        request.model = Arc::from(model);
        request
    };

    let answer = |response: Result<ChatResponse, BoxError>| {
        let response = response.unwrap();
        (response.model.clone(), response.text().to_owned())
    };
    let r = steer.ready().await.unwrap().call(call("gpt-4o")).await;
    assert_eq!(answer(r), ("gpt-4o".to_owned(), "openai".to_owned()));
    let r = steer
        .ready()
        .await
        .unwrap()
        .call(call("claude-sonnet-4-5"))
        .await;
    assert_eq!(
        answer(r),
        ("claude-sonnet-4-5".to_owned(), "anthropic".to_owned())
    );

    // Anthropic down: a Claude call fails over to OpenAI under the mapped name.
    anthropic_down.store(true, Ordering::SeqCst);
    let r = steer
        .ready()
        .await
        .unwrap()
        .call(call("claude-sonnet-4-5"))
        .await;
    assert_eq!(answer(r), ("gpt-4o".to_owned(), "openai".to_owned()));
    assert_eq!(anthropic_calls.load(Ordering::SeqCst), 2);
    assert_eq!(openai_calls.load(Ordering::SeqCst), 2);
}
