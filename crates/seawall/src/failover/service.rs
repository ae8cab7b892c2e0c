use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::{
    BoxError, ChatRequest, ChatResponse, Classifier, HeuristicEstimator, TargetId, TokenEstimator,
};
use tower_service::Service;

use super::future::ResponseFuture;
use super::hedge::{Hedge, Hedging};
use super::strategy::{Latencies, Rng, Strategy, plan_into};
use super::target::{Continuation, Target};

/// The failover router: tries a call's targets in the order of a plan until one answers.
///
/// Build it with [`Failover::builder`]. Clones share the targets and their latency
/// statistics.
#[derive(Clone)]
pub struct Failover {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) targets: Vec<Target>,
    pub(crate) weights: Vec<u32>,
    pub(crate) latency: Latencies,
    pub(crate) strategy: Strategy,
    pub(crate) max_hops: usize,
    pub(crate) estimator: Arc<dyn TokenEstimator>,
    pub(crate) default_output_tokens: u32,
    /// The router's own classifier, handed to every layer inside it.
    pub(crate) classifier: Option<Classifier>,
    pub(crate) failure_penalty: Duration,
    pub(crate) ready_timeout: Duration,
    pub(crate) rng: Rng,
    pub(crate) recover_streams: bool,
    /// Per target, how it finishes a broken stream: [`CONTINUATION_UNKNOWN`] until
    /// configured or learned, else a [`Continuation`] as a number.
    pub(crate) continuation: Vec<AtomicU8>,
    /// `None` unless hedging is on.
    pub(crate) hedging: Option<Hedging>,
}

pub(crate) const CONTINUATION_UNKNOWN: u8 = 0;

const fn continuation_code(continuation: Continuation) -> u8 {
    match continuation {
        Continuation::Prefill => 1,
        Continuation::UserMessage => 2,
        // Restart, and any form added later until it has a code.
        _ => 3,
    }
}

const fn continuation_of(code: u8) -> Option<Continuation> {
    match code {
        1 => Some(Continuation::Prefill),
        2 => Some(Continuation::UserMessage),
        3 => Some(Continuation::Restart),
        _ => None,
    }
}

impl Shared {
    /// How target `index` finishes a broken stream, once known (until then: restart).
    pub(crate) fn continuation(&self, index: usize) -> Continuation {
        continuation_of(self.continuation[index].load(Ordering::Relaxed))
            .unwrap_or(Continuation::Restart)
    }

    /// Learns target `index`'s protocol and model from a response, unless already known.
    pub(crate) fn learn_provider(
        &self,
        index: usize,
        provider: seawall_core::ProviderKind,
        model: &str,
    ) {
        let code = continuation_code(Continuation::default_for(provider, model));
        // Only an unknown state changes: configuration and rejections win.
        let _ = self.continuation[index].compare_exchange(
            CONTINUATION_UNKNOWN,
            code,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Remembers that target `index` refused `tried` (a 400): a prefill is followed by
    /// the user-message form, that by a restart.
    pub(crate) fn refuse_continuation(&self, index: usize, tried: Continuation) -> Continuation {
        let next = match tried {
            Continuation::Prefill => Continuation::UserMessage,
            _ => Continuation::Restart,
        };
        self.continuation[index].store(continuation_code(next), Ordering::Relaxed);
        next
    }
}

impl Failover {
    /// A builder with no target, [`Strategy::Priority`], and as many hops as targets.
    pub fn builder() -> FailoverBuilder {
        FailoverBuilder {
            targets: Vec::new(),
            strategy: Strategy::Priority,
            max_hops: None,
            estimator: Arc::new(HeuristicEstimator::default()),
            default_output_tokens: 1024,
            classifier: None,
            failure_penalty: Duration::from_secs(5),
            latency_decay: DEFAULT_LATENCY_DECAY,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            seed: 0x5EA_3A11,
            recover_streams: true,
            hedge: None,
        }
    }

    /// The order the next call would try the targets in (before gates are checked).
    pub fn plan(&self) -> Vec<TargetId> {
        let mut plan = Vec::with_capacity(self.shared.targets.len());
        self.plan_into(&mut plan);
        plan.into_iter()
            .map(|i| self.shared.targets[i].id.clone())
            .collect()
    }

    pub(crate) fn plan_into(&self, plan: &mut Vec<usize>) {
        let shared = &self.shared;
        plan_into(
            shared.strategy,
            &shared.weights,
            &shared.latency,
            &shared.rng,
            plan,
        );
    }

    /// Whether the target named `id` is sent continuations (an assistant prefill) to
    /// recover a broken stream: `Some(true)` or `Some(false)` once configured, learned
    /// from its protocol, or learned from a rejection; `None` while unknown (or no such
    /// target).
    pub fn accepts_prefill(&self, id: &str) -> Option<bool> {
        self.continuation(id)
            .map(|continuation| continuation == Continuation::Prefill)
    }

    /// How the target named `id` finishes a broken stream: configured, learned from its
    /// protocol and model, or from a refusal; `None` while unknown (or no such target).
    pub fn continuation(&self, id: &str) -> Option<Continuation> {
        let index = self
            .shared
            .targets
            .iter()
            .position(|target| target.id.as_str() == id)?;
        continuation_of(self.shared.continuation[index].load(Ordering::Relaxed))
    }

    /// Each target's moving average latency as the latency-aware strategies see it now
    /// (faded since its last sample, see [`Strategy::LeastLatency`]); `None` until
    /// measured.
    pub fn latencies(&self) -> Vec<(TargetId, Option<Duration>)> {
        let latency = &self.shared.latency;
        let now = latency.millis(tokio::time::Instant::now());
        self.shared
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| {
                let estimate = latency.measured(index).then(|| {
                    Duration::try_from_secs_f64(latency.estimate(index, now) / 1e9)
                        .unwrap_or(Duration::MAX)
                });
                (target.id.clone(), estimate)
            })
            .collect()
    }
}

impl fmt::Debug for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("targets", &self.shared.targets)
            .field("strategy", &self.shared.strategy)
            .field("max_hops", &self.shared.max_hops)
            .finish_non_exhaustive()
    }
}

