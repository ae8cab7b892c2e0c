//! Time to first token with and without hedging, on tokio's paused clock.
//!
//! Two streaming targets answer their first token in 200–400 ms; the primary, one call in
//! ten, takes 3 s longer. 2000 calls go through a failover router four ways: no hedge, a
//! fixed 500 ms hedge, and hedges after the p90 and the p95 of the primary's observed
//! first-token times. Each line gives the percentiles of time to first token and how many
//! extra upstream calls the hedges cost.
//!
//! ```text
//! cargo run -p seawall --example hedge_tail
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall::failover::{Failover, Hedge, Target};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, EventStream, FinishReason, Message, ProviderKind,
    StreamEvent,
};
use tokio::time::Instant;
use tower::{ServiceExt, service_fn};

const CALLS: u64 = 2_000;

/// SplitMix64: a deterministic draw for call `n` of target `salt`.
fn draw(n: u64, salt: u64) -> u64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A streaming target whose first token comes after 200–400 ms, plus `slow` one call in
/// ten; counts its calls.
fn target(
    salt: u64,
    slow: Duration,
    calls: Arc<AtomicU64>,
) -> impl tower::Service<
    ChatRequest,
    Response = ChatResponse,
    Error = BoxError,
    Future = impl Future<Output = Result<ChatResponse, BoxError>> + Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |request: ChatRequest| {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        let r = draw(n, salt);
        let mut first = Duration::from_millis(200 + r % 201);
        if (r >> 32) % 10 == 0 {
            first += slow;
        }
        async move {
            let stream = async_stream(first);
            Ok::<_, BoxError>(ChatResponse::streaming(
                ProviderKind::OpenAi,
                &*request.model,
                stream,
            ))
        }
    })
}

/// A stream whose first token comes after `first`.
fn async_stream(first: Duration) -> EventStream {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        tokio::time::sleep(first).await;
        let _ = sender.send(StreamEvent::TextDelta("Paris".into()));
        let _ = sender.send(StreamEvent::Finish(FinishReason::Stop));
    });
    EventStream::new(Receiver(receiver))
}

struct Receiver(tokio::sync::mpsc::UnboundedReceiver<StreamEvent>);

impl futures_core::Stream for Receiver {
    type Item = StreamEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<StreamEvent>> {
        self.0.poll_recv(cx)
    }
}

async fn run(name: &str, hedge: Option<Hedge>) {
    let (a, b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut builder = Failover::builder()
        .target(Target::new(
            "a",
            target(1, Duration::from_secs(3), a.clone()),
        ))
        .target(Target::new("b", target(2, Duration::ZERO, b.clone())));
    if let Some(hedge) = hedge {
        builder = builder.hedge(hedge);
    }
    let router = builder.build();
    let mut ttft = Vec::with_capacity(CALLS as usize);
    for _ in 0..CALLS {
        let request = ChatRequest::new("chat", [Message::user("Capital of France?")]).streaming();
        let started = Instant::now();
        let response = router.clone().oneshot(request).await.expect("answered");
        ttft.push(started.elapsed());
        drop(response);
    }
    ttft.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * ttft.len() as f64).ceil() as usize).clamp(1, ttft.len()) - 1;
        ttft[rank].as_millis()
    };
    let sent = a.load(Ordering::Relaxed) + b.load(Ordering::Relaxed);
    println!(
        "{name:<22} p50 {:>5} ms  p90 {:>5} ms  p99 {:>5} ms  max {:>5} ms  extra calls {:>4} ({:.1} %)",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        sent - CALLS,
        (sent - CALLS) as f64 * 100.0 / CALLS as f64,
    );
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    println!("{CALLS} streamed calls; the primary is 3 s slower one call in ten");
    run("no hedge", None).await;
    let fixed = Hedge::after(Duration::from_millis(500));
    run("hedge after 500 ms", Some(fixed.clone())).await;
    let quantile = |q| fixed.clone().quantile(q).floor(Duration::from_millis(50));
    run("hedge after p90", Some(quantile(0.9))).await;
    run("hedge after p95", Some(quantile(0.95))).await;
}
