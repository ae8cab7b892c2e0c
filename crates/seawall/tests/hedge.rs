//! Hedged requests inside the failover router, on tokio's paused clock.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::failover::{Failover, Hedge, Target};
use seawall::rate_limit::{Rate, RateLimitConfig, RateLimitLayer, RateLimiter};
use seawall::retry::TpsBudget;
use seawall_core::{
    AttemptOutcome, BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason, LlmError,
    StreamEvent, Usage,
};
use support::capture::{Capture, field};
use support::{collect, reply, request, streamed, streaming};
use tokio::time::{Instant, sleep};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A target whose call number `n` (from 0) answers per `script(n)` after the wait it
/// returns; records when each call was made and whether its future was dropped unfinished.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<Mutex<Vec<Instant>>>,
    dropped: Arc<AtomicUsize>,
}

type Script = fn(usize) -> (Duration, Result<&'static str, ErrorKind>);

impl Upstream {
    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    fn service(
        &self,
        script: Script,
    ) -> impl tower::Service<
        ChatRequest,
        Response = ChatResponse,
        Error = BoxError,
        Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static {
        let this = self.clone();
        service_fn(move |request: ChatRequest| {
            let n = {
                let mut calls = this.calls.lock().unwrap();
                calls.push(Instant::now());
                calls.len() - 1
            };
            let (wait, outcome) = script(n);
            let dropped = this.dropped.clone();
            async move {
                sleep(wait).await;
                match outcome {
                    Ok(text) => Ok(reply(&request.model, text)),
                    Err(kind) => {
                        let status = if kind == ErrorKind::InvalidRequest {
                            400
                        } else {
                            529
                        };
                        Err(LlmError::new(kind, "failed").with_status(status).into())
                    }
                }
            }
            .with_drop_count(dropped)
        })
    }
}

/// Counts the futures dropped before they finished.
trait WithDropCount: Future + Sized {
    fn with_drop_count(self, dropped: Arc<AtomicUsize>) -> Counted<Self> {
        Counted {
            inner: Box::pin(self),
            dropped,
            done: false,
        }
    }
}

impl<F: Future> WithDropCount for F {}

struct Counted<F> {
    inner: std::pin::Pin<Box<F>>,
    dropped: Arc<AtomicUsize>,
    done: bool,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let output = std::task::ready!(self.inner.as_mut().poll(cx));
        self.done = true;
        std::task::Poll::Ready(output)
    }
}

