//! Alerts on spending: per window, per call, and budgets crossing a share of their limit.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use seawall_core::Cost;

use super::layer::Shared;
use super::rule::Amount;
use super::store::{BudgetStore, Line};
use super::window::Window;

/// When to raise an [`Alert`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AlertRule {
    /// Spending through the layer in one `window` passes `threshold` (once per window).
    Spend {
        /// The window spending is summed over.
        window: Window,
        /// The amount that raises the alert.
        threshold: Cost,
    },
    /// One call costs more than `threshold`.
    ExpensiveCall {
        /// The cost that raises the alert.
        threshold: Cost,
    },
    /// A budget's use in its window reaches `share` of its limit (0.8 for 80 %; once per
    /// budget, scope value and window).
    BudgetShare {
        /// The share of the limit, above 0.
        share: f64,
    },
}

impl AlertRule {
    /// Spending in `window` passes `usd` dollars.
    pub fn spend(window: Window, usd: f64) -> Self {
        Self::Spend {
            window,
            threshold: Cost::from_usd(usd),
        }
    }

    /// One call costs more than `usd` dollars.
    pub fn expensive_call(usd: f64) -> Self {
        Self::ExpensiveCall {
            threshold: Cost::from_usd(usd),
        }
    }

    /// A budget reaches `share` of its limit (0.8 for 80 %, 1.0 when it is spent).
    pub fn budget_share(share: f64) -> Self {
        Self::BudgetShare { share }
    }
}

/// An alert, as given to the layer's alert callback.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// When.
    pub at: SystemTime,
}

/// What an [`Alert`] is about.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AlertKind {
    /// Spending in the current `window` passed `threshold`.
    Spend {
        /// The window.
        window: Window,
        /// Spent so far in it.
        spent: Cost,
        /// The rule's threshold.
        threshold: Cost,
    },
    /// One call cost more than `threshold`.
    ExpensiveCall {
        /// What it cost.
        cost: Cost,
        /// The rule's threshold.
        threshold: Cost,
        /// The model that answered it (the last one, for a call of several attempts).
        model: String,
    },
    /// A budget reached `share` of its limit.
    BudgetShare {
        /// The budget's name (`scope[:value]:window:unit`).
        budget: String,
        /// The scope's value the budget counted (a key's name, a user id).
        value: String,
        /// The budget's window.
        window: Window,
        /// Used in the window.
        used: Amount,
        /// The limit.
        limit: Amount,
        /// The rule's share.
        share: f64,
    },
}

impl AlertKind {
    /// A short name for logs and metrics: `spend`, `expensive_call`, `budget_share`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Spend { .. } => "spend",
            Self::ExpensiveCall { .. } => "expensive_call",
            Self::BudgetShare { .. } => "budget_share",
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AlertKind::Spend {
                window,
                spent,
                threshold,
            } => write!(f, "spent {spent} this {window}, past {threshold}"),
            AlertKind::ExpensiveCall {
                cost,
                threshold,
                model,
            } => write!(f, "one call to {model} cost {cost}, above {threshold}"),
            AlertKind::BudgetShare {
                budget,
                value,
                used,
                limit,
                share,
                ..
            } => write!(
                f,
                "budget {budget} of {value:?} at {:.0} %: {used} of {limit}",
                share * 100.0
            ),
        }
    }
}

/// Where alerts go.
pub(crate) type AlertSink = Arc<dyn Fn(&Alert) + Send + Sync>;

impl<St: BudgetStore> Shared<St> {
    /// Raises the share alerts `line`'s budget reached at `used`, once per window.
    pub(crate) fn share_alerts(&self, line: &Line, used: u64, window: u64) {
        let Some(sink) = &self.on_alert else { return };
        let rule = &self.rules[line.budget];
        for (mark, alert) in self.alerts.iter().enumerate() {
            let AlertRule::BudgetShare { share } = *alert else {
                continue;
            };
            let threshold = (line.limit as f64 * share).ceil() as u64;
            if used >= threshold {
                let alert = Alert {
                    kind: AlertKind::BudgetShare {
                        budget: self.names[line.budget].to_string(),
                        value: line.value.to_string(),
                        window: rule.window,
                        used: rule.limit.amount(used),
                        limit: rule.limit.amount(line.limit),
                        share,
                    },
                    at: self.clock.system_now(),
                };
                let sink = Arc::clone(sink);
                self.store.alert_once(
                    line.budget,
                    &line.value,
                    window,
                    mark as u32,
                    Box::new(move || sink(&alert)),
                );
            }
        }
    }

    /// Counts `cost` in the spending windows and raises the spending and expensive-call
    /// alerts it calls for; `model` names the model that answered.
    pub(crate) fn spend_alerts(&self, cost: Cost, local: i64, model: impl FnOnce() -> String) {
        let Some(sink) = &self.on_alert else { return };
        let mut model = Some(model);
        for (index, alert) in self.alerts.iter().enumerate() {
            match *alert {
                AlertRule::ExpensiveCall { threshold } if cost > threshold => {
                    let model = model.take().map(|model| model()).unwrap_or_default();
                    sink(&Alert {
                        kind: AlertKind::ExpensiveCall {
                            cost,
                            threshold,
                            model,
                        },
                        at: self.clock.system_now(),
                    });
                }
                AlertRule::Spend { window, threshold } => {
                    let counter = self.spend_counter(index);
                    let now = window.index(local);
                    let line = Line {
                        budget: counter,
                        value: Arc::clone(&self.global),
                        window: now,
                        amount: 0,
                        limit: u64::MAX,
                    };
                    let spent = self.store.settle(&line, cost.nanos(), now);
                    if let Some(spent) = spent
                        && spent >= threshold.nanos()
                    {
                        let alert = Alert {
                            kind: AlertKind::Spend {
                                window,
                                spent: Cost::from_nanos(spent),
                                threshold,
                            },
                            at: self.clock.system_now(),
                        };
                        let sink = Arc::clone(sink);
                        self.store
                            .alert_once(counter, "", now, 0, Box::new(move || sink(&alert)));
                    }
                }
                _ => {}
            }
        }
    }
}
