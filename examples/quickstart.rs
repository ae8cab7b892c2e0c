//! seawall in one run: three providers behind the recommended stack, one of them rate
//! limited, one overloaded, and the calls still answered.
//!
//! ```text
//! Deadline → Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout → adapter]
//! ```
//!
//! With no API key set, OpenAI, Anthropic and Gemini are served by the embedded simulator
//! (`seawall-sim`, real HTTP on a loopback port), whose fault plan is the only thing scripted:
//! OpenAI's first request gets a 429 with `retry-after: 3`, and Anthropic's requests 2 to 4
//! get 529 overloaded. Everything printed comes from what happened: each HTTP attempt as the
//! adapter saw it, the breakers' events, each call's trail, and the limiters' snapshots.
//!
//! With `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` or `GEMINI_API_KEY` set (any subset), those
//! providers are the real ones (no fault is injected there) and the same calls are made.
//!
//! Run with `cargo run --example quickstart`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall::ServiceBuilderExt;
use seawall::breaker::{BreakerEvent, BreakerHandle, BreakerLayer};
use seawall::failover::Failover;
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimiter};
use seawall::retry::{Backoff, RetryLayer};
use seawall::stack::{Guarded, TargetStack};
use seawall::timeout::AttemptTimeoutLayer;
use seawall_core::{
    AttemptOutcome, BoxError, ChatRequest, ChatResponse, ErrorWithTrail, LlmError, Message, Trail,
};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{
    Anthropic, AnthropicConfig, ApiKey, Gemini, GeminiConfig, OpenAi, OpenAiConfig,
};
use seawall_sim::{Fault, FaultRule, Provider, QuotaConfig, Simulator};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The client-side limits of each target (and, on the simulator, the account's quota).
const REQUESTS_PER_MINUTE: u64 = 60;
const TOKENS_PER_MINUTE: u64 = 20_000;

const FIRST_QUESTION: &str = "What is the capital of France?";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let timeline = Timeline::new();
    let sim = Simulator::builder()
        .scripted_reply("capital of France", "Paris.")
        .scripted_reply("Italy", "Rome.")
        .scripted_reply("Spain", "Madrid.")
        .scripted_reply("Portugal", "Lisbon.")
        .first_token(Duration::from_millis(20))
        .quota(Provider::OpenAi, sim_quota())
        .quota(Provider::Anthropic, sim_quota())
        .quota(Provider::Gemini, sim_quota())
        // The fault plan: the only scripted part of this run.
        .faults(
            Provider::OpenAi,
            vec![FaultRule::first(1, Fault::rate_limited(3))],
        )
        .faults(
            Provider::Anthropic,
            vec![FaultRule::requests(2, 4, Fault::overloaded())],
        )
        .start()
        .await?;
    let http = HttpClientConfig::default().build()?;

    println!("seawall quickstart\n");
    let providers = [
        ProviderSetup::new(
            "openai",
            "OPENAI_API_KEY",
            "gpt-4o-mini",
            &sim,
            Provider::OpenAi,
        ),
        ProviderSetup::new(
            "anthropic",
            "ANTHROPIC_API_KEY",
            "claude-haiku-4-5",
            &sim,
            Provider::Anthropic,
        ),
        ProviderSetup::new(
            "gemini",
            "GEMINI_API_KEY",
            "gemini-2.5-flash",
            &sim,
            Provider::Gemini,
        ),
    ];
    for setup in &providers {
        match &setup.key {
            Some(_) => println!("  {:<10} {:<18} real API", setup.name, setup.model),
            None => println!(
                "  {:<10} {:<18} simulator at {}",
                setup.name, setup.model, setup.sim_url
            ),
        }
    }
    println!(
        "\n  stack: Deadline(20 s) → Failover(priority) → per target [Retry(3 attempts, \
         server waits ≤ 500 ms) → Breaker(3 failures, 1 s break) → RateLimit({REQUESTS_PER_MINUTE} rpm, \
         {TOKENS_PER_MINUTE} tpm) → AttemptTimeout → adapter]\n"
    );

    let guarded: Vec<Guarded> = providers
        .iter()
        .map(|setup| setup.target(&http, &timeline))
        .collect();
    let breakers: Vec<BreakerHandle> = guarded.iter().map(|g| g.breaker.clone()).collect();
    let limiters: Vec<RateLimiter> = guarded.iter().filter_map(|g| g.limiter.clone()).collect();
    let router = Failover::builder()
        .targets(
            guarded
                .into_iter()
                .zip(&providers)
                .map(|(guarded, setup)| guarded.target.model(setup.model)),
        )
        .build();
    let service = ServiceBuilder::new()
        .deadline(Duration::from_secs(20))
        .service(router);

    println!("  time    provider   model              what happened");
    let mut conversation = vec![
        Message::system("Answer in one word."),
        Message::user(FIRST_QUESTION),
    ];
    let questions = [
        None,
        Some("And the capital of Italy?"),
        Some("And of Spain?"),
        Some("And of Portugal?"),
    ];
    for (step, question) in questions.into_iter().enumerate() {
        if let Some(question) = question {
            conversation.push(Message::user(question));
        }
        if step >= 2 {
            // Wait until a parked or broken target can take calls again: first the one
            // that recovers soonest (its half-open probe), then the last one.
            let soonest = step == 2;
            if let Some((target, wait, why)) = next_recovery(&breakers, soonest) {
                timeline.note(format!(
                    "waiting {} for {target} ({why}) to take calls again",
                    secs(wait)
                ));
                tokio::time::sleep(wait).await;
            }
        }
        let request = ChatRequest::new("chat", conversation.clone()).with_max_output_tokens(32);
        let asked = question.unwrap_or(FIRST_QUESTION);
        timeline.note(format!("call {}: {asked:?}", step + 1));
        match service.clone().oneshot(request).await {
            Ok(response) => {
                print_trail(&timeline, &response.trail);
                timeline.note(format!(
                    "=> {:?} from {} ({})",
                    response.text(),
                    response
                        .trail
                        .final_target
                        .as_ref()
                        .map_or("?", |t| t.as_str()),
                    response.model
                ));
                conversation.push(Message::assistant(response.text()));
            }
            Err(error) => {
                if let Some(with_trail) = ErrorWithTrail::find(&*error) {
                    print_trail(&timeline, with_trail.trail());
                }
                timeline.note(format!("=> the call failed: {error}"));
                conversation.pop();
            }
        }
        println!();
    }

    println!("  breakers:");
    for breaker in &breakers {
        println!(
            "    {:<10} {}",
            breaker.target().as_str(),
            breaker.state().as_str()
        );
    }
    println!("\n  rate limiters (client side, synced from the providers' rate-limit headers):");
    println!(
        "    {:<10} {:>9} {:>10} {:>9} {:>6} {:>12} {:>12} {:>15}",
        "target",
        "requests",
        "estimated",
        "used",
        "queue",
        "requests left",
        "tokens left",
        "time to refill"
    );
    for limiter in &limiters {
        let snapshot = limiter.snapshot();
        println!(
            "    {:<10} {:>9} {:>10} {:>9} {:>6} {:>12} {:>12} {:>15}",
            snapshot.target.as_str(),
            snapshot.requests_admitted,
            snapshot.tokens_reserved,
            snapshot.tokens_used,
            snapshot.queue_len,
            snapshot
                .capacity
                .requests
                .map_or("-".to_owned(), |n| n.to_string()),
            snapshot
                .capacity
                .tokens
                .map_or("-".to_owned(), |n| n.to_string()),
            secs(snapshot.capacity.time_to_refill),
        );
    }
    println!(
        "    (requests = admitted, counting retries; estimated = tokens reserved up front, \
         prompt estimate plus max output; used = what the providers reported)"
    );
    sim.shutdown().await;
    Ok(())
}

