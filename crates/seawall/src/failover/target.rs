use std::fmt;
use std::sync::Arc;

use seawall_core::{BoxError, ChatRequest, ChatResponse, ProviderKind, TargetId};
use tower::ServiceExt;
use tower::retry::budget::Budget;
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
/// its gates, its context window and its weight. Cloning it shares its service's handle
/// (the service is cloned per attempt anyway).
#[derive(Clone)]
pub struct Target {
    pub(crate) id: TargetId,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) service: TargetService,
    pub(crate) gates: Vec<Arc<dyn TargetGate>>,
    pub(crate) context_window: Option<u64>,
    pub(crate) weight: u32,
    pub(crate) provider: Option<ProviderKind>,
    pub(crate) continuation: Option<Continuation>,
    pub(crate) retry_budget: Option<Arc<dyn Budget + Send + Sync>>,
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
            provider: None,
            continuation: None,
            retry_budget: None,
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

    /// The protocol the target speaks. It sets whether the target is sent continuations
    /// (an assistant prefill) to recover a broken stream, unless
    /// [`accepts_prefill`](Self::accepts_prefill) says otherwise: Anthropic and
    /// OpenAI-compatible servers accept a prefill, OpenAI and Gemini do not (they answer
    /// afresh instead of continuing, so a continuation would repeat the answer). Without
    /// this setting, the router learns the protocol from the first response the target
    /// gives; until then a broken stream is recovered on it by restart only.
    #[must_use]
    pub fn provider(mut self, provider: ProviderKind) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Whether the target continues a trailing assistant message (a prefill), which
    /// recovery uses to finish a broken stream; overrides the
    /// [`provider`](Self::provider)'s default. A target that rejects a continuation
    /// anyway (a 400) is remembered as not accepting one.
    #[must_use]
    pub fn accepts_prefill(mut self, accepts: bool) -> Self {
        self.continuation = Some(if accepts {
            Continuation::Prefill
        } else {
            Continuation::Restart
        });
        self
    }

    /// How a stream broken elsewhere is finished on this target; overrides the default
    /// for its provider and model family (see [`Continuation`]).
    #[must_use]
    pub fn continuation(mut self, continuation: Continuation) -> Self {
        self.continuation = Some(continuation);
        self
    }

    /// The retry budget of the target's retry layer
    /// ([`RetryLayer::shared_budget`](crate::retry::RetryLayer::shared_budget);
    /// [`TargetStack`](crate::stack::TargetStack) sets it): a
    /// [hedge](super::Hedge) sent because an attempt on this target is slow spends from it.
    #[must_use]
    pub fn retry_budget(mut self, budget: Arc<dyn Budget + Send + Sync>) -> Self {
        self.retry_budget = Some(budget);
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
            .field("provider", &self.provider)
            .field("continuation", &self.continuation)
            .finish_non_exhaustive()
    }
}

/// How a target finishes a stream that broke after content reached the caller.
///
/// The default follows the target's protocol and model: a trailing assistant message (a
/// prefill) for Anthropic and OpenAI-compatible servers, except Claude models from 4.6 on,
/// which refuse a prefill and get the user-message form; a restart for OpenAI and Gemini,
/// whose chat APIs answer a trailing assistant message afresh. A target that answers a
/// prefill with a 400 is moved to the user-message form, and one that refuses that too, to
/// restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Continuation {
    /// The delivered text as a trailing assistant message, which the answer continues.
    Prefill,
    /// The delivered text as the assistant's turn, then a user message asking to continue
    /// it; the answer's repeat of the delivered end is dropped, and an answer that starts
    /// the reply over is matched against it like a restart.
    UserMessage,
    /// The request again, unchanged; its output is matched against what was delivered and
    /// passed on only past it.
    Restart,
}

impl Continuation {
    /// The default for `provider` serving `model`.
    pub(crate) fn default_for(provider: ProviderKind, model: &str) -> Self {
        if provider == ProviderKind::Anthropic && refuses_prefill(model) {
            Self::UserMessage
        } else if provider_accepts_prefill(provider) {
            Self::Prefill
        } else {
            Self::Restart
        }
    }
}

/// Claude models from 4.6 on (`claude-opus-4-6`, `claude-sonnet-4-6`, `claude-opus-5`, ...)
/// refuse an assistant prefill.
fn refuses_prefill(model: &str) -> bool {
    let Some(rest) = model.strip_prefix("claude-") else {
        return false;
    };
    let mut numbers = rest
        .split(['-', '.'])
        .skip_while(|part| !part.starts_with(|c: char| c.is_ascii_digit()))
        .map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), _) if major >= 5 => true,
        // A minor version, not a date stamp (`claude-sonnet-4-20250514` is 4.0).
        (Some(4), Some(minor)) if minor < 100 => minor >= 6,
        _ => false,
    }
}

/// Whether `provider` continues a trailing assistant message rather than answering afresh.
pub(crate) const fn provider_accepts_prefill(provider: ProviderKind) -> bool {
    match provider {
        ProviderKind::Anthropic | ProviderKind::OpenAiCompatible => true,
        // OpenAI and Gemini, and any protocol added later until known otherwise.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_from_4_6_refuses_a_prefill() {
        for model in [
            "claude-opus-4-6",
            "claude-sonnet-4-6",
            "claude-sonnet-4-6-20260101",
            "claude-opus-5",
            "claude-haiku-5-1",
        ] {
            assert!(refuses_prefill(model), "{model}");
        }
        for model in [
            "claude-sonnet-4-5",
            "claude-opus-4-1",
            "claude-sonnet-4-20250514",
            "claude-3-5-haiku-latest",
            "claude-3-7-sonnet-20250219",
            "gpt-4o",
            "claude",
        ] {
            assert!(!refuses_prefill(model), "{model}");
        }
        assert_eq!(
            Continuation::default_for(ProviderKind::Anthropic, "claude-sonnet-4-6"),
            Continuation::UserMessage
        );
        assert_eq!(
            Continuation::default_for(ProviderKind::Anthropic, "claude-sonnet-4-5"),
            Continuation::Prefill
        );
        assert_eq!(
            Continuation::default_for(ProviderKind::OpenAi, "gpt-4o"),
            Continuation::Restart
        );
    }
}
