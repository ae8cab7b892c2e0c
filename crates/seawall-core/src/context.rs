use std::time::{Duration, Instant};

use crate::classify::Classifier;
use crate::provider::TargetId;
use crate::trail::TrailRecorder;

/// The call's one overall deadline, which every layer inside sees.
///
/// It holds a `std::time::Instant` because this crate has no runtime, but the layers create
/// it from tokio's clock (`tokio::time::Instant::now().into_std()`) and pass tokio's `now`
/// to [`remaining`](Self::remaining), so under a paused test clock the deadline moves with
/// the paused time. This type never reads a clock itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` after `start`.
    pub fn new(start: Instant, budget: Duration) -> Self {
        Self {
            at: start.checked_add(budget).unwrap_or(start),
            budget,
        }
    }

    /// The instant the deadline passes.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The whole budget the call was given.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// What is left of the budget at `now`; zero once passed.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// Whether the deadline has passed at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.at
    }

    /// Whether waiting `wait` from `now` still leaves some budget.
    pub fn fits(&self, now: Instant, wait: Duration) -> bool {
        wait < self.remaining(now)
    }

    /// The earlier of this deadline and `other`.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        if other.at < self.at { other } else { self }
    }
}

/// Which target the failover layer should send the current attempt to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteHint {
    /// The target chosen for this attempt; `None` lets the router choose.
    pub target: Option<TargetId>,
    /// How many targets the call has moved through so far.
    pub hop: u32,
}

/// The caller's instructions to a response cache, per call (the gateway reads them from the
/// `Cache-Control` request header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheDirectives {
    /// Do not store this call's answer.
    pub no_store: bool,
    /// Do not answer from the cache (the fresh answer may still be stored).
    pub no_cache: bool,
    /// Accept a cached answer only up to this age.
    pub max_age: Option<Duration>,
}

impl CacheDirectives {
    /// Do not store this call's answer.
    #[must_use]
    pub const fn no_store(mut self) -> Self {
        self.no_store = true;
        self
    }

    /// Do not answer from the cache.
    #[must_use]
    pub const fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// Accept a cached answer only up to `age`.
    #[must_use]
    pub const fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Reads a `Cache-Control` header value (`no-store`, `no-cache`, `max-age=N`); unknown
    /// directives are ignored.
    pub fn from_header(value: &str) -> Self {
        let mut control = Self::default();
        for directive in value.split(',').map(str::trim) {
            let (name, argument) = directive
                .split_once('=')
                .map_or((directive, None), |(n, a)| (n.trim(), Some(a.trim())));
            match name.to_ascii_lowercase().as_str() {
                "no-store" => control.no_store = true,
                "no-cache" => control.no_cache = true,
                "max-age" => {
                    if let Some(secs) = argument.and_then(|a| a.trim_matches('"').parse().ok()) {
                        control.max_age = Some(Duration::from_secs(secs));
                    }
                }
                _ => {}
            }
        }
        control
    }
}

/// Per-call context carried in every [`ChatRequest`](crate::ChatRequest).
///
/// Retries and failover clone the request, and the clones share the same context values
/// (the trail recorder is shared, not copied).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestContext {
    /// The overall deadline, set by the outermost deadline layer (or by the caller).
    pub deadline: Option<Deadline>,
    /// The attempt number, from 0 for the first.
    pub attempt: u32,
    /// Where this attempt goes.
    pub route: RouteHint,
    /// The call's trail, if a layer installed one.
    pub trail: Option<TrailRecorder>,
    /// The caller's instructions to a response cache for this call.
    pub cache: Option<CacheDirectives>,
    /// The stack's classifier, set by the outermost layer that was given one (the failover
    /// router, or a target stack used alone); the layers inside decide with it unless they
    /// were given their own.
    pub classifier: Option<Classifier>,
}

impl RequestContext {
    /// What is left of the deadline at `now`, or `None` when there is no deadline.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|deadline| deadline.remaining(now))
    }

    /// The call's trail recorder, installing one if there is none yet.
    pub fn trail(&mut self) -> &TrailRecorder {
        self.trail.get_or_insert_with(TrailRecorder::new)
    }
}
