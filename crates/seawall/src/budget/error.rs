//! The budget layer's refusals: nothing was sent for any of them.

use std::error::Error;
use std::fmt;
use std::time::{Duration, SystemTime};

use seawall_core::Cost;

use super::rule::Amount;
use super::window::Window;

/// A call that does not fit a budget: refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetExceeded {
    /// The budget's name (`scope[:value]:window:unit`).
    pub budget: String,
    /// The scope (`key`, `tenant`, `user`, `global` or a custom name).
    pub scope: String,
    /// The scope's value whose budget is spent (a key's name, a user id).
    pub value: String,
    /// The budget's window.
    pub window: Window,
    /// Used in the window, reservations of calls in flight included.
    pub used: Amount,
    /// The limit.
    pub limit: Amount,
    /// What this call needed (its prompt estimate and reserved output, priced for money).
    pub needed: Amount,
    /// When the window ends (`None` for a lifetime budget).
    pub resets_at: Option<SystemTime>,
}

impl BudgetExceeded {
    /// How long until the window ends, from `now`.
    pub fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        self.resets_at
            .map(|at| at.duration_since(now).unwrap_or_default())
    }
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "budget {} is spent: {} of {} used this {}, and the call needs {}",
            self.budget, self.used, self.limit, self.window, self.needed
        )
    }
}

impl Error for BudgetExceeded {}

/// The budgets' shared store could not be asked, and it is set to refuse rather than let
/// spending go uncounted: nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BudgetUnavailable;

impl fmt::Display for BudgetUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the shared budget state is unavailable (fail-closed)")
    }
}

impl Error for BudgetUnavailable {}

/// One request above a per-request cap: refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestCapExceeded {
    /// The estimated input is above `max_input_tokens`.
    InputTokens {
        /// The prompt estimate.
        estimated: u64,
        /// The cap.
        cap: u64,
    },
    /// `max_tokens` is above `max_output_tokens` and the policy refuses (or the request's
    /// body cannot be rewritten).
    OutputTokens {
        /// What the request asked for.
        requested: u64,
        /// The cap.
        cap: u64,
    },
    /// The estimated cost is above `max_cost`.
    Cost {
        /// The estimate.
        estimated: Cost,
        /// The cap.
        cap: Cost,
    },
}

impl RequestCapExceeded {
    /// The request parameter at fault, as a provider would name it.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Self::InputTokens { .. } => Some("messages"),
            Self::OutputTokens { .. } => Some("max_tokens"),
            Self::Cost { .. } => None,
        }
    }
}

impl fmt::Display for RequestCapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InputTokens { estimated, cap } => write!(
                f,
                "the prompt is about {estimated} tokens, above this gateway's cap of {cap} per request"
            ),
            Self::OutputTokens { requested, cap } => write!(
                f,
                "max_tokens {requested} is above the cap of {cap} output tokens per request"
            ),
            Self::Cost { estimated, cap } => write!(
                f,
                "the call is estimated at {estimated}, above the cap of {cap} per request"
            ),
        }
    }
}

impl Error for RequestCapExceeded {}

/// A call under a money budget or a cost cap, for a model the price table does not know:
/// its cost could not be bounded, so it was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unpriced {
    /// The model.
    pub model: String,
}

impl fmt::Display for Unpriced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no price is configured for model {:?}, and a spending limit applies to this call",
            self.model
        )
    }
}

impl Error for Unpriced {}
