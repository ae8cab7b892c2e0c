//! The fault vocabulary shared by the simulator (which plays faults over real HTTP) and the
//! chaos layer (which injects them into a stack in process): what goes wrong, and when.
//!
//! A fault plan is an ordered list of [`FaultRule`]s; for each request the first rule whose
//! conditions all hold fires. Request numbers count from 1 at the moment the plan was
//! installed, and time windows are measured from that moment too, so a script reads "the
//! next two requests fail" or "fail between 2 s and 5 s from now". This crate reads no clock:
//! whoever installs a plan passes the time elapsed since.
//!
//! [`Fault`] is deliberately exhaustive: a new fault must be taught to the simulator and to
//! the chaos layer alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, LlmError, RetryHints};
use crate::provider::ProviderKind;

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

impl RetryAfter {
    /// The wait this value stands for; `None` for a raw value a client cannot parse.
    pub fn as_duration(&self) -> Option<Duration> {
        match self {
            Self::Seconds(secs) | Self::HttpDateIn(secs) => Some(Duration::from_secs(*secs)),
            Self::Float(secs) => Duration::try_from_secs_f64(*secs).ok(),
            Self::Raw(text) => text.trim().parse().ok().map(Duration::from_secs),
        }
    }
}

impl RetryHeaders {
    /// What a client reads from these headers (`retry-after-ms` wins over `retry-after`).
    pub fn hints(&self) -> RetryHints {
        RetryHints {
            retry_after: self
                .retry_after_ms
                .map(Duration::from_millis)
                .or_else(|| self.retry_after.as_ref().and_then(RetryAfter::as_duration)),
            should_retry: self.should_retry,
            quota_reset: None,
        }
    }
}

