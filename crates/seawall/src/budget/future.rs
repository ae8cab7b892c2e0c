//! The budget layer's response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::BoxError;
use tower_service::Service;

use super::error::BudgetExceeded;
use super::hold::{BudgetHold, Fallback, Plan, Spent};
use super::layer::Budgets;
use super::request::BudgetRequest;
use super::settle::Settle;
use super::store::{BudgetStore, Line};

pin_project! {
    /// Reserves the call's budgets, sends it (to the cheaper model if that is what fits),
    /// then settles the reservation with what the response spent.
    pub struct ResponseFuture<F, S, Req, St>
    where
        St: BudgetStore,
    {
        #[pin]
        state: State<F, S, Req, St::Reserve>,
        hold: Option<BudgetHold<St>>,
        // The lines being reserved.
        lines: Vec<Line>,
        fallback: Option<Fallback>,
        // The downgrade being reserved, and the refusal it answers.
        downgrading: Option<(Fallback, BudgetExceeded)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, R> {
        Refused { error: Option<BoxError> },
        Reserving { reserve: R, inner: Option<S>, request: Option<Req> },
        Calling { #[pin] future: F },
        Done,
    }
}

const POLLED_AFTER_COMPLETION: &str = "budget future polled after completion";

impl<F, S, Req, St: BudgetStore> ResponseFuture<F, S, Req, St> {
    pub(crate) fn reserving(budgets: &Budgets<St>, plan: Plan<St>, inner: S, request: Req) -> Self {
        let reserve = budgets.shared.store.reserve(&plan.lines);
        Self {
            state: State::Reserving {
                reserve,
                inner: Some(inner),
                request: Some(request),
            },
            hold: Some(plan.hold),
            lines: plan.lines,
            fallback: plan.fallback,
            downgrading: None,
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            state: State::Refused { error: Some(error) },
            hold: None,
            lines: Vec::new(),
            fallback: None,
            downgrading: None,
        }
    }
}

impl<F, S, Req, St> Future for ResponseFuture<F, S, Req, St>
where
    S: Service<Req, Future = F>,
    F: Future<Output = Result<S::Response, S::Error>>,
    S::Error: Into<BoxError>,
    S::Response: Settle,
    Req: BudgetRequest,
    St: BudgetStore,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Refused { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| POLLED_AFTER_COMPLETION.into());
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Reserving {
                    reserve,
                    inner,
                    request,
                } => {
                    let reserved = ready!(Pin::new(reserve).poll(cx));
                    let (Some(hold), Some(mut service), Some(mut request)) =
                        (this.hold.as_mut(), inner.take(), request.take())
                    else {
                        return Poll::Ready(Err(POLLED_AFTER_COMPLETION.into()));
                    };
                    match reserved {
                        Ok(()) => {
                            match this.downgrading.take() {
                                Some((fallback, reason)) => hold.downgraded(fallback, &reason),
                                None => hold.lines = mem::take(this.lines),
                            }
                            hold.sent = true;
                            let future = service.call(request);
                            this.state.set(State::Calling { future });
                        }
                        Err(refused) => {
                            let exceeded = hold.exceeded(this.lines, refused);
                            match this.fallback.take() {
                                Some(fallback) if request.set_model(&fallback.model) => {
                                    let reserve = hold.store_reserve(&fallback.lines);
                                    this.lines.clone_from(&fallback.lines);
                                    *this.downgrading = Some((fallback, exceeded));
                                    this.state.set(State::Reserving {
                                        reserve,
                                        inner: Some(service),
                                        request: Some(request),
                                    });
                                }
                                _ => {
                                    this.state.set(State::Done);
                                    return Poll::Ready(Err(exceeded.into()));
                                }
                            }
                        }
                    }
                }
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    let Some(mut hold) = this.hold.take() else {
                        return Poll::Ready(Err(POLLED_AFTER_COMPLETION.into()));
                    };
                    return Poll::Ready(match result {
                        Ok(response) => Ok(response.settle(hold)),
                        Err(error) => {
                            hold.settle(Spent::Nothing);
                            Err(error.into())
                        }
                    });
                }
                StateProj::Done => return Poll::Ready(Err(POLLED_AFTER_COMPLETION.into())),
            }
        }
    }
}

impl<F, S, Req, St: BudgetStore> fmt::Debug for ResponseFuture<F, S, Req, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("lines", &self.lines)
            .field("sent", &matches!(self.state, State::Calling { .. }))
            .finish_non_exhaustive()
    }
}
