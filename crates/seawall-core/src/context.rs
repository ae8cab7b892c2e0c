use std::time::{Duration, Instant};

use crate::classify::Classifier;
use crate::provider::TargetId;
use crate::trail::TrailRecorder;

/// The clock deadlines are measured on.
///
/// This crate reads no clock and provides none. seawall's layers measure on tokio's
/// (`seawall::timeout::TokioClock`), so under a paused test clock a deadline moves with the
/// paused time. A [`Deadline`] is built, and compared, only with a [`Now`] read through a
/// `Clock`: it cannot be built from `std::time::Instant::now()` by accident, and a clock of
/// your own is a deliberate choice.
pub trait Clock {
    /// The current instant on this clock.
    fn instant(&self) -> Instant;

    /// The current instant, as deadlines take it.
    fn now(&self) -> Now {
        Now(self.instant())
    }
}

/// A reading of a [`Clock`]: what a [`Deadline`] is built from and compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Now(Instant);

impl Now {
    /// The instant read.
    pub fn instant(self) -> Instant {
        self.0
    }
}

/// The call's one overall deadline, which every layer inside sees.
///
/// Built from a [`Now`] read through a [`Clock`] (tokio's, in the layers) and compared with
/// later readings of the same clock; this type never reads a clock itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` after `now`.
    pub fn after(now: Now, budget: Duration) -> Self {
        Self {
            at: now.0.checked_add(budget).unwrap_or(now.0),
            budget,
        }
    }

    /// The instant the deadline passes, on the clock it was built with.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The whole budget the call was given.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// What is left of the budget at `now`; zero once passed.
    pub fn remaining(&self, now: Now) -> Duration {
        self.at.saturating_duration_since(now.0)
    }

    /// Whether the deadline has passed at `now`.
    pub fn is_expired(&self, now: Now) -> bool {
        now.0 >= self.at
    }

    /// Whether waiting `wait` from `now` still leaves some budget.
    pub fn fits(&self, now: Now, wait: Duration) -> bool {
        wait < self.remaining(now)
    }

    /// The earlier of this deadline and `other`.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        if other.at < self.at { other } else { self }
    }
}

/// Which target the failover layer should send the current attempt to.
///
/// Built with [`RouteHint::new`]; the default lets the router choose.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RouteHint {
    /// The target chosen for this attempt; `None` lets the router choose.
    pub target: Option<TargetId>,
    /// How many targets the call has moved through so far.
    pub hop: u32,
}

impl RouteHint {
    /// Send the attempt to `target`, the call's hop number `hop`.
    pub fn new(target: Option<TargetId>, hop: u32) -> Self {
        Self { target, hop }
    }
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

/// Per-call instructions that most calls do not carry: to a response cache, and the call's
/// idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// What a response cache may do with this call.
    pub cache: CacheDirectives,
    /// The caller's idempotency key: calls with the same key (and the same request) are one
    /// call (the gateway reads it from the `Idempotency-Key` header).
    pub idempotency_key: Option<std::sync::Arc<str>>,
    /// The caller's virtual key (its name, not its secret), for budgets scoped by key.
    pub virtual_key: Option<std::sync::Arc<str>>,
    /// The caller's tenant, for budgets scoped by tenant.
    pub tenant: Option<std::sync::Arc<str>>,
    /// The caller's W3C trace context: the adapters send it on as the `traceparent` header,
    /// so the provider's side of the call joins the caller's trace.
    pub traceparent: Option<TraceParent>,
}

/// A W3C `traceparent` (version `00`): `00-<32 hex trace id>-<16 hex parent id>-<2 hex
/// flags>`, lowercase, ids not all zero. Anything else is not one (and is not forwarded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceParent(std::sync::Arc<str>);

impl TraceParent {
    /// `value` if it is a valid version-00 `traceparent`.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        let hex = |range: std::ops::Range<usize>| {
            bytes[range.clone()]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                && bytes[range].iter().any(|b| *b != b'0')
        };
        let valid = bytes.len() == 55
            && value.starts_with("00-")
            && bytes[35] == b'-'
            && bytes[52] == b'-'
            && hex(3..35)
            && hex(36..52)
            && bytes[53..55]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        valid.then(|| Self(std::sync::Arc::from(value)))
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The options of a call that set none.
const NO_OPTIONS: CallOptions = CallOptions {
    cache: CacheDirectives {
        no_store: false,
        no_cache: false,
        max_age: None,
    },
    idempotency_key: None,
    virtual_key: None,
    tenant: None,
    traceparent: None,
};

/// Per-call context carried in every [`ChatRequest`](crate::ChatRequest).
///
/// Retries and failover clone the request, and the clones share the same context values
/// (the trail recorder is shared, not copied).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct RequestContext {
    /// The overall deadline, set by the outermost deadline layer (or by the caller).
    pub deadline: Option<Deadline>,
    /// The attempt number, from 0 for the first.
    pub attempt: u32,
    /// Where this attempt goes.
    pub route: RouteHint,
    /// The call's trail, if a layer installed one.
    pub trail: Option<TrailRecorder>,
    /// The caller's instructions to the cache and idempotency layers, if any (boxed: most
    /// calls carry none, and the context rides in every request). Read them with
    /// [`options`](Self::options), set them with [`options_mut`](Self::options_mut).
    pub options: Option<Box<CallOptions>>,
    /// The stack's classifier, set by the outermost layer that was given one (the failover
    /// router, or a target stack used alone); the layers inside decide with it unless they
    /// were given their own.
    pub classifier: Option<Classifier>,
}

impl RequestContext {
    /// What is left of the deadline at `now`, or `None` when there is no deadline.
    pub fn remaining(&self, now: Now) -> Option<Duration> {
        self.deadline.map(|deadline| deadline.remaining(now))
    }

    /// The call's options (the defaults when none were set).
    pub fn options(&self) -> &CallOptions {
        self.options.as_deref().unwrap_or(&NO_OPTIONS)
    }

    /// The call's options, to set them.
    pub fn options_mut(&mut self) -> &mut CallOptions {
        self.options.get_or_insert_default()
    }

    /// The call's trail recorder, installing one if there is none yet.
    pub fn trail(&mut self) -> &TrailRecorder {
        self.trail.get_or_insert_with(TrailRecorder::new)
    }
}

#[cfg(test)]
mod traceparent_tests {
    use super::TraceParent;

    #[test]
    fn only_a_valid_version_00_traceparent_is_taken() {
        let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(TraceParent::parse(valid).unwrap().as_str(), valid);
        for invalid in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx: y",
        ] {
            assert_eq!(TraceParent::parse(invalid), None, "{invalid:?}");
        }
    }
}