/// Members are never polled here: each attempt drives its own member's readiness in the
/// response future, so one busy or broken target never blocks the others.
impl Service<ChatRequest> for Failover {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        ResponseFuture::new(self.clone(), request)
    }
}

/// Builds a [`Failover`].
#[derive(Clone)]
pub struct FailoverBuilder {
    targets: Vec<Target>,
    strategy: Strategy,
    max_hops: Option<usize>,
    estimator: Arc<dyn TokenEstimator>,
    default_output_tokens: u32,
    classifier: Option<Classifier>,
    failure_penalty: Duration,
    latency_decay: Duration,
    ready_timeout: Duration,
    seed: u64,
    recover_streams: bool,
    hedge: Option<Hedge>,
}

/// The default [`FailoverBuilder::ready_timeout`].
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(1);

/// The default [`FailoverBuilder::latency_decay`].
const DEFAULT_LATENCY_DECAY: Duration = Duration::from_secs(10);

impl FailoverBuilder {
    /// Adds a target; targets keep the order they are added in (the priority order).
    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// Puts `targets` before those added so far.
    pub(crate) fn prepend(mut self, mut targets: Vec<Target>) -> Self {
        targets.append(&mut self.targets);
        self.targets = targets;
        self
    }

    /// Adds targets.
    #[must_use]
    pub fn targets(mut self, targets: impl IntoIterator<Item = Target>) -> Self {
        self.targets.extend(targets);
        self
    }

    /// Sets how targets are ordered.
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the most attempts one call is sent (skipped targets do not count; the attempts
    /// that recover a broken stream do, a refused continuation and the restart that
    /// replaces it counting as one). Default: as many as there are targets.
    #[must_use]
    pub fn max_hops(mut self, hops: usize) -> Self {
        self.max_hops = Some(hops);
        self
    }

    /// Sets how prompts are weighed for the gates and context windows (default:
    /// [`HeuristicEstimator`], an upper bound).
    #[must_use]
    pub fn estimator(mut self, estimator: Arc<dyn TokenEstimator>) -> Self {
        self.estimator = estimator;
        self
    }

    /// Sets the output tokens reserved for a request with no cap (default 1024).
    #[must_use]
    pub fn default_output_tokens(mut self, tokens: u32) -> Self {
        self.default_output_tokens = tokens;
        self
    }

    /// Sets the stack's classifier: the router decides with it, and hands it in the
    /// request context to every layer of every target (their retry layers and breakers),
    /// unless a layer inside was given its own. Set it once, here. Default: the one the
    /// call arrives with, or the built-in table.
    ///
    /// ```
    /// use seawall::failover::Failover;
    /// use seawall_core::{ClassifyPolicy, ContentFilterPolicy};
    ///
    /// let policy = ClassifyPolicy::default().content_filter(ContentFilterPolicy::Failover);
    /// let builder = Failover::builder().classifier(policy);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn classifier(mut self, classifier: impl Into<Classifier>) -> Self {
        self.classifier = Some(classifier.into());
        self
    }

