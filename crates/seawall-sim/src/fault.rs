//! Fault scripts: what goes wrong, and when.
//!
//! A provider's fault plan is an ordered list of [`FaultRule`]s; for each request the first
//! rule whose conditions all hold fires. Request numbers count from 1 at the moment the plan
//! was installed, and time windows are measured from that moment too, so a script reads
//! "the next two requests fail" or "fail between 2 s and 5 s from now".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::reply::{fnv1a, splitmix};

/// A `retry-after` header value in one of the forms SDKs parse differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfter {
    /// Integer seconds: `retry-after: 2`.
    Seconds(u64),
    /// Fractional seconds: `retry-after: 0.5`.
    Float(f64),
    /// An HTTP date this many seconds from the response time.
    HttpDateIn(u64),
    /// A literal header value (e.g. garbage to test parsers).
    Raw(String),
}

/// Retry-related response headers attached to an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryHeaders {
    /// `retry-after`.
    pub retry_after: Option<RetryAfter>,
    /// `retry-after-ms` (milliseconds, the form the Stainless SDKs prefer).
    pub retry_after_ms: Option<u64>,
    /// `x-should-retry: true|false`, which overrides the SDKs' status rules.
    pub should_retry: Option<bool>,
}

/// Which 429 to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKind {
    /// An ordinary, retryable rate limit (requests per minute).
    #[default]
    Requests,
    /// Tokens per minute exceeded (retryable).
    Tokens,
    /// Quota or billing exhausted: OpenAI `insufficient_quota`, Anthropic
    /// `enforced_spend_limit_reached`, Gemini per-day quota. Never succeeds on retry.
    QuotaExhausted,
    /// A single request larger than the per-minute token limit. Never succeeds on retry.
    RequestTooLarge,
}

