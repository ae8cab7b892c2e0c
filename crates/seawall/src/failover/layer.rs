use std::sync::Arc;

use seawall_core::{BoxError, ChatRequest, ChatResponse, TargetId};
use tower_layer::Layer;
use tower_service::Service;

use super::gate::TargetGate;
use super::service::{Failover, FailoverBuilder};
use super::target::Target;

/// Wraps a primary service with fallbacks, in a `tower::ServiceBuilder`: the service it
/// layers is the first target of a [`Failover`] router, the [fallbacks](Self::fallback)
/// follow in order. The router is the same one [`Failover::builder`] builds, with every
/// setting of [`FailoverBuilder`] available through [`configure`](Self::configure).
///
/// ```
/// use seawall::failover::{FailoverLayer, Target};
/// use seawall_core::{
///     AssistantMessage, BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason,
///     LlmError, Message, ProviderKind,
/// };
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let overloaded = service_fn(|_: ChatRequest| async {
///     Err::<ChatResponse, _>(BoxError::from(LlmError::new(ErrorKind::Overloaded, "529")))
/// });
/// let backup = service_fn(|request: ChatRequest| async move {
///     let reply = AssistantMessage::text("Paris");
///     Ok::<_, BoxError>(ChatResponse::new(ProviderKind::OpenAi, &*request.model, reply, FinishReason::Stop))
/// });
/// let service = ServiceBuilder::new()
///     .layer(
///         FailoverLayer::new("anthropic/opus")
///             .primary_model("claude-opus-4-1")
///             .fallback(Target::new("openai/mini", backup).model("gpt-4o-mini")),
///     )
///     .service(overloaded);
/// let request = ChatRequest::new("best", [Message::user("Capital of France?")]);
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.model, "gpt-4o-mini");
/// assert_eq!(response.trail.attempts.len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FailoverLayer {
    primary: TargetId,
    primary_model: Option<Arc<str>>,
    primary_gates: Vec<Arc<dyn TargetGate>>,
    fallbacks: Vec<Target>,
    builder: FailoverBuilder,
}

impl FailoverLayer {
    /// A router whose first target, named `primary`, is the service this layer wraps.
    pub fn new(primary: impl Into<TargetId>) -> Self {
        Self {
            primary: primary.into(),
            primary_model: None,
            primary_gates: Vec::new(),
            fallbacks: Vec::new(),
            builder: Failover::builder(),
        }
    }

    /// Sends the primary `model` as the model name (see [`Target::model`]).
    #[must_use]
    pub fn primary_model(mut self, model: impl Into<Arc<str>>) -> Self {
        self.primary_model = Some(model.into());
        self
    }

    /// Adds a gate to the primary (its breaker's handle, its limiter), so an open breaker
    /// or a full limiter skips it (see [`Target::gate`]).
    #[must_use]
    pub fn primary_gate(mut self, gate: Arc<dyn TargetGate>) -> Self {
        self.primary_gates.push(gate);
        self
    }

    /// Adds a fallback, tried after the primary and the fallbacks added before it.
    #[must_use]
    pub fn fallback(mut self, target: Target) -> Self {
        self.fallbacks.push(target);
        self
    }

    /// Sets anything else of the router: strategy, hops, classifier, hedging, stream
    /// recovery. Targets added here come after the fallbacks.
    #[must_use]
    pub fn configure(mut self, configure: impl FnOnce(FailoverBuilder) -> FailoverBuilder) -> Self {
        self.builder = configure(self.builder);
        self
    }
}

impl<S> Layer<S> for FailoverLayer
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Service = Failover;

    fn layer(&self, primary: S) -> Failover {
        let mut target =
            Target::new(self.primary.clone(), primary).gates(self.primary_gates.iter().cloned());
        if let Some(model) = &self.primary_model {
            target = target.model(Arc::clone(model));
        }
        let mut targets = Vec::with_capacity(1 + self.fallbacks.len());
        targets.push(target);
        targets.extend(self.fallbacks.iter().cloned());
        // The primary and the fallbacks lead whatever `configure` added.
        self.builder.clone().prepend(targets).build()
    }
}

impl std::fmt::Debug for FailoverLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverLayer")
            .field("primary", &self.primary)
            .field(
                "fallbacks",
                &self.fallbacks.iter().map(Target::id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
