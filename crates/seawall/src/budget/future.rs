//! The budget layer's response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use pin_project_lite::pin_project;
use seawall_core::{BoxError, ErrorWithTrail};
use tower_service::Service;

use super::error::{BudgetExceeded, BudgetUnavailable};
use super::hold::{BudgetHold, Plan, Spent};
use super::request::BudgetRequest;
use super::settle::Settle;
use super::store::{BudgetStore, Line, Refused};

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
        // The refusal a downgrade being reserved answers (boxed: rare, and the future
        // stays small on the common path).
        downgrading: Option<Box<BudgetExceeded>>,
        // The reservation's outcome when it was known at once.
        reserved: Option<Result<(), Refused>>,
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
    /// Reserves `plan`'s lines and, when the store answers at once and they fit (or there
    /// is nothing to reserve), sends the call now, so the request is not kept.
    pub(crate) fn start(plan: Plan<St>, mut inner: S, request: Req) -> Self
    where
        S: Service<Req, Future = F>,
    {
        let Plan { lines, mut hold } = plan;
        let mut reserve = hold.store_reserve(&lines);
        let reserved = match Pin::new(&mut reserve).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => {
                hold.lines = lines;
                hold.sent = true;
                return Self {
                    state: State::Calling {
                        future: inner.call(request),
                    },
                    hold: Some(hold),
                    lines: Vec::new(),
                    downgrading: None,
                    reserved: None,
                };
            }
            Poll::Ready(Err(refused)) => Some(Err(refused)),
            Poll::Pending => None,
        };
        Self {
            state: State::Reserving {
                reserve,
                inner: Some(inner),
                request: Some(request),
            },
            hold: Some(hold),
            lines,
            downgrading: None,
            reserved,
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            state: State::Refused { error: Some(error) },
            hold: None,
            lines: Vec::new(),
            downgrading: None,
            reserved: None,
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
                    let reserved = match this.reserved.take() {
                        Some(reserved) => reserved,
                        None => ready!(Pin::new(reserve).poll(cx)),
                    };
                    let (Some(hold), Some(mut service), Some(mut request)) =
                        (this.hold.as_mut(), inner.take(), request.take())
                    else {
                        return Poll::Ready(Err(POLLED_AFTER_COMPLETION.into()));
                    };
                    match reserved {
                        Ok(()) => {
                            let lines = mem::take(this.lines);
                            match this.downgrading.take() {
                                Some(reason) => hold.downgraded(lines, &reason),
                                None => hold.lines = lines,
                            }
                            hold.sent = true;
                            let future = service.call(request);
                            this.state.set(State::Calling { future });
                        }
                        Err(refused) if refused.unavailable => {
                            tracing::warn!(
                                target: "seawall::budget",
                                "budget state unavailable, call refused"
                            );
                            this.state.set(State::Done);
                            return Poll::Ready(Err(BudgetUnavailable.into()));
                        }
                        Err(refused) => {
                            let exceeded = hold.exceeded(this.lines, refused);
                            // One downgrade at most: a refusal of the cheaper model stands.
                            let fallback = match this.downgrading {
                                Some(_) => None,
                                None => hold.fallback(this.lines),
                            };
                            match fallback {
                                Some((model, lines)) if request.set_model(&model) => {
                                    tracing::event!(
                                        target: "seawall::budget",
                                        tracing::Level::INFO,
                                        "seawall.budget" = &*exceeded.budget,
                                        "seawall.downgrade_to" = &*model,
                                        "budget downgrade"
                                    );
                                    let reserve = hold.store_reserve(&lines);
                                    *this.lines = lines;
                                    *this.downgrading = Some(Box::new(exceeded));
                                    this.state.set(State::Reserving {
                                        reserve,
                                        inner: Some(service),
                                        request: Some(request),
                                    });
                                }
                                _ => {
                                    tracing::event!(
                                        target: "seawall::budget",
                                        tracing::Level::INFO,
                                        "seawall.budget" = &*exceeded.budget,
                                        "seawall.scope_value" = &*exceeded.value,
                                        "seawall.reason" = %exceeded,
                                        "budget refused"
                                    );
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
                        Ok(mut response) => {
                            response.settle(hold);
                            Ok(response)
                        }
                        Err(error) => {
                            // A router's error carries its trail: attempts that used tokens
                            // before failing are charged.
                            let error: BoxError = error.into();
                            let trail = ErrorWithTrail::find(&*error).map(ErrorWithTrail::trail);
                            hold.settle(Spent::Nothing, trail);
                            Err(error)
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
