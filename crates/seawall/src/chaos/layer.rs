use std::fmt;
use std::sync::Arc;

use seawall_core::ProviderKind;
use seawall_core::fault::{Fault, FaultPlan, FaultRule};
use tokio::time::Instant;
use tower_layer::Layer;

use super::service::Chaos;

/// Injects the faults of a plan into the calls of the service it wraps. See the
/// [module docs](super).
///
/// Cloning the layer, and every service it makes, shares one plan: request numbers count
/// across all of them.
#[derive(Clone)]
pub struct ChaosLayer {
    plan: Option<Arc<Installed>>,
    provider: ProviderKind,
}

/// A plan and the instant it was installed (time windows are measured from it).
#[derive(Debug)]
pub(crate) struct Installed {
    plan: FaultPlan,
    at: Instant,
}

impl Installed {
    /// Counts one call and returns its fault, if any.
    pub(crate) fn next(&self) -> Option<Fault> {
        self.plan.next(self.at.elapsed()).cloned()
    }
}

impl ChaosLayer {
    /// A layer that plays `rules`, installed now on tokio's clock: request numbers count from
    /// the first call through it, time windows from now. An empty list injects nothing.
    pub fn new(rules: impl IntoIterator<Item = FaultRule>) -> Self {
        let rules: Vec<FaultRule> = rules.into_iter().collect();
        let plan = (!rules.is_empty()).then(|| {
            Arc::new(Installed {
                plan: FaultPlan::new(rules),
                at: Instant::now(),
            })
        });
        Self {
            plan,
            provider: ProviderKind::OpenAi,
        }
    }

    /// A layer that injects nothing and costs one branch per call.
    pub fn disabled() -> Self {
        Self::new([])
    }

    /// Whose errors the faults imitate (status, code, in-band error frame); default OpenAI.
    #[must_use]
    pub fn provider(mut self, provider: ProviderKind) -> Self {
        self.provider = provider;
        self
    }
}

impl fmt::Debug for ChaosLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field(
                "rules",
                &self
                    .plan
                    .as_ref()
                    .map_or(0, |plan| plan.plan.rules().count()),
            )
            .field("provider", &self.provider)
            .finish()
    }
}

impl<S> Layer<S> for ChaosLayer {
    type Service = Chaos<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos::from_parts(inner, self.plan.clone(), self.provider)
    }
}