fn sim_quota() -> QuotaConfig {
    QuotaConfig {
        requests: REQUESTS_PER_MINUTE,
        tokens: TOKENS_PER_MINUTE,
        window_ms: 60_000,
        ..QuotaConfig::default()
    }
}

/// One provider: its real API when its key is set, otherwise the simulator.
struct ProviderSetup {
    name: &'static str,
    model: &'static str,
    key: Option<ApiKey>,
    sim_url: String,
    provider: Provider,
}

impl ProviderSetup {
    fn new(
        name: &'static str,
        variable: &str,
        model: &'static str,
        sim: &Simulator,
        provider: Provider,
    ) -> Self {
        Self {
            name,
            model,
            key: ApiKey::from_env(variable),
            sim_url: sim.base_url(provider),
            provider,
        }
    }

    /// The provider's adapter, observed, inside its target stack.
    fn target(&self, http: &HttpClient, timeline: &Timeline) -> Guarded {
        let events = timeline.clone();
        let breaker = BreakerLayer::builder(self.name)
            .consecutive_failures(3)
            .break_duration(Duration::from_secs(1), Duration::from_secs(8))
            .on_event(move |event| events.breaker(event))
            .build();
        let limiter = RateLimiter::new(
            self.name,
            RateLimitConfig::new()
                .requests(Rate::per_minute(REQUESTS_PER_MINUTE))
                .tokens(Rate::per_minute(TOKENS_PER_MINUTE))
                .max_wait(Duration::from_secs(2)),
        );
        let attempt_timeout = match self.key {
            Some(_) => Duration::from_secs(30),
            None => Duration::from_secs(2),
        };
        let stack = TargetStack::new(self.name)
            .retry(
                RetryLayer::new()
                    .max_attempts(3)
                    .backoff(Backoff::new(
                        Duration::from_millis(100),
                        Duration::from_millis(400),
                    ))
                    .max_server_wait(Duration::from_millis(500)),
            )
            .breaker(breaker)
            .rate_limit(limiter)
            .attempt_timeout(AttemptTimeoutLayer::new(attempt_timeout));
        let http = http.clone();
        let observed = |inner| Observed {
            inner,
            provider: self.name,
            timeline: timeline.clone(),
        };
        let key = self.key.clone();
        match self.provider {
            Provider::OpenAi => {
                let config = match key {
                    Some(key) => OpenAiConfig::new(key),
                    None => OpenAiConfig::new("sk-sim").with_base_url(&self.sim_url),
                };
                stack.build(observed(Adapter::OpenAi(OpenAi::new(http, config))))
            }
            Provider::Anthropic => {
                let config = match key {
                    Some(key) => AnthropicConfig::new(key),
                    None => AnthropicConfig::new("sk-sim").with_base_url(&self.sim_url),
                };
                stack.build(observed(Adapter::Anthropic(Anthropic::new(http, config))))
            }
            _ => {
                let config = match key {
                    Some(key) => GeminiConfig::new(key),
                    None => GeminiConfig::new("sim-key").with_base_url(&self.sim_url),
                };
                stack.build(observed(Adapter::Gemini(Gemini::new(http, config))))
            }
        }
    }
}

