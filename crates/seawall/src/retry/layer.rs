use std::sync::Arc;
use std::time::Duration;

use seawall_core::Classifier;
use tower::retry::budget::{Budget, TpsBudget};
use tower_layer::Layer;

use super::policy::{Backoff, RetryConfig, SharedBudget};
use super::service::Retry;

/// Retries the same target when the classifier says so, honouring the server's wait, within
/// a shared budget and the call's deadline.
///
/// Cloning the layer, and every service it makes, shares one retry budget; pass the same
/// budget to several layers ([`budget`](Self::budget)) to share it across targets.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    config: Arc<RetryConfig>,
}

impl RetryLayer {
    /// The defaults: at most 3 attempts, backoff from 500 ms capped at 8 s, server waits up
    /// to 5 s waited out, a budget of 20 % of calls plus 10 retries per second over 10 s.
    pub fn new() -> Self {
        Self {
            config: Arc::new(RetryConfig {
                max_attempts: 3,
                backoff: Backoff::default(),
                max_server_wait: Duration::from_secs(5),
                budget: Arc::new(TpsBudget::default()),
                classifier: None,
            }),
        }
    }

    fn edit(mut self, edit: impl FnOnce(&mut RetryConfig)) -> Self {
        edit(Arc::make_mut(&mut self.config));
        self
    }

    /// The most attempts per call, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(self, attempts: u32) -> Self {
        self.edit(|config| config.max_attempts = attempts.max(1))
    }

    /// The backoff used when the server gave no wait.
    #[must_use]
    pub fn backoff(self, backoff: Backoff) -> Self {
        self.edit(|config| config.backoff = backoff)
    }

    /// The wait-or-fail-over threshold: a server wait (retry-after, quota reset) up to this
    /// long is waited out on the same target; a longer one returns the failure at once so
    /// that failover moves on while the breaker parks the target.
    #[must_use]
    pub fn max_server_wait(self, wait: Duration) -> Self {
        self.edit(|config| config.max_server_wait = wait)
    }

    /// The retry budget, by default tower's [`TpsBudget`] (20 % of calls plus 10 retries
    /// per second, over 10 s): every call deposits, every retry withdraws, and a retry the
    /// budget refuses is not made. Share one `Arc` between layers to share the budget
    /// across targets; any [`Budget`] will do (a distributed one, say).
    #[must_use]
    pub fn budget<B: Budget + Send + Sync + 'static>(self, budget: Arc<B>) -> Self {
        self.edit(|config| config.budget = budget)
    }

    /// Decides with `classifier` instead of the stack's (the one in the request context,
    /// or the built-in table), and hands it to the layers inside. A
    /// [`TargetStack`](crate::stack::TargetStack) or a failover router given a classifier
    /// hands it down on its own; set it here only on a retry layer used without them.
    #[must_use]
    pub fn classifier(self, classifier: impl Into<Classifier>) -> Self {
        let classifier = classifier.into();
        self.edit(|config| config.classifier = Some(classifier))
    }

    /// The shared retry budget.
    pub fn shared_budget(&self) -> Arc<dyn Budget + Send + Sync> {
        let budget: &SharedBudget = &self.config.budget;
        budget.clone()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_config(inner, self.config.clone())
    }
}
