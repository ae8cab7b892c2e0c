//! The router's response future.

use crate::timeout::TokioClock;
use seawall_core::Clock as _;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use seawall_core::{
    AllTargetsFailed, AttemptOutcome, AttemptRecord, BoxError, Charge, ChatRequest, ChatResponse,
    Classification, DeadlineExceeded, Disposition, ErrorKind, ErrorWithTrail, EventStream,
    LlmError, LlmRequest as _, RouteHint, StreamEvent, TokenEstimate, TrailRecorder, Usage,
};
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use super::gate::SkipReason;
use super::race::Race;
use super::service::Failover;
use super::stream::RelayStream;
use super::target::{Target, TargetService};

pub(crate) type MemberFuture = <TargetService as Service<ChatRequest>>::Future;

/// Walks the call's plan: skips targets whose gates refuse, sends the call to the next
/// one, and moves on when the classifier says the failure is worth a failover.
///
/// A streamed response is read up to its first content event (the commit point) before
/// it is returned, so failures before it fail over transparently.
pub struct ResponseFuture {
    walk: Walk,
    state: State,
    /// The streamed response being read up to the commit point, without its stream.
    /// Boxed so that the future, moved by every layer above the router, stays small on the
    /// path that never holds one.
    committing: Option<Box<ChatResponse>>,
    /// The events read before the commit point, replayed to the caller after it.
    buffered: Vec<StreamEvent>,
    /// Bounds the wait for a member's readiness; allocated the first time a member is not
    /// ready at once, then reused.
    not_ready: Option<Pin<Box<Sleep>>>,
}

enum State {
    Next,
    Ready {
        attempt: Attempt,
        service: TargetService,
    },
    Calling {
        attempt: Attempt,
        future: MemberFuture,
    },
    /// Reading `stream` up to the commit point.
    Committing {
        attempt: Attempt,
        stream: EventStream,
    },
    /// The hedge race that replaces the states above when the router hedges (allocated
    /// only then).
    Race(Box<Race>),
    Done,
}

/// One attempt on one target.
pub(crate) struct Attempt {
    pub(crate) index: usize,
    pub(crate) hop: u32,
    pub(crate) model: Arc<str>,
    pub(crate) started: Instant,
    /// When the member is skipped if it is still not ready.
    pub(crate) ready_by: Instant,
    pub(crate) limiter_wait_before: Duration,
    /// Sent while another attempt of the call was still running.
    pub(crate) hedge: bool,
}

/// The call's span and its current attempt's, boxed together and only when a subscriber
/// listens: the router's futures stay small (a span is 40 bytes) and a call nobody traces
/// allocates nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Traced(Option<Box<Spans>>);

#[derive(Debug, Clone)]
struct Spans {
    call: tracing::Span,
    attempt: tracing::Span,
}

impl Traced {
    fn new(call: tracing::Span) -> Self {
        Self((!call.is_disabled()).then(|| {
            Box::new(Spans {
                call,
                attempt: tracing::Span::none(),
            })
        }))
    }

    /// Records a stream's usage once it is known: the attempt's own on its span, or the
    /// call's total (summed over the attempts that recovered it) on the call's.
    pub(crate) fn record_usage(&self, usage: Usage, on_call: bool) {
        let Some(spans) = &self.0 else { return };
        let span = if on_call { &spans.call } else { &spans.attempt };
        span.record("gen_ai.usage.input_tokens", int(usage.input_tokens));
        span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
    }

    /// The call span's id, as the parent of an event or a span.
    pub(crate) fn id(&self) -> Option<tracing::Id> {
        self.0.as_ref().and_then(|spans| spans.call.id())
    }

    fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Enters the current attempt's span while the attempt's service is called or polled
    /// (its response and its stream), so what runs below it (the HTTP call) has it as the
    /// current span: a subscriber that propagates trace context sends the attempt's, and
    /// one that times spans by their last exit ends the attempt with its stream.
    pub(crate) fn in_attempt<R>(&self, f: impl FnOnce() -> R) -> R {
        let _attempt = self.0.as_ref().map(|spans| spans.attempt.enter());
        f()
    }

    /// Starts the next attempt's span (the previous one closes).
    fn attempt(&mut self, span: impl FnOnce(Option<tracing::Id>) -> tracing::Span) {
        if let Some(spans) = &mut self.0 {
            spans.attempt = span(spans.call.id());
        }
    }

