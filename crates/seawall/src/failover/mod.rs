//! Failover across targets: an ordered plan per call, gates that skip targets which cannot
//! take the call, model mapping per target, bounded hops, and a streaming commit point.
//!
//! [`Failover`] is the outer router of the recommended stack:
//!
//! ```text
//! Deadline → Failover → per target [Retry → Breaker → RateLimit → AttemptTimeout → Adapter]
//! ```
//!
//! For each call it builds a plan from its [`Strategy`] (priority, weighted, least
//! latency by moving average, or power of two choices) and walks it:
//!
//! - A target is **skipped** (recorded in the trail, nothing sent) when its context window
//!   is smaller than the estimated prompt plus reserved output, or when one of its
//!   [`TargetGate`]s refuses: breaker open, capacity cooldown not over, rate limiter unable
//!   to admit the call within the remaining deadline. A target whose service is still not
//!   ready after the [readiness timeout](FailoverBuilder::ready_timeout) (1 s by default,
//!   never past the deadline) is skipped too.
//! - The call is sent with the target's own **model name** ([`Target::model`]), so one
//!   alias maps to a fallback chain such as expensive → cheap → local.
//! - On failure the stack's one [classifier](seawall_core::Classifier) decides (given once
//!   with [`FailoverBuilder::classifier`], it reaches every target's retry layer and
//!   breaker through the request context): `Failover` or
//!   `Retry` moves on to the next target (the target's own retry layer has given up by
//!   then); `Fatal` returns at once. At most `max_hops` targets are sent the call.
//! - When nothing is left: one [`AllTargetsFailed`] listing every attempt and skip
//!   (target, outcome, wait).
//! - **Streaming commit point.** A streamed response is read up to its first content event
//!   before it is returned. Before that point, an error status, a first-token timeout, an
//!   error frame or a stream that ends fail over transparently. After it, the stream is
//!   never passed off as complete when it is not: it is recovered, or it ends with an
//!   explicit `Error` event (see below).
//! - **Trail.** Every response carries the call's [`Trail`](seawall_core::Trail) in
//!   `ChatResponse::trail`, and every error is an [`ErrorWithTrail`] whose `source()` is
//!   the original error (so classification sees through it): attempts with target,
//!   outcome, wait and latency (and time to first token), limiter wait, breaker states
//!   seen, final target and model, tokens estimated vs used, stream recoveries. The router
//!   records one attempt per target it sends the call to (and one per skip); the trail
//!   recorder is shared through the request's context, so layers inside a target (the
//!   limiter's wait, a retry layer's own attempts) write to the same trail. For a stream,
//!   `ChatResponse::trail` is a copy taken at the commit point; what happens after it
//!   (recoveries, summed usage, the final target) is written to the shared recorder, which
//!   a caller reads by installing one before the call:
//!   `let trail = request.context.trail().clone();` then `trail.snapshot()` once the stream
//!   has ended.
//! - **Spans and events** (target `seawall::failover`), with the OpenTelemetry GenAI
//!   attribute names: a `chat` span per call (`gen_ai.operation.name`,
//!   `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.provider.name`,
//!   `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `error.type` when the call
//!   fails, `seawall.target`, `seawall.attempts`), closed when the call ends (a stream:
//!   when it ends); an `attempt` span per target tried, its child (`seawall.target`,
//!   `seawall.attempt`, `seawall.outcome`, `error.type`, `seawall.wait_ms`,
//!   `seawall.first_token_ms` and the response's fields); events `target skipped`
//!   (`seawall.skip_reason`, debug), `attempt failed`, `stream recovered`, `hedge sent`
//!   (`seawall.target`, `seawall.hedged_target`, `seawall.hedge_after_ms`) and `hedge won`
//!   (info); a cancelled attempt's span has `seawall.outcome = "cancelled"`. An attempt's
//!   span is the current span while its target is called and polled (its stream too), so
//!   a subscriber that propagates trace context (an OpenTelemetry bridge) sends the
//!   attempt's upstream; counts are recorded as signed integers. With no subscriber
//!   listening they are never built: the router's futures hold one pointer, and a call
//!   allocates nothing for them.
//!
//! # Hedging
//!
//! Off by default; [`FailoverBuilder::hedge`] turns it on with a [`Hedge`]. When an
//! attempt has produced no content after the hedge delay — fixed, or a quantile of its
//! target's recent times to first content, within a floor and a ceiling — the call is also
//! sent to the next target of the plan that passes its gates (a skip is recorded as
//! usual). The first attempt to produce content wins: a response, or for a stream its
//! first content event (the commit point: a stream is never hedged after it). The others
//! are dropped, which cancels their requests; the trail records them as
//! [`Cancelled`](seawall_core::AttemptOutcome::Cancelled), with the usage they had
//! reported, if any, in its charges. A dropped attempt's rate-limiter reservation leaves
//! the limiter's in-flight count at once and is charged as estimated (the request was
//! sent; the provider may count it). Each hedge spends one withdrawal from a retry budget
//! — by default the slow target's retry layer's — so hedges cannot storm: no budget, no
//! hedge. A failed attempt does not end the call while another is in flight; when none is
//! left, the call fails over as usual. Hedges count as hops. Each attempt's
//! [`AttemptRecord::hedge`](seawall_core::AttemptRecord) says whether it was a hedge.
//!
//! ```
//! use std::time::Duration;
//! use seawall::failover::{Failover, Hedge, Target};
//! use seawall_core::{
//!     AssistantMessage, AttemptOutcome, BoxError, ChatRequest, ChatResponse, FinishReason,
//!     Message, ProviderKind,
//! };
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let answer = |after: u64, text: &'static str| {
//!     service_fn(move |request: ChatRequest| async move {
//!         tokio::time::sleep(Duration::from_millis(after)).await;
//!         let reply = AssistantMessage::text(text);
//!         Ok::<_, BoxError>(ChatResponse::new(
//!             ProviderKind::OpenAi, &*request.model, reply, FinishReason::Stop,
//!         ))
//!     })
//! };
//! let router = Failover::builder()
//!     .target(Target::new("slow", answer(5_000, "late")))
//!     .target(Target::new("fast", answer(100, "Paris")))
//!     .hedge(Hedge::after(Duration::from_millis(300)))
//!     .build();
//!
//! let started = tokio::time::Instant::now();
//! let request = ChatRequest::new("chat", [Message::user("Capital of France?")]);
//! let response = router.oneshot(request).await?;
//! assert_eq!(response.text(), "Paris");
//! assert_eq!(started.elapsed(), Duration::from_millis(400));
//! assert!(response.trail.won_by_hedge());
//! assert_eq!(response.trail.attempts[0].outcome, AttemptOutcome::Cancelled);
//! # Ok(())
//! # }
//! ```
//!
//! # Mid-stream recovery
//!
//! When a committed stream breaks — a cut connection (a `StreamTruncated` error event), an
//! idle stall (the timeout error event of
//! [`AttemptTimeoutLayer`](crate::timeout::AttemptTimeoutLayer)), an end without the
//! provider's end of message, or an error frame — and the classifier does not call the
//! failure fatal, the router finishes the answer within the call's remaining deadline and
//! hop budget ([`FailoverBuilder::recover_streams`] turns this off). It walks the rest of
//! the plan, then the broken target itself if the failure is one worth retrying there (not
//! after a timeout: a target that went silent is not tried again in the call), skipping
//! targets whose gates refuse, and for each:
//!
//! 1. **Continuation**, when the target accepts an assistant prefill and the delivered
//!    content is text: the original request plus the text already delivered as a trailing
//!    assistant message. Its output is appended to the caller's stream.
//! 2. **Continuation by user message**, for targets that refuse a prefill (Claude models
//!    from 4.6 on): the delivered text as the assistant's turn, then a user message asking
//!    to continue it. The answer's first characters are held until they show how it joins:
//!    an answer that starts the reply over is matched like a restart (below); otherwise
//!    its repeat of the delivered end (at least four characters) is dropped and the rest
//!    appended.
//! 3. **Restart with prefix match** otherwise: the original request again. Its output is
//!    compared with what was delivered; while it matches nothing is sent, past it the rest
//!    flows to the caller. If it differs (other text, another tool, or an end before the
//!    delivered prefix), the stream ends with an error event: the caller cannot be given
//!    a coherent answer. A tool call broken inside its arguments is always restarted, the
//!    arguments matched like text; the caller keeps the call id it already has.
//! 4. When no target is left, or the deadline has passed, one error event: the original
//!    failure's kind, its message followed by why it was not recovered.
//!
//! Which form a target gets ([`Continuation`]): [`Target::continuation`] (or
//! [`Target::accepts_prefill`]) when set; otherwise the default of its
//! [`Target::provider`] and model (Anthropic and OpenAI-compatible servers a prefill,
//! Claude from 4.6 on a user message, OpenAI and Gemini a restart, since they answer
//! afresh instead of continuing); otherwise the protocol and model of the first response
//! the target gave; until then, restart only. A continuation refused with an
//! invalid-request error (the 400 a server gives for a final assistant message) moves the
//! target to the next form — a prefill to the user message, that to a restart — on the
//! same target, within the same hop ([`Failover::continuation`] reports where it stands);
//! the refusal is never what the caller sees.
//!
//! The caller's stream stays one message: recovery attempts' `Start` events are dropped.
//! Once a stream has broken, usage is reported once, at the end: one `Usage` event with
//! the sum over attempts (before the final error event if recovery fails). Each attempt
//! still settles its own target's rate limiter with its own usage. The trail gets one
//! [`RecoveryRecord`](seawall_core::RecoveryRecord) per break: the broken target, the
//! cause, the characters and content events delivered before it, and the outcome (path and
//! target that finished the answer, or why it failed); recovery attempts are recorded as
//! attempts.
//!
//! ```
//! use seawall::failover::{Failover, Target};
//! use seawall_core::{
//!     BoxError, ChatRequest, ChatResponse, ErrorKind, EventStream, FinishReason, LlmError,
//!     Message, ProviderKind, RecoveryPath, RecoveryOutcome, StreamAccumulator, StreamEvent,
//! };
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let streamed = |events: Vec<StreamEvent>| {
//!     ChatResponse::streaming(ProviderKind::Anthropic, "m", EventStream::from_events(events))
//! };
//! // The first target's connection is cut after "Paris is".
//! let cut = service_fn(move |_: ChatRequest| async move {
//!     Ok::<_, BoxError>(streamed(vec![
//!         StreamEvent::TextDelta("Paris".into()),
//!         StreamEvent::TextDelta(" is".into()),
//!         StreamEvent::Error(LlmError::new(ErrorKind::StreamTruncated, "connection reset")),
//!     ]))
//! });
//! // The second continues the prefill it is sent.
//! let continues = service_fn(move |request: ChatRequest| async move {
//!     let prefill = request.messages.last().map(Message::joined_text).unwrap_or_default();
//!     assert_eq!(prefill, "Paris is");
//!     Ok::<_, BoxError>(streamed(vec![
//!         StreamEvent::TextDelta(" the capital.".into()),
//!         StreamEvent::Finish(FinishReason::Stop),
//!     ]))
//! });
//! let router = Failover::builder()
//!     .target(Target::new("a", cut))
//!     .target(Target::new("b", continues).provider(ProviderKind::Anthropic))
//!     .build();
//!
//! let mut request = ChatRequest::new("chat", [Message::user("Capital of France?")]).streaming();
//! let trail = request.context.trail().clone(); // read after the stream ends
//! let mut response = router.oneshot(request).await?;
//! let mut stream = response.stream.take().expect("streamed");
//! let mut answer = StreamAccumulator::new();
//! while let Some(event) = stream.next().await {
//!     answer.push(&event)?;
//! }
//! assert_eq!(answer.text(), "Paris is the capital.");
//! assert!(answer.is_complete());
//! let recovery = &trail.snapshot().recoveries[0];
//! assert_eq!(recovery.delivered_chars, 8);
//! assert!(matches!(
//!     &recovery.outcome,
//!     RecoveryOutcome::Recovered { path: RecoveryPath::Continuation, target } if target.as_str() == "b"
//! ));
//! # Ok(())
//! # }
//! ```
//!
//! # Why a dedicated service rather than `tower::steer::Steer`
//!
//! `Steer` routes each call once and waits for **every** member to be ready before any
//! call; failover must walk an ordered plan within one call, consult per-target gates
//! before sending, and drive only the readiness of the member it is about to use. So the
//! router keeps its members as [`TargetService`]s (`BoxCloneSyncService`, boxed once when
//! the router is built), reports itself always ready, and in each attempt clones the chosen
//! member (one allocation), drives its `poll_ready` in the response future (for at most
//! the [readiness timeout](FailoverBuilder::ready_timeout)), and calls it.
//! The member's future is boxed by `BoxCloneSyncService`; the router's own future is a
//! hand-written state machine with no further box.
//!
//! ```
//! use std::sync::Arc;
//! use seawall::failover::{Failover, Strategy, Target};
//! use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason,
//!     LlmError, Message, ProviderKind,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Stand-ins for provider adapters: the first is down, the second answers.
//! let down = service_fn(|_: ChatRequest| async {
//!     Err::<ChatResponse, _>(LlmError::new(ErrorKind::Overloaded, "overloaded").with_status(529))
//! });
//! let up = service_fn(|request: ChatRequest| async move {
//!     let reply = AssistantMessage::text("Paris");
//!     Ok::<_, BoxError>(ChatResponse::new(
//!         ProviderKind::OpenAi, &*request.model, reply, FinishReason::Stop,
//!     ))
//! });
//!
//! let limiter = RateLimiter::new(
//!     "openai/gpt-4o-mini",
//!     RateLimitConfig::new().tokens(Rate::per_minute(200_000)),
//! );
//! let router = Failover::builder()
//!     .strategy(Strategy::Priority)
//!     .target(Target::new("anthropic/opus", down).model("claude-opus-4-1"))
//!     .target(
//!         Target::new(
//!             "openai/gpt-4o-mini",
//!             ServiceBuilder::new().layer(RateLimitLayer::new(limiter.clone())).service(up),
//!         )
//!         .model("gpt-4o-mini")
//!         .context_window(128_000)
//!         .gate(Arc::new(limiter)),
//!     )
//!     .build();
//!
//! let request = ChatRequest::new("smart", [Message::user("Capital of France?")]);
//! let response = router.oneshot(request).await?;
//! assert_eq!(response.model, "gpt-4o-mini");
//! assert_eq!(response.trail.attempts.len(), 2);
//! assert_eq!(response.trail.final_target.as_ref().map(|t| t.as_str()), Some("openai/gpt-4o-mini"));
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod gate;
mod hedge;
mod layer;
mod race;
mod service;
mod strategy;
mod stream;
mod target;

pub use self::error::{AllTargetsFailed, ErrorWithTrail};
pub use self::gate::{SkipReason, TargetGate};
pub use self::hedge::Hedge;
pub use self::layer::FailoverLayer;
pub use self::service::{Failover, FailoverBuilder};
pub use self::strategy::Strategy;
pub use self::target::{Continuation, Target, TargetService};