impl Fault {
    /// The error `provider`'s adapter reports for this fault when it replaces the whole
    /// response (an error status, a page that is not the API's, a closed connection); `None`
    /// for the faults that shape a response that does arrive (slowness, stream faults, a
    /// filtered reply) and for a hang, which is no error until someone gives up.
    pub fn error(&self, provider: ProviderKind) -> Option<LlmError> {
        let status_text = |status: u16| {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
        };
        let error = match self {
            Self::Status {
                status,
                error_type,
                message,
                code,
                retry,
            } => {
                let named = code.as_deref().or(error_type.as_deref()).unwrap_or("");
                let kind = match named {
                    "insufficient_quota" | "billing_error" => ErrorKind::QuotaExhausted,
                    "context_length_exceeded" => ErrorKind::ContextLengthExceeded,
                    "content_filter" => ErrorKind::ContentFiltered,
                    _ => ErrorKind::from_status(*status),
                };
                let mut error = LlmError::new(
                    kind,
                    message
                        .clone()
                        .unwrap_or_else(|| status_text(*status).to_owned()),
                )
                .with_status(*status)
                .with_hints(retry.hints());
                if !named.is_empty() {
                    error = error.with_code(named);
                }
                error
            }
            Self::Overloaded { retry } => {
                let (status, code) = match provider {
                    ProviderKind::Anthropic => (529, "overloaded_error"),
                    ProviderKind::Gemini => (503, "UNAVAILABLE"),
                    _ => (503, "service_unavailable"),
                };
                LlmError::new(ErrorKind::Overloaded, "the provider is overloaded")
                    .with_status(status)
                    .with_code(code)
                    .with_hints(retry.hints())
            }
            Self::RateLimited { limit, retry } => {
                let (kind, code, message) = match limit {
                    RateLimitKind::Requests => (
                        ErrorKind::RateLimited,
                        "rate_limit_exceeded",
                        "rate limit reached for requests",
                    ),
                    RateLimitKind::Tokens => (
                        ErrorKind::RateLimited,
                        "rate_limit_exceeded",
                        "rate limit reached for tokens",
                    ),
                    RateLimitKind::QuotaExhausted => (
                        ErrorKind::QuotaExhausted,
                        "insufficient_quota",
                        "you exceeded your current quota",
                    ),
                    RateLimitKind::RequestTooLarge => (
                        ErrorKind::RequestTooLarge,
                        "rate_limit_exceeded",
                        "request too large for the tokens-per-minute limit",
                    ),
                };
                LlmError::new(kind, message)
                    .with_status(429)
                    .with_code(code)
                    .with_hints(retry.hints())
            }
            Self::HtmlPage { status } => LlmError::new(
                ErrorKind::from_status(*status),
                format!("{} (HTML page)", status_text(*status)),
            )
            .with_status(*status),
            Self::EmptyBody { status } => LlmError::new(
                ErrorKind::from_status(*status),
                format!("{} (empty body)", status_text(*status)),
            )
            .with_status(*status),
            Self::Disconnect => LlmError::new(
                ErrorKind::Connect,
                "the connection closed before a response",
            ),
            _ => return None,
        };
        Some(error.with_provider(provider))
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
    pub fn during(after: Duration, until: Duration, fault: Fault) -> FaultRule {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        FaultRule {
            after_ms: Some(millis(after)),
            until_ms: Some(millis(until)),
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

    /// Whether the rule's conditions hold for request `request_number` (from 1, counted
    /// since the plan was installed), `elapsed` after the installation. `times` is counted
    /// by [`FaultPlan`], not here.
    pub fn matches(&self, request_number: u64, elapsed: Duration) -> bool {
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
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

/// An installed fault plan: the rules, how often each fired, and the request count since
/// installation. Cheap to share behind an `Arc`; [`next`](Self::next) takes no lock.
#[derive(Debug)]
pub struct FaultPlan {
    rules: Vec<(FaultRule, AtomicU64)>,
    requests: AtomicU64,
}

impl FaultPlan {
    /// A plan of `rules`, in order.
    pub fn new(rules: Vec<FaultRule>) -> Self {
        Self {
            rules: rules.into_iter().map(|r| (r, AtomicU64::new(0))).collect(),
            requests: AtomicU64::new(0),
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &FaultRule> {
        self.rules.iter().map(|(rule, _)| rule)
    }

    /// Whether the plan has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Counts one request and returns the fault of the first rule that fires for it,
    /// `elapsed` after the plan was installed.
    pub fn next(&self, elapsed: Duration) -> Option<&Fault> {
        let number = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        for (rule, fired) in &self.rules {
            if !rule.matches(number, elapsed) {
                continue;
            }
            if let Some(limit) = rule.times
                && fired.fetch_add(1, Ordering::AcqRel) >= limit
            {
                continue;
            }
            return Some(&rule.fault);
        }
        None
    }
}

/// FNV-1a over `bytes`, seeded: the probability draw of a rule.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One SplitMix64 step.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_count_from_installation() {
        let plan = FaultPlan::new(vec![FaultRule::nth(2, Fault::status(500))]);
        assert!(plan.next(Duration::ZERO).is_none());
        assert_eq!(plan.next(Duration::ZERO), Some(&Fault::status(500)));
        assert!(plan.next(Duration::ZERO).is_none());
    }

    #[test]
    fn time_windows_are_measured_from_installation() {
        let plan = FaultPlan::new(vec![FaultRule::during(
            Duration::from_secs(2),
            Duration::from_secs(5),
            Fault::Disconnect,
        )]);
        assert!(plan.next(Duration::from_millis(1_999)).is_none());
        assert!(plan.next(Duration::from_secs(2)).is_some());
        assert!(plan.next(Duration::from_millis(4_999)).is_some());
        assert!(plan.next(Duration::from_secs(5)).is_none());
    }

    #[test]
    fn times_limits_and_probability_is_reproducible() {
        let plan = FaultPlan::new(vec![FaultRule::always(Fault::Disconnect).times(2)]);
        let fired: Vec<bool> = (0..4)
            .map(|_| plan.next(Duration::ZERO).is_some())
            .collect();
        assert_eq!(fired, [true, true, false, false]);

        let draws = |seed| {
            let plan = FaultPlan::new(vec![FaultRule::with_probability(
                0.5,
                seed,
                Fault::Disconnect,
            )]);
            (0..64)
                .map(|_| plan.next(Duration::ZERO).is_some())
                .collect::<Vec<_>>()
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