/// The three adapter types as one, so that one observer type wraps them all.
#[derive(Clone)]
enum Adapter {
    OpenAi(OpenAi<HttpClient>),
    Anthropic(Anthropic<HttpClient>),
    Gemini(Gemini<HttpClient>),
}

impl Service<ChatRequest> for Adapter {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ChatResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::OpenAi(adapter) => adapter.poll_ready(cx),
            Self::Anthropic(adapter) => adapter.poll_ready(cx),
            Self::Gemini(adapter) => adapter.poll_ready(cx),
        }
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        match self {
            Self::OpenAi(adapter) => Box::pin(adapter.call(request)),
            Self::Anthropic(adapter) => Box::pin(adapter.call(request)),
            Self::Gemini(adapter) => Box::pin(adapter.call(request)),
        }
    }
}

/// Prints every HTTP attempt the adapter makes: the innermost view of the stack, so each
/// retry shows up, with the wait before it.
#[derive(Clone)]
struct Observed {
    inner: Adapter,
    provider: &'static str,
    timeline: Timeline,
}

impl Service<ChatRequest> for Observed {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ChatResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let model = request.model.to_string();
        let retry = request.context.attempt;
        let provider = self.provider;
        let timeline = self.timeline.clone();
        let wait = (retry > 0).then(|| timeline.since_last_attempt(provider));
        let future = self.inner.call(request);
        Box::pin(async move {
            let started = Instant::now();
            let result = future.await;
            timeline.attempt(provider, &model, wait, started.elapsed(), &result);
            result
        })
    }
}

