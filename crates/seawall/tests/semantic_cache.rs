//! The semantic cache (feature `semantic-cache`) on the paused clock: paraphrases hit,
//! unrelated prompts miss, scopes, models and parameters never share answers, the TTL and
//! the bound, an embedder that fails or hangs never fails the call, streamed replay, and
//! the real OpenAI adapter embedding through the simulator.

mod support;

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::budget::Scope;
use seawall::semantic_cache::{SemanticCacheError, SemanticCacheLayer};
use seawall_core::{
    BoxError, CacheStatus, ChatRequest, ChatResponse, Embedder, EmbeddingRequest, Embeddings,
    FinishReason, Message, ProviderKind, StreamEvent,
};
use support::{collect, reply, streamed};
use tower::{Layer, Service, ServiceExt, service_fn};

/// What the test embedder does next.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// A hashed bag of words, 64 dimensions.
    Words,
    /// Fails.
    Fail,
    /// Never answers.
    Hang,
}

#[derive(Clone)]
struct TestEmbedder(Arc<Mutex<(Mode, u32, Option<EmbeddingRequest>)>>);

impl TestEmbedder {
    fn new() -> Self {
        Self(Arc::new(Mutex::new((Mode::Words, 0, None))))
    }

    fn set(&self, mode: Mode) {
        self.0.lock().unwrap().0 = mode;
    }

    fn calls(&self) -> u32 {
        self.0.lock().unwrap().1
    }

    fn last(&self) -> EmbeddingRequest {
        self.0
            .lock()
            .unwrap()
            .2
            .clone()
            .expect("an embedding request")
    }
}

fn words(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0_f32; 64];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut hasher = DefaultHasher::new();
        word.hash(&mut hasher);
        vector[(hasher.finish() % 64) as usize] += 1.0;
    }
    vector
}

impl Embedder for TestEmbedder {
    type Future = Pin<Box<dyn Future<Output = Result<Embeddings, BoxError>> + Send>>;

    fn embed(&self, request: EmbeddingRequest) -> Self::Future {
        let mode = {
            let mut state = self.0.lock().unwrap();
            state.1 += 1;
            state.2 = Some(request.clone());
            state.0
        };
        Box::pin(async move {
            match mode {
                Mode::Words => Ok(Embeddings::new(
                    ProviderKind::OpenAi,
                    &*request.model,
                    request.input.iter().map(|t| words(t)).collect(),
                )),
                Mode::Fail => Err(BoxError::from("the embeddings endpoint is down")),
                Mode::Hang => std::future::pending().await,
            }
        })
    }
}

/// An upstream that answers `answer #n` (or streams it), counting its calls.
#[derive(Clone)]
struct Upstream(Arc<Mutex<u32>>);

