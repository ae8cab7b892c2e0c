use std::sync::Arc;
use std::time::Duration;

use seawall_core::{HeuristicEstimator, TokenEstimator};

use super::provider_window::ProviderRefill;

/// So many units per period, refilled continuously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units per period; the most that can be spent at once.
    pub limit: u64,
    /// The period over which `limit` refills.
    pub per: Duration,
}

impl Rate {
    /// `limit` units per `per`.
    pub const fn new(limit: u64, per: Duration) -> Self {
        Self { limit, per }
    }

    /// `limit` units per minute, the unit providers publish.
    pub const fn per_minute(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` units per second.
    pub const fn per_second(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }
}

/// The limits of one target; `None` leaves a dimension unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Limits {
    /// Requests per period.
    pub requests: Option<Rate>,
    /// Input plus output tokens per period.
    pub tokens: Option<Rate>,
    /// Input tokens per period, where the provider limits them separately (Anthropic).
    pub input_tokens: Option<Rate>,
    /// Output tokens per period, where the provider limits them separately (Anthropic).
    pub output_tokens: Option<Rate>,
}

impl Limits {
    /// The rates in the order of [`Weight`](super::Weight)'s fields: requests, tokens,
    /// input tokens, output tokens.
    pub fn rates(&self) -> [Option<Rate>; 4] {
        [
            self.requests,
            self.tokens,
            self.input_tokens,
            self.output_tokens,
        ]
    }

    /// The longest period of the limited dimensions, or a minute: how long a provider's
    /// window is taken to last after its reset while no new report comes.
    pub fn longest_period(&self) -> Duration {
        self.rates()
            .iter()
            .flatten()
            .map(|rate| rate.per)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }
}

/// How one target's limiter behaves.
///
/// ```
/// use seawall::rate_limit::{RateLimitConfig, Rate};
/// use std::time::Duration;
///
/// let config = RateLimitConfig::new()
///     .requests(Rate::per_minute(500))
///     .tokens(Rate::per_minute(30_000))
///     .max_wait(Duration::from_secs(10))
///     .queue_capacity(256)
///     .default_output_tokens(1_024);
/// assert_eq!(config.limits.tokens, Some(Rate::per_minute(30_000)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// The limits.
    pub limits: Limits,
    /// The longest a call waits for admission (default 30 s). A call whose wait would be
    /// longer fails at once with the wait it would need.
    pub max_wait: Duration,
    /// How many calls may wait at once (default 1024); one more fails at once.
    pub queue_capacity: usize,
    /// The output tokens reserved for a request that sets no `max_output_tokens`
    /// (default 1024).
    pub default_output_tokens: u32,
    /// How prompts are weighed (default: [`HeuristicEstimator`], an upper bound). The
    /// limiter scales the estimate by what the provider reports it counted.
    pub estimator: Arc<dyn TokenEstimator>,
    /// How the provider's capacity comes back between two of its reports (default
    /// [`ProviderRefill::UntilReset`], right for every provider).
    pub provider_refill: ProviderRefill,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_wait: Duration::from_secs(30),
            queue_capacity: 1024,
            default_output_tokens: 1024,
            estimator: Arc::new(HeuristicEstimator::default()),
            provider_refill: ProviderRefill::UntilReset,
        }
    }
}

impl RateLimitConfig {
    /// No limit yet, and the defaults above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits requests.
    #[must_use]
    pub fn requests(mut self, rate: Rate) -> Self {
        self.limits.requests = Some(rate);
        self
    }

    /// Limits input plus output tokens.
    #[must_use]
    pub fn tokens(mut self, rate: Rate) -> Self {
        self.limits.tokens = Some(rate);
        self
    }

    /// Limits input tokens separately.
    #[must_use]
    pub fn input_tokens(mut self, rate: Rate) -> Self {
        self.limits.input_tokens = Some(rate);
        self
    }

    /// Limits output tokens separately.
    #[must_use]
    pub fn output_tokens(mut self, rate: Rate) -> Self {
        self.limits.output_tokens = Some(rate);
        self
    }

    /// Sets the longest wait for admission.
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Sets how many calls may wait at once.
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Sets the output tokens reserved when a request sets no cap.
    #[must_use]
    pub fn default_output_tokens(mut self, tokens: u32) -> Self {
        self.default_output_tokens = tokens;
        self
    }

    /// Sets how the provider's capacity comes back between its reports.
    #[must_use]
    pub fn provider_refill(mut self, refill: ProviderRefill) -> Self {
        self.provider_refill = refill;
        self
    }

    /// Sets the prompt estimator.
    #[must_use]
    pub fn estimator(mut self, estimator: Arc<dyn TokenEstimator>) -> Self {
        self.estimator = estimator;
        self
    }
}