impl<F> Drop for Counted<F> {
    fn drop(&mut self) {
        if !self.done {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn outcomes(trail: &seawall_core::Trail) -> Vec<(String, &'static str, bool)> {
    trail
        .attempts
        .iter()
        .map(|attempt| {
            let outcome = match &attempt.outcome {
                AttemptOutcome::Succeeded => "succeeded",
                AttemptOutcome::Failed { .. } => "failed",
                AttemptOutcome::Skipped { .. } => "skipped",
                AttemptOutcome::Cancelled => "cancelled",
                other => panic!("an outcome this test does not know: {other:?}"),
            };
            (attempt.target.to_string(), outcome, attempt.hedge)
        })
        .collect()
}

fn row(target: &str, outcome: &'static str, hedge: bool) -> (String, &'static str, bool) {
    (target.to_owned(), outcome, hedge)
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(start_paused = true)]
async fn a_slow_primary_is_hedged_after_exactly_the_delay_and_the_hedge_wins() {
    let capture = Capture::default();
    let _guard = capture.install();
    let (a, b) = (Upstream::default(), Upstream::default());
    let router = Failover::builder()
        .target(Target::new("a", a.service(|_| (MS(10_000), Ok("slow")))))
        .target(Target::new("b", b.service(|_| (MS(50), Ok("fast")))))
        .hedge(Hedge::after(MS(200)))
        .build();

    let started = Instant::now();
    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "fast");
    assert_eq!(
        started.elapsed(),
        MS(250),
        "hedged at 200 ms, answered 50 ms later"
    );
    assert_eq!(b.calls(), vec![started + MS(200)]);
    assert_eq!(a.dropped(), 1, "the primary's request was cancelled");
    let trail = &response.trail;
    assert_eq!(
        outcomes(trail),
        vec![row("a", "cancelled", false), row("b", "succeeded", true)]
    );
    assert!(trail.won_by_hedge());
    assert_eq!(trail.hedges_sent(), 1);
    assert_eq!(trail.attempts[0].latency, MS(250));
    assert_eq!(trail.final_target.as_ref().unwrap().as_str(), "b");

    let sent = capture.events("hedge sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(field(&sent[0], "seawall.target"), "b");
    assert_eq!(field(&sent[0], "seawall.hedged_target"), "a");
    assert_eq!(field(&sent[0], "seawall.hedge_after_ms"), "200.0");
    let won = capture.events("hedge won");
    assert_eq!(won.len(), 1);
    assert_eq!(field(&won[0], "seawall.target"), "b");
    let outcomes: Vec<String> = capture
        .spans("attempt")
        .iter()
        .map(|span| {
            format!(
                "{}:{}",
                field(span, "seawall.target"),
                field(span, "seawall.outcome")
            )
        })
        .collect();
    assert_eq!(outcomes, vec!["a:cancelled", "b:succeeded"]);
}

#[tokio::test(start_paused = true)]
async fn a_fast_primary_sends_no_hedge() {
    let (a, b) = (Upstream::default(), Upstream::default());
    let router = Failover::builder()
        .target(Target::new("a", a.service(|_| (MS(150), Ok("a")))))
        .target(Target::new("b", b.service(|_| (MS(0), Ok("b")))))
        .hedge(Hedge::after(MS(200)))
        .build();

    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "a");
    sleep(MS(1_000)).await;
    assert!(b.calls().is_empty());
    assert_eq!(
        outcomes(&response.trail),
        vec![row("a", "succeeded", false)]
    );
    assert_eq!(response.trail.hedges_sent(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_empty_retry_budget_sends_no_hedge() {
    let (a, b) = (Upstream::default(), Upstream::default());
    // The slow target's retry budget holds one withdrawal (1 per second over 1 s), and
    // nothing deposits into it: the first call's hedge takes it.
    let budget = Arc::new(TpsBudget::new(Duration::from_secs(1), 1, 0.0));
    let router = Failover::builder()
        .target(Target::new("a", a.service(|_| (MS(400), Ok("slow")))).retry_budget(budget.clone()))
        .target(Target::new("b", b.service(|_| (MS(50), Ok("fast")))))
        .hedge(Hedge::after(MS(100)))
        .build();

    let first = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(first.text(), "fast");
    let started = Instant::now();
    let second = router.oneshot(request()).await.unwrap();
    assert_eq!(second.text(), "slow");
    assert_eq!(
        started.elapsed(),
        MS(400),
        "no hedge: the primary's own time"
    );
    assert_eq!(b.calls().len(), 1);
    assert_eq!(outcomes(&second.trail), vec![row("a", "succeeded", false)]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_hedges_before_its_first_content_and_the_losers_usage_is_charged() {
    // The primary's stream opens with its usage at once, and its first content only
    // after 1 s; the hedge's content comes 100 ms after it is sent.
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let primary = service_fn(move |_: ChatRequest| {
        let (response, events) = streaming();
        let flag = flag.clone();
        tokio::spawn(async move {
            events.send(StreamEvent::Usage(Usage::new(40, 0))).unwrap();
            sleep(MS(1_000)).await;
            // The router dropped the stream: nobody receives this.
            flag.store(
                events.send(StreamEvent::TextDelta("late".into())).is_err(),
                Ordering::SeqCst,
            );
        });
        async move { Ok::<_, BoxError>(response) }
    });
    let hedge = service_fn(|_: ChatRequest| async {
        Ok::<_, BoxError>(streamed(
            "m",
            MS(100),
            vec![
                StreamEvent::TextDelta("Paris".into()),
                StreamEvent::Finish(FinishReason::Stop),
            ],
        ))
    });
    let router = Failover::builder()
        .target(Target::new("a", primary))
        .target(Target::new("b", hedge))
        .hedge(Hedge::after(MS(200)))
        .build();

    let started = Instant::now();
    let mut response = router.oneshot(request().streaming()).await.unwrap();
    assert_eq!(started.elapsed(), MS(300));
    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(events[0], StreamEvent::TextDelta("Paris".into()));
    let trail = &response.trail;
    assert_eq!(
        outcomes(trail),
        vec![row("a", "cancelled", false), row("b", "succeeded", true)]
    );
    assert_eq!(trail.attempts[1].time_to_first_token, Some(MS(100)));
    assert_eq!(
        trail.charges.len(),
        1,
        "the loser's usage: {:?}",
        trail.charges
    );
    assert_eq!(trail.charges[0].target.as_ref().unwrap().as_str(), "a");
    assert_eq!(trail.charges[0].usage, Usage::new(40, 0));
    sleep(MS(1_000)).await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the primary's stream was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_never_hedged_after_its_first_content() {
    let b = Upstream::default();
    let primary = service_fn(|_: ChatRequest| {
        let (response, events) = streaming();
        tokio::spawn(async move {
            sleep(MS(100)).await;
            events.send(StreamEvent::TextDelta("Pa".into())).unwrap();
            // A long pause after the commit point: nothing is hedged now.
            sleep(MS(2_000)).await;
            events.send(StreamEvent::TextDelta("ris".into())).unwrap();
            events
                .send(StreamEvent::Finish(FinishReason::Stop))
                .unwrap();
        });
        async move { Ok::<_, BoxError>(response) }
    });
    let router = Failover::builder()
        .target(Target::new("a", primary))
        .target(Target::new("b", b.service(|_| (MS(0), Ok("b")))))
        .hedge(Hedge::after(MS(200)))
        .build();

    let mut response = router.oneshot(request().streaming()).await.unwrap();
    let events = collect(response.stream.take().unwrap()).await;
    assert_eq!(events.len(), 3);
    assert!(b.calls().is_empty(), "no hedge after the commit point");
    assert_eq!(
        outcomes(&response.trail),
        vec![row("a", "succeeded", false)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_quantile_delay_follows_observed_first_token_times() {
    let (a, b) = (Upstream::default(), Upstream::default());
    // Four answers in 100, 120, 140 and 160 ms, then one that hangs.
    let router = Failover::builder()
        .target(Target::new(
            "a",
            a.service(|n| match n {
                0..4 => (MS(100 + 20 * n as u64), Ok("a")),
                _ => (MS(60_000), Ok("a")),
            }),
        ))
        .target(Target::new("b", b.service(|_| (MS(10), Ok("b")))))
        .hedge(Hedge::after(MS(1_000)).quantile(0.75).min_samples(4))
        .build();

    for _ in 0..4 {
        // Until four samples, the fixed 1 s: none of these is hedged.
        assert_eq!(router.clone().oneshot(request()).await.unwrap().text(), "a");
    }
    assert!(b.calls().is_empty());
    let started = Instant::now();
    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "b");
    assert_eq!(
        b.calls(),
        vec![started + MS(140)],
        "the p75 of 100, 120, 140 and 160 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_hedge_does_not_end_the_call_while_the_primary_runs() {
    let (a, b) = (Upstream::default(), Upstream::default());
    let router = Failover::builder()
        .target(Target::new("a", a.service(|_| (MS(1_000), Ok("a")))))
        .target(Target::new(
            "b",
            b.service(|_| (MS(50), Err(ErrorKind::Overloaded))),
        ))
        .hedge(Hedge::after(MS(200)))
        .build();

    let started = Instant::now();
    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "a");
    assert_eq!(started.elapsed(), MS(1_000));
    assert_eq!(
        outcomes(&response.trail),
        vec![row("b", "failed", true), row("a", "succeeded", false)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_primary_does_not_end_the_call_while_the_hedge_runs() {
    let (a, b) = (Upstream::default(), Upstream::default());
    let router = Failover::builder()
        .target(Target::new(
            "a",
            a.service(|_| (MS(300), Err(ErrorKind::Overloaded))),
        ))
        .target(Target::new("b", b.service(|_| (MS(500), Ok("b")))))
        .hedge(Hedge::after(MS(200)))
        .build();

    let started = Instant::now();
    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "b");
    assert_eq!(
        started.elapsed(),
        MS(700),
        "the hedge's own time, not a new attempt"
    );
    assert_eq!(b.calls().len(), 1);
    assert_eq!(
        outcomes(&response.trail),
        vec![row("a", "failed", false), row("b", "succeeded", true)]
    );
}

#[tokio::test(start_paused = true)]
async fn at_most_max_extra_hedges_are_in_flight() {
    let (a, b, c) = (
        Upstream::default(),
        Upstream::default(),
        Upstream::default(),
    );
    let router = Failover::builder()
        .target(Target::new("a", a.service(|_| (MS(5_000), Ok("a")))))
        .target(Target::new("b", b.service(|_| (MS(5_000), Ok("b")))))
        .target(Target::new("c", c.service(|_| (MS(100), Ok("c")))))
        .hedge(Hedge::after(MS(200)))
        .build();
    let started = Instant::now();
    let response = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(
        response.text(),
        "a",
        "one hedge (b): c is never sent the call"
    );
    assert!(c.calls().is_empty());
    assert_eq!(started.elapsed(), MS(5_000));
    assert_eq!(b.dropped(), 1);

    let router = Failover::builder()
        .target(Target::new("a", a.service(|_| (MS(5_000), Ok("a")))))
        .target(Target::new("b", b.service(|_| (MS(5_000), Ok("b")))))
        .target(Target::new("c", c.service(|_| (MS(100), Ok("c")))))
        .hedge(Hedge::after(MS(200)).max_extra(2))
        .build();
    let started = Instant::now();
    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "c");
    // b 200 ms after a, c 200 ms after b.
    assert_eq!(c.calls(), vec![started + MS(400)]);
    assert_eq!(response.trail.hedges_sent(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_limiter_takes_back_the_cancelled_attempt() {
    let limiter = RateLimiter::new(
        "a",
        RateLimitConfig::new()
            .requests(Rate::per_minute(60))
            .tokens(Rate::per_minute(100_000)),
    );
    let a = Upstream::default();
    let slow = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(a.service(|_| (MS(10_000), Ok("slow"))));
    let answered = Arc::new(AtomicBool::new(false));
    let seen = limiter.clone();
    let in_flight_at_hedge = Arc::new(AtomicUsize::new(usize::MAX));
    let record = in_flight_at_hedge.clone();
    let fast = service_fn(move |request: ChatRequest| {
        let requests = seen.snapshot().requests_in_flight;
        record.store(usize::try_from(requests).unwrap(), Ordering::SeqCst);
        let answered = answered.clone();
        async move {
            answered.store(true, Ordering::SeqCst);
            Ok::<_, BoxError>(reply(&request.model, "fast"))
        }
    });
    let router = Failover::builder()
        .target(Target::new("a", slow).gate(Arc::new(limiter.clone())))
        .target(Target::new("b", fast))
        .hedge(Hedge::after(MS(200)))
        .build();

    let response = router.oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "fast");
    assert_eq!(
        in_flight_at_hedge.load(Ordering::SeqCst),
        1,
        "the primary held its reservation"
    );
    let after = limiter.snapshot();
    assert_eq!(
        after.requests_in_flight, 0,
        "the cancelled attempt's reservation is released"
    );
    assert_eq!(after.tokens_in_flight, 0);
    assert_eq!(a.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn only_a_loser_sent_before_the_winner_counts_toward_its_targets_latency() {
    let (a, b) = (Upstream::default(), Upstream::default());
    let router = Failover::builder()
        .target(Target::new(
            "a",
            a.service(|n| (MS(if n == 0 { 210 } else { 5_000 }), Ok("a"))),
        ))
        .target(Target::new("b", b.service(|_| (MS(100), Ok("b")))))
        .hedge(Hedge::after(MS(200)))
        .build();

    // The primary wins 10 ms after the hedge was sent: the hedge's 10 ms say nothing of b.
    let response = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "a");
    assert_eq!(
        outcomes(&response.trail),
        vec![row("b", "cancelled", true), row("a", "succeeded", false)]
    );
    assert_eq!(b.dropped(), 1);
    let latencies = measured(&router);
    assert_eq!(latencies, vec![Some(210), None], "b is still unmeasured");

    // The hedge wins: the primary ran 300 ms without an answer, a lower bound of a's time.
    let response = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "b");
    assert_eq!(measured(&router), vec![Some(300), Some(100)]);
}

/// Each target's latency estimate, in whole milliseconds (estimates fade with time).
fn measured(router: &Failover) -> Vec<Option<u64>> {
    router
        .latencies()
        .into_iter()
        .map(|(_, estimate)| estimate.map(|d| (d.as_secs_f64() * 1e3).round() as u64))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_fatal_failure_waits_for_the_other_attempt_and_ends_the_call_if_it_fails_too() {
    let (a, b, c) = (
        Upstream::default(),
        Upstream::default(),
        Upstream::default(),
    );
    // The hedge is refused as invalid (fatal) at 250 ms; the primary still answers.
    let router = Failover::builder()
        .target(Target::new(
            "a",
            a.service(|n| match n {
                0 => (MS(1_000), Ok("a")),
                _ => (MS(1_000), Err(ErrorKind::Overloaded)),
            }),
        ))
        .target(Target::new(
            "b",
            b.service(|_| (MS(50), Err(ErrorKind::InvalidRequest))),
        ))
        .target(Target::new("c", c.service(|_| (MS(0), Ok("c")))))
        .hedge(Hedge::after(MS(200)))
        .build();
    let response = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.text(), "a");

    // Now the primary fails too, after the fatal refusal: the call ends with the
    // refusal, and c (which a failover would try) is never sent it.
    let error = router.oneshot(request()).await.unwrap_err();
    let trail = seawall_core::ErrorWithTrail::find(&*error).unwrap().trail();
    assert_eq!(
        outcomes(trail),
        vec![row("b", "failed", true), row("a", "failed", false)]
    );
    let refusal = seawall_core::ErrorWithTrail::find(&*error)
        .unwrap()
        .downcast_inner::<LlmError>()
        .unwrap();
    assert_eq!(refusal.kind(), ErrorKind::InvalidRequest, "{error}");
    assert!(c.calls().is_empty());
}