impl Upstream {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(0)))
    }

    fn calls(&self) -> u32 {
        *self.0.lock().unwrap()
    }

    fn service(
        &self,
    ) -> impl Service<ChatRequest, Response = ChatResponse, Error = BoxError, Future: Send> + Clone + use<>
    {
        let calls = Arc::clone(&self.0);
        service_fn(move |request: ChatRequest| {
            let n = {
                let mut calls = calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            let text = format!("answer #{n}");
            async move {
                if request.stream {
                    let events = vec![
                        StreamEvent::Start {
                            id: Some(format!("chatcmpl-{n}")),
                            model: Some("gpt-4o".into()),
                        },
                        StreamEvent::TextDelta("answer ".into()),
                        StreamEvent::TextDelta(format!("#{n}")),
                        StreamEvent::Finish(FinishReason::Stop),
                    ];
                    Ok(streamed("gpt-4o", Duration::from_millis(5), events))
                } else {
                    Ok(reply("gpt-4o", &text))
                }
            }
        })
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(
        "gpt-4o",
        [Message::system("Answer in one word."), Message::user(text)],
    )
}

fn for_tenant(tenant: &str, text: &str) -> ChatRequest {
    let mut request = ask(text);
    request.context.options_mut().tenant = Some(Arc::from(tenant));
    request
}

async fn send<S>(service: &S, request: ChatRequest) -> ChatResponse
where
    S: Service<ChatRequest, Response = ChatResponse, Error = BoxError> + Clone,
{
    service.clone().oneshot(request).await.expect("an answer")
}

#[tokio::test(start_paused = true)]
async fn a_paraphrase_hits_and_an_unrelated_prompt_misses() {
    let embedder = TestEmbedder::new();
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(embedder.clone(), "text-embedding-3-small")
        .threshold(0.85)
        .dimensions(64)
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());

    let first = send(&service, ask("What is the capital of France?")).await;
    assert_eq!(first.text(), "answer #1");
    assert_eq!(first.trail.cache, Some(CacheStatus::Miss));
    // The embedder saw the system prompt and the question, with the model and dimensions.
    let seen = embedder.last();
    assert_eq!(
        seen.input,
        ["Answer in one word.\n\nWhat is the capital of France?"]
    );
    assert_eq!(&*seen.model, "text-embedding-3-small");
    assert_eq!(seen.dimensions, Some(64));

    let paraphrase = send(&service, ask("what is the capital of france")).await;
    assert_eq!(paraphrase.text(), "answer #1");
    assert_eq!(paraphrase.trail.cache, Some(CacheStatus::Hit));
    let reordered = send(&service, ask("The capital of France: what is it?")).await;
    assert_eq!(reordered.text(), "answer #1", "same words, another order");

    let unrelated = send(&service, ask("Write a haiku about autumn leaves")).await;
    assert_eq!(unrelated.text(), "answer #2");
    assert_eq!(unrelated.trail.cache, Some(CacheStatus::Miss));

    assert_eq!(upstream.calls(), 2);
    let stats = layer.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.stored, stats.entries),
        (2, 2, 2, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn another_scope_never_hits_and_a_request_without_one_is_passed_on() {
    let embedder = TestEmbedder::new();
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(embedder.clone(), "e")
        .scope(Scope::Tenant)
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());

    assert_eq!(
        send(&service, for_tenant("acme", "Capital of France?"))
            .await
            .text(),
        "answer #1"
    );
    assert_eq!(
        send(&service, for_tenant("acme", "Capital of France?"))
            .await
            .text(),
        "answer #1"
    );
    let other = send(&service, for_tenant("globex", "Capital of France?")).await;
    assert_eq!(
        other.text(),
        "answer #2",
        "the same prompt, another tenant: never shared"
    );
    assert_eq!(other.trail.cache, Some(CacheStatus::Miss));

    // No tenant: neither looked up nor stored, and nothing embedded.
    let calls = embedder.calls();
    let anonymous = send(&service, ask("Capital of France?")).await;
    assert_eq!(anonymous.text(), "answer #3");
    assert_eq!(anonymous.trail.cache, None);
    assert_eq!(
        send(&service, ask("Capital of France?")).await.text(),
        "answer #4"
    );
    assert_eq!(embedder.calls(), calls);
    assert_eq!(layer.stats().bypassed, 2);
}

#[tokio::test(start_paused = true)]
async fn another_model_or_parameter_or_history_misses() {
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(TestEmbedder::new(), "e")
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());

    send(&service, ask("Capital of France?")).await;
    let mut other_model = ask("Capital of France?");
    other_model.model = Arc::from("gpt-4o-mini");
    assert_eq!(send(&service, other_model).await.text(), "answer #2");
    let hotter = ask("Capital of France?").with_temperature(1.2);
    assert_eq!(send(&service, hotter).await.text(), "answer #3");
    let seeded = ask("Capital of France?").with_extra("seed", serde_json::json!(7));
    assert_eq!(send(&service, seeded).await.text(), "answer #4");
    let follow_up = ChatRequest::new(
        "gpt-4o",
        [
            Message::system("Answer in one word."),
            Message::user("Capital of Spain?"),
            Message::assistant("Madrid"),
            Message::user("Capital of France?"),
        ],
    );
    assert_eq!(send(&service, follow_up).await.text(), "answer #5");
    // Who asks and how it is delivered do not change the answer.
    let user = ask("Capital of France?").with_user("u-42");
    assert_eq!(send(&service, user).await.text(), "answer #1");
    assert_eq!(upstream.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn answers_expire_after_the_ttl_on_tokios_clock() {
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(TestEmbedder::new(), "e")
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());

    send(&service, ask("Capital of France?")).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        send(&service, ask("capital of france")).await.text(),
        "answer #1"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let expired = send(&service, ask("capital of france")).await;
    assert_eq!(expired.text(), "answer #2");
    assert_eq!(expired.trail.cache, Some(CacheStatus::Miss));
    // The fresh answer serves again, and the expired one was dropped when it was stored.
    assert_eq!(
        send(&service, ask("Capital of France?")).await.text(),
        "answer #2"
    );
    assert_eq!(layer.stats().entries, 1);
}

