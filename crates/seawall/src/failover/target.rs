use std::fmt;
use std::sync::Arc;

use seawall_core::{BoxError, ChatRequest, ChatResponse, TargetId};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use super::gate::TargetGate;

/// A target's stack, boxed once when the router is built.
///
/// `BoxCloneSyncService` keeps the router `Clone + Send + Sync` over members of different
/// types. Each attempt clones the member (one allocation) and calls it (its future is
/// boxed by the member); the router itself allocates nothing else per attempt.
pub type TargetService = BoxCloneSyncService<ChatRequest, ChatResponse, BoxError>;

/// One upstream target of a [`Failover`](super::Failover): its service (typically
/// `Retry → Breaker → RateLimit → AttemptTimeout → Adapter`), the model name it is sent,
/// its gates, its context window and its weight.
pub struct Target {
    pub(crate) id: TargetId,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) service: TargetService,
    pub(crate) gates: Vec<Arc<dyn TargetGate>>,
    pub(crate) context_window: Option<u64>,
    pub(crate) weight: u32,
}

impl Target {
    /// A target named `id` served by `service`. The request's model is sent unchanged
    /// until [`model`](Self::model) maps it.
    pub fn new<S>(id: impl Into<TargetId>, service: S) -> Self
    where
        S: Service<ChatRequest, Response = ChatResponse> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self {
            id: id.into(),
            model: None,
            service: BoxCloneSyncService::new(service.map_err(Into::into)),
            gates: Vec::new(),
            context_window: None,
            weight: 1,
        }
    }

    /// Sends requests to this target with `model` as the model name (a fallback chain maps
    /// one alias to each target's own model).
    #[must_use]
    pub fn model(mut self, model: impl Into<Arc<str>>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Adds a gate; the target is skipped while any gate refuses.
    #[must_use]
    pub fn gate(mut self, gate: Arc<dyn TargetGate>) -> Self {
        self.gates.push(gate);
        self
    }

    /// Adds gates.
    #[must_use]
    pub fn gates(mut self, gates: impl IntoIterator<Item = Arc<dyn TargetGate>>) -> Self {
        self.gates.extend(gates);
        self
    }

    /// The model's context window in tokens; a call whose estimated prompt plus reserved
    /// output is larger skips this target.
    #[must_use]
    pub fn context_window(mut self, tokens: u64) -> Self {
        self.context_window = Some(tokens);
        self
    }

    /// The weight for [`Strategy::Weighted`](super::Strategy::Weighted) (default 1; 0
    /// puts the target last).
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The target's name.
    pub fn id(&self) -> &TargetId {
        &self.id
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("id", &self.id)
            .field("model", &self.model)
            .field("gates", &self.gates)
            .field("context_window", &self.context_window)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}
