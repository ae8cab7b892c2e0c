use std::sync::Arc;

use tower_layer::Layer;

use super::recorder::CallMetrics;
use super::service::Metered;

/// Counts every call of the wrapped service in a [`CallMetrics`]; see the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Arc<CallMetrics>,
}

impl MetricsLayer {
    /// Counts calls in `metrics`.
    pub fn new(metrics: Arc<CallMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}
