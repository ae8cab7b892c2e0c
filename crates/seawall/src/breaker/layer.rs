use std::sync::Arc;

use seawall_core::{Classifier, TargetId};
use tower_layer::Layer;

use super::config::{BreakerBuilder, BreakerSettings, EventCallback};
use super::service::Breaker;
use super::state::{BreakerHandle, Shared};

/// A health breaker and a capacity cooldown for one target.
///
/// The state is created with the layer: cloning the layer, and every service it makes,
/// shares **one** breaker (as do the [`BreakerHandle`]s from [`handle`](Self::handle)).
/// Build one layer per target.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    shared: Arc<Shared>,
}

impl BreakerLayer {
    /// A breaker for `target` with the default settings.
    pub fn new(target: impl Into<TargetId>) -> Self {
        Self::builder(target).build()
    }

    /// Configures a breaker for `target`.
    pub fn builder(target: impl Into<TargetId>) -> BreakerBuilder {
        BreakerBuilder::new(target.into())
    }

    pub(crate) fn from_parts(
        target: TargetId,
        settings: BreakerSettings,
        classifier: Option<Classifier>,
        on_event: Option<EventCallback>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared::new(target, settings, classifier, on_event)),
        }
    }

    /// A handle on the shared state, for the failover picker and for operators.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::from_shared(inner, self.shared.clone())
    }
}
