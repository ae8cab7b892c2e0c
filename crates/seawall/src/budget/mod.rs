//! Spend control: the cost of every call, per-request caps, and budgets per scope that a
//! burst of concurrent calls cannot overshoot.
//!
//! - **Cost on every call.** Each attempt's usage is priced at its own model's price
//!   ([`Prices`](seawall_core::Prices): a dated built-in table, overridable), cached input
//!   and cache writes at their own prices. The cost is on [`ChatResponse::cost`](seawall_core::ChatResponse::cost) and in the
//!   [`Trail`](seawall_core::Trail) (`cost`, and `charges` per attempt); a stream's cost is
//!   written to the call's trail recorder when the stream ends. A model without a price has
//!   an unknown cost (`None`), never zero.
//! - **Per-request caps** ([`RequestCaps`]): estimated input tokens, output tokens (clamp
//!   `max_tokens` or refuse, [`OverCap`]), estimated cost. A request above one is refused
//!   ([`RequestCapExceeded`]) before anything is sent.
//! - **Budgets** ([`BudgetRule`]) per [`Scope`] — the virtual key, the tenant, the request's
//!   `user`, every call, or a value you extract — over calendar [`Window`]s (hour, day,
//!   month, in UTC or an offset), in tokens or in money, several at once.
//! - **Reserve, then settle.** A call reserves its prompt estimate plus its output cap
//!   (priced, for money) in every budget that holds for it, all or none, before it is sent;
//!   when the response (or the stream's end) reports what was used, the reservation is
//!   replaced by it. A call that does not fit is refused with [`BudgetExceeded`] (which
//!   budget, the window, used, limit, when it resets), never sent. Because the reservation
//!   is an upper bound, concurrent calls cannot overshoot a budget: a typed call under a
//!   budget always carries an output cap (`default_output_tokens` when it set none). A
//!   stream its caller abandons is charged for what the provider produced (its last usage,
//!   or an estimate from the content delivered). A call dropped before its answer is
//!   charged as reserved. Attempts beyond the first (retries, a recovered stream) are
//!   charged as they happened, and may take a budget past its limit by that much; the
//!   next call is refused.
//! - **Downgrade** instead of refusing ([`BudgetBuilder::downgrade_to`]): the call goes to
//!   a cheaper model when it fits there, and the trail says so ([`Downgrade`](seawall_core::Downgrade)).
//! - **Alerts** ([`AlertRule`]): spending per window past a threshold, one call above a
//!   cost, a budget crossing a share of its limit; each once per window, to a callback.
//! - **What is left** ([`Budgets::status`]): used, limit, remaining and reset time of each
//!   budget of a scope value.
//! - **What was charged** ([`BudgetBuilder::on_settle`]): each call's charges, once, as it
//!   settles — usage reports and cost metrics built on it count what the budgets counted.
//! - The counters sit behind [`BudgetStore`]; the in-process [`InMemoryBudgets`] reserves
//!   with one compare-and-swap per budget (no lock).
//!
//! Where it sits: `Deadline → Budget → Cache / Idempotency → Failover → ...`; a cache hit
//! or a replayed answer costs nothing. It works on the typed path and on raw HTTP
//! ([`BudgetRequest`], [`Settle`]); raw requests name their model with a [`RequestedModel`]
//! extension, and are refused rather than rewritten.
//!
//! ```
//! use seawall::budget::{BudgetExceeded, BudgetLayer, BudgetRule, Scope, Window};
//! use seawall_core::{
//!     AssistantMessage, BoxError, ChatRequest, ChatResponse, FinishReason, Message,
//!     ProviderKind, Usage,
//! };
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Each user may spend 150 tokens a day.
//! let budgets = BudgetLayer::builder()
//!     .budget(BudgetRule::tokens(Scope::User, Window::Day, 150))
//!     .default_output_tokens(100)
//!     .build();
//! let mut service = ServiceBuilder::new().layer(budgets.clone()).service_fn(
//!     |request: ChatRequest| async move {
//!         let answer = AssistantMessage::text("Paris");
//!         Ok::<_, BoxError>(
//!             ChatResponse::new(ProviderKind::OpenAi, request.model.as_ref(), answer, FinishReason::Stop)
//!                 .with_usage(Usage::new(20, 2)),
//!         )
//!     },
//! );
//! let call = || ChatRequest::new("gpt-4o-mini", [Message::user("Capital of France?")]).with_user("ada");
//!
//! let response = service.ready().await?.call(call()).await?;
//! // 22 tokens at gpt-4o-mini's price.
//! assert!(response.cost.is_some());
//! let left = budgets.budgets().status("user", "ada");
//! assert_eq!(left[0].used, seawall::budget::Amount::Tokens(22));
//!
//! // A call whose reservation (prompt + 100 output tokens) does not fit is not sent.
//! service.ready().await?.call(call()).await?;
//! let refused = service.ready().await?.call(call()).await.unwrap_err();
//! assert!(refused.downcast_ref::<BudgetExceeded>().is_some());
//! # Ok(())
//! # }
//! ```

mod alert;
mod error;
mod future;
mod hold;
mod layer;
mod request;
mod rule;
mod service;
mod settle;
mod store;
mod window;

pub use alert::{Alert, AlertKind, AlertRule};
pub use error::{BudgetExceeded, BudgetUnavailable, RequestCapExceeded, Unpriced};
pub use future::ResponseFuture;
pub use hold::BudgetHold;
pub use layer::{BudgetBuilder, BudgetLayer, BudgetStatus, Budgets, Settlement};
pub use request::{BudgetRequest, RequestedModel};
pub use rule::{Amount, BudgetRule, CustomScope, Limit, OverCap, RequestCaps, Scope, ScopeView};
pub use service::Budget;
pub use settle::Settle;
pub use store::{BudgetStore, InMemoryBudgets, Line, Refused};
pub use window::Window;