#[tokio::test(start_paused = true)]
async fn the_bound_drops_the_oldest_answer() {
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(TestEmbedder::new(), "e")
        .max_entries(2)
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());
    for question in [
        "Capital of France?",
        "Capital of Spain?",
        "Capital of Italy?",
    ] {
        send(&service, ask(question)).await;
    }
    assert_eq!(layer.stats().entries, 2);
    assert_eq!(
        send(&service, ask("Capital of Italy?")).await.text(),
        "answer #3"
    );
    assert_eq!(
        send(&service, ask("Capital of France?")).await.text(),
        "answer #4"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_or_hung_embedding_never_fails_the_call() {
    let embedder = TestEmbedder::new();
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(embedder.clone(), "e")
        .embed_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());
    send(&service, ask("Capital of France?")).await;

    embedder.set(Mode::Fail);
    let failed = send(&service, ask("Capital of France?")).await;
    assert_eq!(failed.text(), "answer #2", "upstream answered");
    assert_eq!(failed.trail.cache, Some(CacheStatus::Miss));

    embedder.set(Mode::Hang);
    let started = tokio::time::Instant::now();
    let hung = send(&service, ask("Capital of France?")).await;
    assert_eq!(hung.text(), "answer #3");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "waited the embed timeout, no more"
    );

    // Neither stored an answer under a vector it did not have.
    embedder.set(Mode::Words);
    assert_eq!(
        send(&service, ask("Capital of France?")).await.text(),
        "answer #1"
    );
    let stats = layer.stats();
    assert_eq!((stats.embed_failures, stats.stored), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_streamed_answer_is_stored_once_whole_and_replayed_in_either_form() {
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(TestEmbedder::new(), "e")
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());

    let mut first = send(&service, ask("Capital of France?").streaming()).await;
    assert_eq!(layer.stats().stored, 0, "not before the stream ends");
    let relayed = collect(first.stream.take().unwrap()).await;
    assert_eq!(layer.stats().stored, 1);

    let mut replay = send(&service, ask("capital of France").streaming()).await;
    assert_eq!(replay.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(
        collect(replay.stream.take().unwrap()).await,
        relayed,
        "event for event"
    );
    let whole = send(&service, ask("capital of france?")).await;
    assert_eq!(whole.text(), "answer #1");
    assert_eq!(whole.finish_reason, Some(FinishReason::Stop));
    assert_eq!(upstream.calls(), 1);

    // A stream dropped before its end is never stored.
    let mut cut = send(&service, ask("Capital of Spain?").streaming()).await;
    let mut stream = cut.stream.take().unwrap();
    let _ = support::next_event(&mut stream).await;
    drop(stream);
    assert_eq!(
        send(&service, ask("Capital of Spain?")).await.text(),
        "answer #3"
    );
}

#[tokio::test(start_paused = true)]
async fn no_cache_skips_the_lookup_and_no_store_the_store() {
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(TestEmbedder::new(), "e")
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());
    let mut unstored = ask("Capital of France?");
    unstored.context.options_mut().cache.no_store = true;
    send(&service, unstored).await;
    assert_eq!(
        send(&service, ask("Capital of France?")).await.text(),
        "answer #2"
    );
    let mut fresh = ask("Capital of France?");
    fresh.context.options_mut().cache.no_cache = true;
    assert_eq!(send(&service, fresh).await.text(), "answer #3");
    assert_eq!(
        send(&service, ask("Capital of France?")).await.text(),
        "answer #3"
    );
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let build = |threshold: f32| {
        SemanticCacheLayer::builder(TestEmbedder::new(), "e")
            .threshold(threshold)
            .build()
    };
    assert_eq!(build(0.0).unwrap_err(), SemanticCacheError::Threshold(0.0));
    assert_eq!(build(1.5).unwrap_err(), SemanticCacheError::Threshold(1.5));
    assert!(matches!(
        build(f32::NAN),
        Err(SemanticCacheError::Threshold(_))
    ));
    assert!(build(1.0).is_ok());
    let empty = SemanticCacheLayer::builder(TestEmbedder::new(), "").build();
    assert_eq!(empty.unwrap_err(), SemanticCacheError::EmbeddingModel);
    let unbounded = SemanticCacheLayer::builder(TestEmbedder::new(), "e")
        .max_entries(0)
        .build();
    assert_eq!(unbounded.unwrap_err(), SemanticCacheError::MaxEntries);
}