    /// Sets what a failed attempt adds to its latency sample for the latency-aware
    /// strategies (default 5 s), so failing targets sink in the order. Like any sample, it
    /// fades over the [decay time](Self::latency_decay): a target that failed is tried
    /// again once its estimate has faded below the others'.
    #[must_use]
    pub fn failure_penalty(mut self, penalty: Duration) -> Self {
        self.failure_penalty = penalty;
        self
    }

    /// Sets the time constant τ of the latency-aware strategies' moving averages (default
    /// 10 s, as in linkerd's and tower's `PeakEwma` balancers). A sample lower than the
    /// estimate moves it by `1 - exp(-elapsed / τ)` (`elapsed`: the time since the
    /// target's previous sample), and a target with no calls sees its estimate fade by
    /// `exp(-elapsed / τ)`, so its weight falls to about 1/e after τ and 1/20 after 3τ.
    /// With the defaults, a target that failed once (its latency plus the 5 s
    /// [penalty](Self::failure_penalty)) is tried again within about 4τ when the others
    /// answer in 100 ms, sooner when they are slower. A shorter τ forgets faster (and
    /// probes a slow target more often); a longer one is steadier. Timestamps have a
    /// resolution of 1 ms, which is also the smallest τ.
    #[must_use]
    pub fn latency_decay(mut self, decay: Duration) -> Self {
        self.latency_decay = decay;
        self
    }

    /// Sets how long an attempt waits for its target's service to be ready (default 1 s).
    ///
    /// The router drives a member's `poll_ready` in the response future, and members of
    /// the recommended stack are always ready; one that stays pending (a full `Buffer` or
    /// `ConcurrencyLimit`, a saturated connection pool) is waited for this long, never
    /// past the call's deadline, then skipped: nothing is sent, no hop is spent, the trail
    /// records a skip ([`SkipReason::NotReady`](super::SkipReason::NotReady)), the wait
    /// counts as a failure for the latency-aware strategies, and the call moves to the
    /// next target. The default lets a brief burst of backpressure clear without letting
    /// a stuck member hold the call; a call whose only target never becomes ready ends
    /// with [`AllTargetsFailed`](super::AllTargetsFailed).
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Seeds the random source of the weighted and P2C strategies.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether a stream that breaks after its commit point is recovered (continued or
    /// restarted on a target, within the remaining deadline and hops) rather than ended
    /// with an error event. Default: on.
    #[must_use]
    pub fn recover_streams(mut self, recover: bool) -> Self {
        self.recover_streams = recover;
        self
    }

    /// Hedges slow attempts (see [`Hedge`]); off by default. With hedging off, a call
    /// allocates nothing for it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall::failover::{Failover, Hedge};
    ///
    /// // p95 of each target's first-token time, between 50 ms and 2 s; 300 ms until a
    /// // target has 20 samples.
    /// let hedge = Hedge::after(Duration::from_millis(300))
    ///     .quantile(0.95)
    ///     .floor(Duration::from_millis(50))
    ///     .ceiling(Duration::from_secs(2));
    /// let builder = Failover::builder().hedge(hedge);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.hedge = Some(hedge);
        self
    }

    /// The router.
    pub fn build(self) -> Failover {
        let hedging = self
            .hedge
            .map(|policy| Hedging::new(policy, self.targets.len()));
        let weights = self.targets.iter().map(|t| t.weight).collect();
        let latency = Latencies::new(self.targets.len(), self.latency_decay);
        let continuation = self
            .targets
            .iter()
            .map(|target| {
                let known = target.continuation.or_else(|| {
                    let provider = target.provider?;
                    Some(Continuation::default_for(
                        provider,
                        target.model.as_deref().unwrap_or_default(),
                    ))
                });
                AtomicU8::new(known.map_or(CONTINUATION_UNKNOWN, continuation_code))
            })
            .collect();
        Failover {
            shared: Arc::new(Shared {
                recover_streams: self.recover_streams,
                continuation,
                hedging,
                max_hops: self.max_hops.unwrap_or(self.targets.len()),
                targets: self.targets,
                weights,
                latency,
                strategy: self.strategy,
                estimator: self.estimator,
                default_output_tokens: self.default_output_tokens,
                classifier: self.classifier,
                failure_penalty: self.failure_penalty,
                ready_timeout: self.ready_timeout,
                rng: Rng::new(self.seed),
            }),
        }
    }
}

impl fmt::Debug for FailoverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverBuilder")
            .field("targets", &self.targets)
            .field("strategy", &self.strategy)
            .field("max_hops", &self.max_hops)
            .finish_non_exhaustive()
    }
}