/// One way a request can go wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Any HTTP status with the provider's own error body (type and message default to what
    /// the provider sends for that status).
    Status {
        /// HTTP status.
        status: u16,
        /// Error type override (OpenAI/Anthropic `type`, Gemini `status`).
        #[serde(default)]
        error_type: Option<String>,
        /// Message override.
        #[serde(default)]
        message: Option<String>,
        /// OpenAI `code` override.
        #[serde(default)]
        code: Option<String>,
        /// Retry headers.
        #[serde(flatten)]
        retry: RetryHeaders,
    },
    /// The provider's overload reply: OpenAI 503, Anthropic 529 `overloaded_error`, Gemini 503
    /// `UNAVAILABLE`, llama.cpp 503 "Loading model", vLLM/Ollama 503.
    Overloaded {
        /// Retry headers.
        #[serde(flatten)]
        retry: RetryHeaders,
    },
    /// A 429 of the given kind (Gemini bodies carry `RetryInfo` when `retry_after` is set).
    RateLimited {
        /// Which 429.
        #[serde(default)]
        limit: RateLimitKind,
        /// Retry headers.
        #[serde(flatten)]
        retry: RetryHeaders,
    },
    /// Read the request, then send nothing (for `ms` milliseconds, or until the client goes).
    Hang {
        /// How long; forever when absent.
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Delay the response head by `ms`, then answer normally.
    SlowFirstByte {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Send `events` stream events, then close the connection abruptly (truncated chunked
    /// body). On a non-streaming request: half the body, then the abrupt close.
    CutAfter {
        /// Events sent before the cut.
        events: usize,
    },
    /// End the stream cleanly but without its terminal marker (`[DONE]`, `message_stop`,
    /// the final `finishReason` chunk), after `events` events or just before the terminal
    /// part when absent.
    EndWithoutTerminal {
        /// Events sent before the end.
        #[serde(default)]
        events: Option<usize>,
    },
    /// Send `events` events, go silent for `ms`, then carry on.
    StallAfter {
        /// Events before the stall.
        events: usize,
        /// Stall length in milliseconds.
        ms: u64,
    },
    /// Send `events` events, then the provider's mid-stream error frame, then end.
    ErrorFrameAfter {
        /// Events before the error frame.
        events: usize,
    },
    /// Send `events` events, then a `data:` line that is not valid JSON, then carry on.
    MalformedChunkAfter {
        /// Events before the malformed chunk.
        events: usize,
    },
    /// A 200 whose reply a safety system stopped halfway: OpenAI `finish_reason:
    /// "content_filter"`, Anthropic `stop_reason: "refusal"` with `stop_details`, Gemini
    /// `finishReason: "SAFETY"`.
    ContentFiltered,
    /// Send the first stream event twice (a second `message_start`, role chunk…), then the
    /// rest: parsers must tolerate duplicates.
    DuplicateFirstEvent,
    /// A proxy's HTML error page (not JSON) with this status (502 by default).
    HtmlPage {
        /// HTTP status.
        #[serde(default = "default_502")]
        status: u16,
    },
    /// An empty body with this status (503 by default).
    EmptyBody {
        /// HTTP status.
        #[serde(default = "default_503")]
        status: u16,
    },
    /// Close the connection without any response, as a reset or refused connection looks to
    /// a client that already sent its request.
    Disconnect,
}

fn default_502() -> u16 {
    502
}

fn default_503() -> u16 {
    503
}

impl Fault {
    /// Shorthand for [`Fault::Status`] without overrides or retry headers.
    pub fn status(status: u16) -> Fault {
        Fault::Status {
            status,
            error_type: None,
            message: None,
            code: None,
            retry: RetryHeaders::default(),
        }
    }

    /// Shorthand for an ordinary 429 with `retry-after: secs`.
    pub fn rate_limited(secs: u64) -> Fault {
        Fault::RateLimited {
            limit: RateLimitKind::Requests,
            retry: RetryHeaders {
                retry_after: Some(RetryAfter::Seconds(secs)),
                ..RetryHeaders::default()
            },
        }
    }

    /// Shorthand for [`Fault::Overloaded`] without retry headers.
    pub fn overloaded() -> Fault {
        Fault::Overloaded {
            retry: RetryHeaders::default(),
        }
    }

    /// Replaces the retry headers of an error fault (no effect on other faults).
    pub fn with_retry(mut self, headers: RetryHeaders) -> Fault {
        match &mut self {
            Fault::Status { retry, .. }
            | Fault::Overloaded { retry }
            | Fault::RateLimited { retry, .. } => *retry = headers,
            _ => {}
        }
        self
    }
}

/// A fault and the conditions under which it fires. All present conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What happens.
    pub fault: Fault,
    /// First request number (1-based, counted from when the plan was installed) it applies to.
    #[serde(default)]
    pub from_request: Option<u64>,
    /// Last request number it applies to (inclusive).
    #[serde(default)]
    pub to_request: Option<u64>,
    /// Applies only from this many milliseconds after the plan was installed.
    #[serde(default)]
    pub after_ms: Option<u64>,
    /// Applies only until this many milliseconds after the plan was installed.
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// Fires with this probability; the draw is a hash of `seed` and the request number, so a
    /// run is reproducible.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Seed of the probability draw.
    #[serde(default)]
    pub seed: u64,
    /// Fires at most this many times.
    #[serde(default)]
    pub times: Option<u64>,
}

impl FaultRule {
    /// Fires on every request.
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            from_request: None,
            to_request: None,
            after_ms: None,
            until_ms: None,
            probability: None,
            seed: 0,
            times: None,
        }
    }

    /// Fires on the next `n` requests.
    pub fn first(n: u64, fault: Fault) -> FaultRule {
        FaultRule::requests(1, n, fault)
    }

    /// Fires on request number `n` only.
    pub fn nth(n: u64, fault: Fault) -> FaultRule {
        FaultRule::requests(n, n, fault)
    }

    /// Fires on requests `from..=to`.
    pub fn requests(from: u64, to: u64, fault: Fault) -> FaultRule {
        FaultRule {
            from_request: Some(from),
            to_request: Some(to),
            ..FaultRule::always(fault)
        }
    }

    /// Fires during `[after, until)` measured from installation.
    pub fn during(
        after: std::time::Duration,
        until: std::time::Duration,
        fault: Fault,
    ) -> FaultRule {
        FaultRule {
            after_ms: Some(after.as_millis() as u64),
            until_ms: Some(until.as_millis() as u64),
            ..FaultRule::always(fault)
        }
    }

    /// Fires with probability `p`, drawn reproducibly from `seed` and the request number.
    pub fn with_probability(p: f64, seed: u64, fault: Fault) -> FaultRule {
        FaultRule {
            probability: Some(p),
            seed,
            ..FaultRule::always(fault)
        }
    }

    /// Limits how many times the rule fires.
    pub fn times(mut self, n: u64) -> FaultRule {
        self.times = Some(n);
        self
    }

    fn matches(&self, request_number: u64, elapsed_ms: u64) -> bool {
        if self.from_request.is_some_and(|f| request_number < f)
            || self.to_request.is_some_and(|t| request_number > t)
            || self.after_ms.is_some_and(|a| elapsed_ms < a)
            || self.until_ms.is_some_and(|u| elapsed_ms >= u)
        {
            return false;
        }
        match self.probability {
            Some(p) => {
                let mut state = fnv1a(self.seed, &request_number.to_le_bytes());
                let draw = (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
                draw < p
            }
            None => true,
        }
    }
}