/// Prints the run as it happens, with the time since the start.
#[derive(Clone)]
struct Timeline {
    start: Instant,
    last_attempt_end: Arc<Mutex<HashMap<&'static str, Instant>>>,
}

impl Timeline {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_attempt_end: Arc::default(),
        }
    }

    fn line(&self, provider: &str, model: &str, what: &str) {
        let elapsed = self.start.elapsed().as_secs_f64();
        println!("  {elapsed:>6.3}s {provider:<10} {model:<18} {what}");
    }

    fn note(&self, what: String) {
        self.line("", "", &what);
    }

    fn since_last_attempt(&self, provider: &'static str) -> Duration {
        let ends = self
            .last_attempt_end
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ends.get(provider).map_or(Duration::ZERO, Instant::elapsed)
    }

    fn attempt(
        &self,
        provider: &'static str,
        model: &str,
        wait: Option<Duration>,
        took: Duration,
        result: &Result<ChatResponse, BoxError>,
    ) {
        self.last_attempt_end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(provider, Instant::now());
        let waited = wait.map_or(String::new(), |w| format!("retry after {}: ", secs(w)));
        let outcome = match result {
            Ok(response) => {
                let usage = response.usage.map_or(String::new(), |usage| {
                    format!(", {} tokens used", usage.total())
                });
                format!("200 {:?}{usage}", response.text())
            }
            Err(error) => match error.downcast_ref::<LlmError>() {
                Some(error) => {
                    let status = error.status().map_or(String::new(), |s| format!("{s} "));
                    let hint = error
                        .hints()
                        .retry_after
                        .map_or(String::new(), |w| format!(" (retry-after {})", secs(w)));
                    format!("{status}{}{hint}", error.kind().as_str())
                }
                None => format!("error: {error}"),
            },
        };
        self.line(
            provider,
            model,
            &format!("{waited}{outcome} in {} ms", took.as_millis()),
        );
    }

    fn breaker(&self, event: &BreakerEvent) {
        match event {
            BreakerEvent::Transition {
                target,
                from,
                to,
                open_for,
            } => {
                let open_for = open_for.map_or(String::new(), |d| format!(" for {}", secs(d)));
                self.line(
                    target.as_str(),
                    "",
                    &format!("breaker {} → {}{open_for}", from.as_str(), to.as_str()),
                );
            }
            BreakerEvent::CooldownStarted { target, wait } => self.line(
                target.as_str(),
                "",
                &format!("parked (capacity cooldown) for {}", secs(*wait)),
            ),
            other => self.line("", "", &format!("{other:?}")),
        }
    }
}

/// Prints the call's trail: every target the router considered, in order, skipped or sent
/// (each HTTP attempt of a sent one is already on the timeline).
fn print_trail(timeline: &Timeline, trail: &Trail) {
    let steps: Vec<String> = trail
        .attempts
        .iter()
        .map(|a| match &a.outcome {
            AttemptOutcome::Succeeded => format!("{} ok ({} ms)", a.target, a.latency.as_millis()),
            AttemptOutcome::Failed { cause, .. } => {
                format!(
                    "{} {} ({} ms)",
                    a.target,
                    cause.as_str(),
                    a.latency.as_millis()
                )
            }
            AttemptOutcome::Skipped { reason } => format!("{} skipped ({reason})", a.target),
            other => format!("{} {other:?}", a.target),
        })
        .collect();
    timeline.note(format!("trail: {}", steps.join(" → ")));
}

/// The target whose breaker refuses calls now and admits one soonest (or last), with the
/// wait and why it refuses.
fn next_recovery(breakers: &[BreakerHandle], soonest: bool) -> Option<(String, Duration, String)> {
    let now = Instant::now();
    let refusing = breakers.iter().filter_map(|breaker| {
        breaker.check(now).err().map(|open| {
            let why = match open.reason {
                seawall_core::OpenReason::OutOfCapacity => "capacity cooldown".to_owned(),
                _ => "breaker open".to_owned(),
            };
            (breaker.target().to_string(), open.retry_in, why)
        })
    });
    if soonest {
        refusing.min_by_key(|(_, wait, _)| *wait)
    } else {
        refusing.max_by_key(|(_, wait, _)| *wait)
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}