    fn record(&self, field: &str, value: impl tracing::Value) {
        if let Some(spans) = &self.0 {
            spans.call.record(field, value);
        }
    }

    fn record_attempt(&self, field: &str, value: impl tracing::Value) {
        if let Some(spans) = &self.0 {
            spans.attempt.record(field, value);
        }
    }

    /// Swaps the current attempt's span with `span`: a hedge race keeps each attempt's
    /// span beside it, and puts it back here while it records that attempt.
    pub(crate) fn swap_attempt(&mut self, span: &mut tracing::Span) {
        if let Some(spans) = &mut self.0 {
            mem::swap(&mut spans.attempt, span);
        }
    }
}

/// How the wait for a member's readiness ended.
pub(crate) enum Readiness {
    Ready,
    Failed(BoxError),
    /// Still not ready at the attempt's `ready_by`.
    NotReady,
}

/// Polls `service` for readiness until `ready_by`. `timer` wakes the task then; it is
/// allocated the first time a member is not ready at once and reset for the next ones.
pub(crate) fn poll_ready_by(
    service: &mut TargetService,
    cx: &mut Context<'_>,
    ready_by: Instant,
    timer: &mut Option<Pin<Box<Sleep>>>,
) -> Poll<Readiness> {
    match service.poll_ready(cx) {
        Poll::Ready(Ok(())) => Poll::Ready(Readiness::Ready),
        Poll::Ready(Err(error)) => Poll::Ready(Readiness::Failed(error)),
        Poll::Pending => {
            let timer = match timer {
                Some(timer) => {
                    if timer.deadline() != ready_by {
                        timer.as_mut().reset(ready_by);
                    }
                    timer
                }
                None => timer.insert(Box::pin(sleep_until(ready_by))),
            };
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Readiness::NotReady),
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

/// The call's routing state: the plan, how far along it the call is, and the trail. The
/// response future owns it up to the commit point; a streamed response's relay takes it
/// over to recover a stream that breaks after it.
pub(crate) struct Walk {
    pub(crate) router: Failover,
    pub(crate) request: ChatRequest,
    pub(crate) trail: TrailRecorder,
    estimate: TokenEstimate,
    pub(crate) plan: Vec<usize>,
    pub(crate) next: u32,
    pub(crate) hops: u32,
    /// The call's span and its current attempt's (a stream's relay keeps them until the
    /// stream ends).
    pub(crate) span: Traced,
}

/// The span of one call through a router, with the OpenTelemetry GenAI attribute names;
/// the response's fields are recorded when they are known. Disabled (no cost beyond a
/// check) when no subscriber listens to `seawall::failover`.
fn call_span(request: &ChatRequest) -> Traced {
    Traced::new(tracing::info_span!(
        target: "seawall::failover",
        "chat",
        "gen_ai.operation.name" = "chat",
        "gen_ai.request.model" = &*request.model,
        "gen_ai.response.model" = tracing::field::Empty,
        "gen_ai.provider.name" = tracing::field::Empty,
        "gen_ai.usage.input_tokens" = tracing::field::Empty,
        "gen_ai.usage.output_tokens" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        "seawall.target" = tracing::field::Empty,
        "seawall.attempts" = tracing::field::Empty,
    ))
}

/// A count as a span field: signed, as OpenTelemetry's integer attributes are (an unsigned
/// field reaches an OpenTelemetry bridge as text).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records a response's model, provider and usage on the call's span and its attempt's.
fn record_response(span: &Traced, response: &ChatResponse) {
    let Some(spans) = &span.0 else { return };
    for span in [&spans.call, &spans.attempt] {
        span.record("gen_ai.response.model", response.model.as_str());
        span.record("gen_ai.provider.name", response.provider.as_str());
        if let Some(usage) = response.usage {
            span.record("gen_ai.usage.input_tokens", int(usage.input_tokens));
            span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
        }
    }
}

impl Walk {
    /// The next target that passes its gates, or the error that ends the call.
    pub(crate) fn next_attempt(&mut self) -> Result<(Attempt, TargetService), BoxError> {
        let shared = Arc::clone(&self.router.shared);
        loop {
            let reading = TokioClock.now();
            let now = Instant::from_std(reading.instant());
            let context = &self.request.context;
            if let Some(deadline) = context.deadline
                && deadline.is_expired(reading)
            {
                return Err(DeadlineExceeded::new(deadline.budget()).into());
            }
            if self.hops as usize >= shared.max_hops || self.next as usize >= self.plan.len() {
                let attempts = self.trail.read(|trail| trail.attempts.clone());
                return Err(AllTargetsFailed::new(attempts).into());
            }
            let index = self.plan[self.next as usize];
            self.next += 1;
            let target = &shared.targets[index];
            let model = target
                .model
                .clone()
                .unwrap_or_else(|| self.request.model.clone());
            let remaining = context.remaining(reading);
            if let Err(reason) = self.check_gates(target, now, remaining) {
                tracing::event!(
                    target: "seawall::failover",
                    parent: self.span.id(),
                    tracing::Level::DEBUG,
                    "seawall.target" = target.id.as_str(),
                    "seawall.skip_reason" = %reason,
                    "target skipped"
                );
                self.trail.record(AttemptRecord::new(
                    target.id.clone(),
                    model.to_string(),
                    AttemptOutcome::Skipped {
                        reason: reason.to_string(),
                    },
                ));
                continue;
            }
            let hop = self.hops;
            self.hops += 1;
            self.span.attempt(|parent| {
                tracing::info_span!(
                    target: "seawall::failover",
                    parent: parent,
                    "attempt",
                    "gen_ai.operation.name" = "chat",
                    "gen_ai.request.model" = &*model,
                    "gen_ai.response.model" = tracing::field::Empty,
                    "gen_ai.provider.name" = tracing::field::Empty,
                    "gen_ai.usage.input_tokens" = tracing::field::Empty,
                    "gen_ai.usage.output_tokens" = tracing::field::Empty,
                    "error.type" = tracing::field::Empty,
                    "seawall.target" = target.id.as_str(),
                    "seawall.attempt" = i64::from(hop),
                    "seawall.outcome" = tracing::field::Empty,
                    "seawall.wait_ms" = tracing::field::Empty,
                    "seawall.first_token_ms" = tracing::field::Empty,
                )
            });
            return Ok((
                Attempt {
                    index,
                    hop,
                    model,
                    started: now,
                    ready_by: self.ready_by(now),
                    limiter_wait_before: self.trail.read(|trail| trail.limiter_wait),
                    hedge: false,
                },
                target.service.clone(),
            ));
        }
    }

    /// When a member asked for readiness at `now` is skipped if it is still not ready:
    /// after the router's readiness timeout, and never past the call's deadline.
    pub(crate) fn ready_by(&self, now: Instant) -> Instant {
        let timeout = self.router.shared.ready_timeout;
        let by = now
            .checked_add(timeout)
            // A bound too far to represent: about thirty years.
            .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
            .unwrap_or(now);
        match self.request.context.deadline {
            // The deadline is on tokio's clock too (built by the layers from `TokioClock`).
            Some(deadline) => by.min(Instant::from_std(deadline.at()).max(now)),
            None => by,
        }
    }

    /// Skips `attempt`'s target, whose member was not ready by `attempt.ready_by`: records
    /// the skip (nothing was sent, so no hop is spent) and, for the latency-aware
    /// strategies, the wait as a failure.
    pub(crate) fn skip_not_ready(&mut self, attempt: &Attempt) {
        let shared = Arc::clone(&self.router.shared);
        let waited = Instant::now().saturating_duration_since(attempt.started);
        self.hops = self.hops.saturating_sub(1);
        self.trail.record(
            AttemptRecord::new(
                shared.targets[attempt.index].id.clone(),
                attempt.model.to_string(),
                AttemptOutcome::Skipped {
                    reason: SkipReason::NotReady { waited }.to_string(),
                },
            )
            .timed(Duration::ZERO, waited, None),
        );
        shared
            .latency
            .observe(attempt.index, waited + shared.failure_penalty);
    }

    /// The request for `attempt`: the target's model name and route.
    pub(crate) fn attempt_request(&self, attempt: &Attempt) -> ChatRequest {
        let target = &self.router.shared.targets[attempt.index];
        let mut request = self.request.clone();
        request.model = attempt.model.clone();
        request.context.route = RouteHint::new(Some(target.id.clone()), attempt.hop);
        request
    }

    fn check_gates(
        &self,
        target: &Target,
        now: Instant,
        remaining: Option<Duration>,
    ) -> Result<(), SkipReason> {
        if let Some(window) = target.context_window
            && self.estimate.total() > window
        {
            return Err(SkipReason::ContextTooSmall {
                needed: self.estimate.total(),
                window,
            });
        }
        for gate in &target.gates {
            if let Some(state) = gate.breaker_state() {
                self.trail
                    .update(|trail| trail.breaker_states.push((target.id.clone(), state)));
            }
            gate.check(now, &self.estimate, remaining)?;
        }
        Ok(())
    }

    /// Records an attempt; returns its latency.
    pub(crate) fn record(
        &self,
        attempt: &Attempt,
        outcome: AttemptOutcome,
        ttft: Option<Duration>,
    ) -> Duration {
        let target = &self.router.shared.targets[attempt.index];
        let latency = Instant::now().saturating_duration_since(attempt.started);
        let span = &self.span;
        if span.is_some() {
            match &outcome {
                AttemptOutcome::Failed { cause, .. } => {
                    span.record_attempt("seawall.outcome", "failed");
                    span.record_attempt("error.type", cause.as_str());
                }
                AttemptOutcome::Cancelled => {
                    span.record_attempt("seawall.outcome", "cancelled");
                }
                _ => {
                    span.record_attempt("seawall.outcome", "succeeded");
                }
            }
            if let Some(ttft) = ttft {
                span.record_attempt("seawall.first_token_ms", ttft.as_secs_f64() * 1e3);
            }
        }
        let wait = self.trail.update(|trail| {
            let wait = trail
                .limiter_wait
                .saturating_sub(attempt.limiter_wait_before);
            trail.attempts.push(
                AttemptRecord::new(target.id.clone(), attempt.model.to_string(), outcome)
                    .timed(wait, latency, ttft)
                    .hedged(attempt.hedge),
            );
            wait
        });
        if !wait.is_zero() {
            span.record_attempt("seawall.wait_ms", wait.as_secs_f64() * 1e3);
        }
        latency
    }

    /// The stack's verdict on `error`: the router's classifier, or the one it was called
    /// with, or the built-in table.
    pub(crate) fn classify(&self, error: &(dyn std::error::Error + 'static)) -> Classification {
        crate::classifier::classify(None, self.request.context.classifier.as_ref(), error)
    }

    /// Records a failed attempt and classifies its error.
    pub(crate) fn record_failure(
        &self,
        attempt: &Attempt,
        error: &(dyn std::error::Error + 'static),
    ) -> Classification {
        let shared = &self.router.shared;
        let verdict = self.classify(error);
        let outcome = AttemptOutcome::Failed {
            cause: verdict.cause,
            message: error.to_string(),
        };
        let latency = self.record(attempt, outcome, None);
        shared.latency.observe_at(
            attempt.index,
            latency + shared.failure_penalty,
            // When the attempt was recorded: `record` read the clock.
            attempt.started + latency,
        );
        verdict
    }

    /// Records a failed attempt; returns the error if it ends the call.
    pub(crate) fn failed(&self, attempt: &Attempt, error: BoxError) -> Option<BoxError> {
        let verdict = self.record_failure(attempt, &*error);
        let target = &self.router.shared.targets[attempt.index].id;
        tracing::event!(
            target: "seawall::failover",
            parent: self.span.id(),
            tracing::Level::INFO,
            "seawall.target" = target.as_str(),
            "error.type" = verdict.cause.as_str(),
            fatal = verdict.disposition == Disposition::Fatal,
            "attempt failed"
        );
        if verdict.disposition == Disposition::Fatal {
            let target = target.clone();
            self.trail.update(|trail| {
                trail.final_target = Some(target);
                trail.final_model = Some(attempt.model.to_string());
            });
            return Some(error);
        }
        None
    }

    /// Records a successful attempt as the call's final target.
    pub(crate) fn record_success(&self, attempt: &Attempt, model: &str, ttft: Option<Duration>) {
        let shared = &self.router.shared;
        let latency = self.record(attempt, AttemptOutcome::Succeeded, ttft);
        shared.latency.observe_at(
            attempt.index,
            ttft.unwrap_or(latency),
            attempt.started + latency,
        );
        if let Some(hedging) = &shared.hedging {
            hedging.first_tokens[attempt.index].observe(ttft.unwrap_or(latency));
        }
        let target = shared.targets[attempt.index].id.clone();
        let model = if model.is_empty() {
            attempt.model.to_string()
        } else {
            model.to_owned()
        };
        if self.span.is_some() {
            self.span.record("seawall.target", target.as_str());
            self.span.record("gen_ai.response.model", model.as_str());
            self.span.record("seawall.attempts", i64::from(self.hops));
            self.span
                .record_attempt("gen_ai.response.model", model.as_str());
        }
        self.trail.update(|trail| {
            trail.final_target = Some(target);
            trail.final_model = Some(model);
        });
    }

    /// What `attempt` used, on its own target and model, to be priced at their price.
    pub(crate) fn charge(&self, attempt: &Attempt, usage: Usage) -> Charge {
        let target = self.router.shared.targets[attempt.index].id.clone();
        Charge::new(Some(target), &*attempt.model, usage)
    }

    pub(crate) fn succeeded(
        &self,
        attempt: &Attempt,
        mut response: ChatResponse,
        ttft: Option<Duration>,
    ) -> ChatResponse {
        self.router
            .shared
            .learn_provider(attempt.index, response.provider, &response.model);
        self.record_success(attempt, &response.model, ttft);
        record_response(&self.span, &response);
        if let Some(usage) = response.usage {
            let charge = self.charge(attempt, usage);
            self.trail.update(|trail| {
                let used = trail.tokens_used.unwrap_or(0).saturating_add(usage.total());
                trail.tokens_used = Some(used);
                trail.charges.push(charge);
            });
        }
        response.trail = self.trail.shared();
        response
    }

    /// The relay's copy of the routing state (the plan moves; the rest is shared).
    fn hand_over(&mut self) -> Self {
        Self {
            router: self.router.clone(),
            request: self.request.clone(),
            trail: self.trail.clone(),
            estimate: self.estimate,
            plan: mem::take(&mut self.plan),
            next: self.next,
            hops: self.hops,
            span: self.span.clone(),
        }
    }

    /// The commit point of `attempt`'s stream, reached with `event` (its first content, or
    /// its end) after `buffered`: records the success and returns the response, whose
    /// stream relays the rest (and recovers it if it breaks).
    pub(crate) fn commit(
        &mut self,
        attempt: Attempt,
        response: ChatResponse,
        mut buffered: Vec<StreamEvent>,
        event: StreamEvent,
        stream: EventStream,
    ) -> ChatResponse {
        let ttft = event
            .is_content()
            .then(|| Instant::now().saturating_duration_since(attempt.started));
        buffered.push(event);
        let tokens_before = self.trail.update(|trail| trail.tokens_used);
        let upfront = response.usage;
        let mut response = self.succeeded(&attempt, response, ttft);
        let walk = self.hand_over();
        response.stream = Some(EventStream::new(RelayStream::new(
            buffered,
            stream,
            walk,
            attempt,
            upfront,
            tokens_before,
        )));
        response
    }

    /// The error that ends the call, with its trail (and its type on the call's span).
    pub(crate) fn with_trail(&self, error: BoxError) -> BoxError {
        if self.span.is_some() {
            self.span
                .record("error.type", self.classify(&*error).cause.as_str());
        }
        Box::new(ErrorWithTrail::new(error, self.trail.shared()))
    }
}

impl ResponseFuture {
    pub(crate) fn new(router: Failover, mut request: ChatRequest) -> Self {
        let trail = request.context.trail().clone();
        let shared = &router.shared;
        crate::classifier::install(shared.classifier.as_ref(), &mut request.context);
        let estimate = request.estimate_once(&*shared.estimator, shared.default_output_tokens);
        trail.update(|trail| {
            trail.tokens_estimated.get_or_insert(estimate.total());
        });
        let mut plan = Vec::with_capacity(shared.targets.len());
        router.plan_into(&mut plan);
        let span = call_span(&request);
        let state = match &shared.hedging {
            Some(hedging) => State::Race(Box::new(Race::new(hedging, shared.targets.len()))),
            None => State::Next,
        };
        Self {
            walk: Walk {
                router,
                request,
                trail,
                estimate,
                plan,
                next: 0,
                hops: 0,
                span,
            },
            state,
            committing: None,
            buffered: Vec::new(),
            not_ready: None,
        }
    }

    /// Records a failed attempt; returns the error if it ends the call.
    fn failed(&mut self, attempt: &Attempt, error: BoxError) -> Option<BoxError> {
        // Whatever the failed stream produced before its commit point is dropped unseen.
        self.committing = None;
        self.buffered.clear();
        self.walk.failed(attempt, error)
    }

    fn with_trail(&self, error: BoxError) -> BoxError {
        self.walk.with_trail(error)
    }
}

impl Future for ResponseFuture {
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match mem::replace(&mut this.state, State::Done) {
                State::Next => match this.walk.next_attempt() {
                    Ok((attempt, service)) => this.state = State::Ready { attempt, service },
                    Err(error) => return Poll::Ready(Err(this.with_trail(error))),
                },
                State::Ready {
                    attempt,
                    mut service,
                } => match poll_ready_by(&mut service, cx, attempt.ready_by, &mut this.not_ready) {
                    Poll::Pending => {
                        this.state = State::Ready { attempt, service };
                        return Poll::Pending;
                    }
                    Poll::Ready(Readiness::Ready) => {
                        let future = this
                            .walk
                            .span
                            .in_attempt(|| service.call(this.walk.attempt_request(&attempt)));
                        this.state = State::Calling { attempt, future };
                    }
                    Poll::Ready(Readiness::Failed(error)) => {
                        if let Some(error) = this.failed(&attempt, error) {
                            return Poll::Ready(Err(this.with_trail(error)));
                        }
                        this.state = State::Next;
                    }
                    Poll::Ready(Readiness::NotReady) => {
                        this.walk.skip_not_ready(&attempt);
                        this.state = State::Next;
                    }
                },
                State::Calling {
                    attempt,
                    mut future,
                } => match this.walk.span.in_attempt(|| future.as_mut().poll(cx)) {
                    Poll::Pending => {
                        this.state = State::Calling { attempt, future };
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(mut response)) => match response.stream.take() {
                        Some(stream) => {
                            this.committing = Some(Box::new(response));
                            this.buffered.clear();
                            this.state = State::Committing { attempt, stream };
                        }
                        None => {
                            return Poll::Ready(Ok(this.walk.succeeded(&attempt, response, None)));
                        }
                    },
                    Poll::Ready(Err(error)) => {
                        if let Some(error) = this.failed(&attempt, error) {
                            return Poll::Ready(Err(this.with_trail(error)));
                        }
                        this.state = State::Next;
                    }
                },
                State::Committing {
                    attempt,
                    mut stream,
                } => match this
                    .walk
                    .span
                    .in_attempt(|| Pin::new(&mut stream).poll_next(cx))
                {
                    Poll::Pending => {
                        this.state = State::Committing { attempt, stream };
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(event))
                        if event.is_content() || matches!(event, StreamEvent::Finish(_)) =>
                    {
                        // The commit point: from here on the caller owns the stream.
                        let Some(response) = this.committing.take() else {
                            return Poll::Ready(Err("failover stream lost its response".into()));
                        };
                        let buffered = mem::take(&mut this.buffered);
                        let response = this
                            .walk
                            .commit(attempt, *response, buffered, event, stream);
                        return Poll::Ready(Ok(response));
                    }
                    Poll::Ready(Some(StreamEvent::Error(error))) => {
                        if let Some(error) = this.failed(&attempt, Box::new(error)) {
                            return Poll::Ready(Err(this.with_trail(error)));
                        }
                        this.state = State::Next;
                    }
                    Poll::Ready(Some(event)) => {
                        this.buffered.push(event);
                        this.state = State::Committing { attempt, stream };
                    }
                    Poll::Ready(None) => {
                        let error = LlmError::new(
                            ErrorKind::StreamTruncated,
                            "the stream ended before any content",
                        );
                        if let Some(error) = this.failed(&attempt, Box::new(error)) {
                            return Poll::Ready(Err(this.with_trail(error)));
                        }
                        this.state = State::Next;
                    }
                },
                State::Race(mut race) => {
                    let output = race.poll(&mut this.walk, cx);
                    if output.is_pending() {
                        this.state = State::Race(race);
                    }
                    return output;
                }
                State::Done => {
                    return Poll::Ready(Err("failover future polled after completion".into()));
                }
            }
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Next => "next",
            State::Ready { .. } => "ready",
            State::Calling { .. } => "calling",
            State::Committing { .. } => "committing",
            State::Race(_) => "hedging",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("hops", &self.walk.hops)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::ResponseFuture;

    /// Every layer above the router moves its future: what only a streamed response needs
    /// is boxed.
    #[test]
    fn the_future_stays_small() {
        let size = std::mem::size_of::<ResponseFuture>();
        assert!(size <= 512, "the failover future is {size} bytes");
    }
}
