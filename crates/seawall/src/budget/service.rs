use std::mem;
use std::task::{Context, Poll};

use seawall_core::BoxError;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Budgets;
use super::request::BudgetRequest;
use super::settle::Settle;
use super::store::{BudgetStore, InMemoryBudgets};

/// A service whose calls pass the caps and reserve their budgets before they are sent, and
/// settle with what they spent.
///
/// `poll_ready` only delegates: a refusal is the call's error, never a service that stops
/// being ready.
pub struct Budget<S, St = InMemoryBudgets> {
    inner: S,
    budgets: Budgets<St>,
}

impl<S: Clone, St> Clone for Budget<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            budgets: self.budgets.clone(),
        }
    }
}

impl<S: std::fmt::Debug, St> std::fmt::Debug for Budget<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("inner", &self.inner)
            .field("budgets", &self.budgets)
            .finish()
    }
}

impl<S, St> Budget<S, St> {
    /// Wraps `inner` with `budgets`.
    pub fn new(inner: S, budgets: Budgets<St>) -> Self {
        Self { inner, budgets }
    }

    /// The budgets.
    pub fn budgets(&self) -> &Budgets<St> {
        &self.budgets
    }

    inner_service_accessors!();
}

impl<S, St, Req> Service<Req> for Budget<S, St>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: Settle,
    Req: BudgetRequest,
    St: BudgetStore,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, St>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        match self.budgets.admit(&mut request) {
            Ok(plan) => ResponseFuture::start(plan, inner, request),
            Err(refusal) => {
                tracing::event!(
                    target: "seawall::budget",
                    tracing::Level::INFO,
                    "seawall.reason" = %refusal,
                    "request refused"
                );
                ResponseFuture::refused(refusal)
            }
        }
    }
}