/// An installed plan.
#[derive(Debug)]
struct InstalledPlan {
    rules: Vec<(FaultRule, AtomicU64)>,
    installed_at: Instant,
    base_request: u64,
}

/// One provider's live plan and request counter. The common case (no plan) costs one atomic
/// load; with a plan, a short lock clones an `Arc` and the rules run outside the lock.
#[derive(Debug)]
pub(crate) struct FaultSlot {
    active: AtomicBool,
    requests: AtomicU64,
    plan: Mutex<Option<Arc<InstalledPlan>>>,
}

impl FaultSlot {
    pub(crate) fn new() -> FaultSlot {
        FaultSlot {
            active: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            plan: Mutex::new(None),
        }
    }

    /// Replaces the plan (an empty list clears it).
    pub(crate) fn set(&self, rules: Vec<FaultRule>) {
        let mut slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if rules.is_empty() {
            *slot = None;
            self.active.store(false, Ordering::Release);
        } else {
            *slot = Some(Arc::new(InstalledPlan {
                rules: rules.into_iter().map(|r| (r, AtomicU64::new(0))).collect(),
                installed_at: Instant::now(),
                base_request: self.requests.load(Ordering::Acquire),
            }));
            self.active.store(true, Ordering::Release);
        }
    }

    /// The rules currently installed.
    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        let slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .map(|p| p.rules.iter().map(|(r, _)| r.clone()).collect())
            .unwrap_or_default()
    }

    /// Counts a request and returns the fault to apply, if any.
    pub(crate) fn next(&self) -> Option<Fault> {
        let number = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let plan = {
            let slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
            slot.clone()?
        };
        let relative = number.saturating_sub(plan.base_request);
        let elapsed_ms = plan.installed_at.elapsed().as_millis() as u64;
        for (rule, fired) in &plan.rules {
            if !rule.matches(relative, elapsed_ms) {
                continue;
            }
            if let Some(limit) = rule.times {
                if fired.fetch_add(1, Ordering::AcqRel) >= limit {
                    continue;
                }
            }
            return Some(rule.fault.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_count_from_installation() {
        let slot = FaultSlot::new();
        assert!(slot.next().is_none());
        slot.set(vec![FaultRule::nth(2, Fault::status(500))]);
        assert!(slot.next().is_none());
        assert_eq!(slot.next(), Some(Fault::status(500)));
        assert!(slot.next().is_none());
    }

    #[test]
    fn times_limits_and_probability_is_reproducible() {
        let slot = FaultSlot::new();
        slot.set(vec![FaultRule::always(Fault::Disconnect).times(2)]);
        let fired: Vec<bool> = (0..4).map(|_| slot.next().is_some()).collect();
        assert_eq!(fired, [true, true, false, false]);

        let draws = |seed| {
            let slot = FaultSlot::new();
            slot.set(vec![FaultRule::with_probability(
                0.5,
                seed,
                Fault::Disconnect,
            )]);
            (0..64).map(|_| slot.next().is_some()).collect::<Vec<_>>()
        };
        let a = draws(3);
        assert_eq!(a, draws(3));
        let hits = a.iter().filter(|x| **x).count();
        assert!((16..=48).contains(&hits), "{hits}");
    }

    #[test]
    fn faults_round_trip_through_json() {
        let json = r#"[{"fault":{"kind":"status","status":429,"retry_after":{"http_date_in":3},"should_retry":true},"from_request":1,"to_request":2}]"#;
        let rules: Vec<FaultRule> = serde_json::from_str(json).unwrap();
        assert_eq!(
            rules[0].fault,
            Fault::status(429).with_retry(RetryHeaders {
                retry_after: Some(RetryAfter::HttpDateIn(3)),
                retry_after_ms: None,
                should_retry: Some(true),
            })
        );
    }
}
