//! Model groups, and the service that sends a call to the group its model names.
//!
//! The budget layer sits in front of this router rather than in front of each group, so
//! that a call it downgrades (its model rewritten to the downgrade group) is routed to the
//! cheaper group's targets.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use seawall::cache::Cache;
#[cfg(not(feature = "semantic-cache"))]
use seawall::failover::Failover;
use seawall::idempotency::Idempotency;
use seawall::timeout::EnforceDeadline;
use seawall_core::{BoxError, ChatRequest, ChatResponse, Classifier, ErrorKind, LlmError};
use tower::ServiceExt;
use tower::util::{Either, Oneshot};

use tower_service::Service;

/// A group's router, behind the semantic cache when the feature is built.
#[cfg(feature = "semantic-cache")]
type Routed = crate::semantic::Routed;
#[cfg(not(feature = "semantic-cache"))]
type Routed = Failover;

/// A group's router behind the optional response cache and idempotency layers.
type Cached = Either<Cache<Routed>, Routed>;
pub(crate) type GroupService = EnforceDeadline<Either<Idempotency<Cached>, Cached>>;

/// A model group: its router and the one classifier its layers decide with.
#[derive(Clone)]
pub(crate) struct Group {
    pub(crate) service: GroupService,
    pub(crate) classifier: Classifier,
    /// The group's first target whose provider counts tokens exactly, for the count routes.
    pub(crate) counter: Option<crate::upstream::TokenCounter>,
}

/// The groups by exact name, and the prefix patterns, longest first.
pub(crate) struct Groups {
    pub(crate) exact: HashMap<String, Group>,
    pub(crate) patterns: Vec<(String, Group)>,
}

impl Groups {
    /// The group `model` names: exactly, or by the longest matching prefix.
    pub(crate) fn find(&self, model: &str) -> Option<&Group> {
        self.exact.get(model).or_else(|| {
            self.patterns
                .iter()
                .find(|(prefix, _)| {
                    model.starts_with(prefix.as_str()) && model.len() > prefix.len()
                })
                .map(|(_, group)| group)
        })
    }
}

/// Sends each call to the group its model names.
#[derive(Clone)]
pub(crate) struct GroupRouter(pub(crate) Arc<Groups>);

impl Service<ChatRequest> for GroupRouter {
    type Response = ChatResponse;
    type Error = BoxError;
    type Future = RouteFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call readies its own group's service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        match self.0.find(&request.model) {
            Some(group) => RouteFuture::Routed {
                call: group.service.clone().oneshot(request),
            },
            // The gateway looks the group up before the call: not reached.
            None => RouteFuture::NoGroup,
        }
    }
}

pin_project! {
    /// The call in its group, or the refusal of a model no group answers.
    #[project = RouteProj]
    pub(crate) enum RouteFuture {
        Routed { #[pin] call: Oneshot<GroupService, ChatRequest> },
        NoGroup,
    }
}

impl Future for RouteFuture {
    type Output = Result<ChatResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RouteProj::Routed { call } => call.poll(cx),
            RouteProj::NoGroup => Poll::Ready(Err(LlmError::new(
                ErrorKind::NotFound,
                "no group answers this model",
            )
            .into())),
        }
    }
}