/// The adapter-backed embedder: the OpenAI adapter embedding through the simulator's
/// `/v1/embeddings` (real loopback HTTP, so the clock runs; the embed timeout is generous).
#[tokio::test]
async fn the_openai_adapter_embeds_through_the_simulator() {
    use seawall_providers::http::HttpClientConfig;
    use seawall_providers::{Anthropic, AnthropicConfig, OpenAi, OpenAiConfig};
    use seawall_sim::{Provider, Simulator};

    let sim = Simulator::builder().start().await.unwrap();
    let http = HttpClientConfig::default().build().unwrap();
    let openai = OpenAi::new(
        http.clone(),
        OpenAiConfig::new("sk-test").with_base_url(sim.base_url(Provider::OpenAi)),
    );
    let upstream = Upstream::new();
    let layer = SemanticCacheLayer::builder(openai, "text-embedding-3-small")
        .threshold(0.8)
        .dimensions(512)
        .embed_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());
    send(&service, ask("What is the capital of France?")).await;
    let paraphrase = send(&service, ask("what's the capital of France")).await;
    assert_eq!(paraphrase.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(
        send(&service, ask("Write a poem about the sea"))
            .await
            .text(),
        "answer #2"
    );
    let embedded = sim.requests_for(Provider::OpenAi);
    assert_eq!(embedded.len(), 3);
    assert!(embedded.iter().all(|r| r.path == "/openai/v1/embeddings"));

    // Anthropic has no embeddings: every call goes upstream, none fails.
    let anthropic = Anthropic::new(
        http,
        AnthropicConfig::new("sk-ant").with_base_url(sim.base_url(Provider::Anthropic)),
    );
    let layer = SemanticCacheLayer::builder(anthropic, "claude")
        .build()
        .unwrap();
    let service = layer.layer(upstream.service());
    send(&service, ask("Capital of France?")).await;
    send(&service, ask("Capital of France?")).await;
    assert_eq!(upstream.calls(), 4);
    assert_eq!(layer.stats().embed_failures, 2);
}

/// In front of the limiter and the budget (where the gateway puts it), a hit waits for no
/// limiter capacity and spends no budget.
#[tokio::test(start_paused = true)]
async fn a_hit_spends_no_limiter_capacity_and_no_budget() {
    use seawall::budget::{Amount, BudgetLayer, BudgetRule, Window};
    use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
    use seawall_core::Usage;

    let limiter = RateLimiter::new("t", RateLimitConfig::new().requests(Rate::per_minute(1)));
    let upstream = Upstream::new();
    let with_usage = tower::ServiceBuilder::new()
        .map_response(|mut response: ChatResponse| {
            response.usage = Some(Usage::new(40, 60));
            response
        })
        .service(upstream.service());
    let limited = RateLimitLayer::new(limiter).layer(with_usage);
    let semantic = SemanticCacheLayer::builder(TestEmbedder::new(), "e")
        .build()
        .unwrap();
    let budget = BudgetLayer::builder()
        .budget(BudgetRule::tokens(Scope::Global, Window::Day, 1_000_000))
        .build();
    let service = budget.layer(semantic.layer(limited));

    let started = tokio::time::Instant::now();
    send(&service, ask("Capital of France?")).await;
    let hit = send(&service, ask("capital of france")).await;
    assert_eq!(hit.trail.cache, Some(CacheStatus::Hit));
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "the hit did not wait for the limiter"
    );
    let used = budget.budgets().status("global", "")[0].used;
    assert_eq!(
        used,
        Amount::Tokens(100),
        "only the call that went upstream spent"
    );

    // The limiter's one request a minute is spent: a call that must go upstream is
    // refused (a minute's wait is past the limiter's longest), the hit was not.
    let refused = service
        .clone()
        .oneshot(ask("Capital of Spain?"))
        .await
        .unwrap_err();
    assert!(
        refused
            .downcast_ref::<seawall_core::RateLimitRejected>()
            .is_some(),
        "{refused}"
    );
    assert_eq!(upstream.calls(), 1);
}
