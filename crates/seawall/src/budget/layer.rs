//! The budget layer, its builder, and the handle to its budgets.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use seawall_core::{Cost, HeuristicEstimator, ModelPrice, Prices, TokenEstimator};
use tower_layer::Layer;

use super::alert::{Alert, AlertRule, AlertSink};
use super::rule::{Amount, BudgetRule, RequestCaps, Scope};
use super::service::Budget;
use super::store::{BudgetStore, InMemoryBudgets, Line};
use super::window::{WallClock, Window};

/// Applies budgets, per-request caps and cost accounting to a service.
///
/// Every service it makes, and every clone, shares one set of counters
/// ([`Budgets`]); cloning never resets a budget.
pub struct BudgetLayer<St = InMemoryBudgets> {
    budgets: Budgets<St>,
}

impl<St> Clone for BudgetLayer<St> {
    fn clone(&self) -> Self {
        Self {
            budgets: self.budgets.clone(),
        }
    }
}

impl<St> fmt::Debug for BudgetLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetLayer")
            .field("budgets", &self.budgets)
            .finish()
    }
}

impl BudgetLayer {
    /// A builder, with the built-in prices and the in-process store.
    pub fn builder() -> BudgetBuilder {
        BudgetBuilder::new(InMemoryBudgets::new())
    }
}

impl<St> BudgetLayer<St> {
    /// The shared budgets: what each has used, what is left.
    pub fn budgets(&self) -> &Budgets<St> {
        &self.budgets
    }
}

impl<S, St> Layer<S> for BudgetLayer<St> {
    type Service = Budget<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Budget::new(inner, self.budgets.clone())
    }
}

/// Builds a [`BudgetLayer`].
pub struct BudgetBuilder<St = InMemoryBudgets> {
    store: St,
    rules: Vec<BudgetRule>,
    caps: RequestCaps,
    prices: Prices,
    alerts: Vec<AlertRule>,
    on_alert: Option<AlertSink>,
    on_settle: Option<SettleSink>,
    downgrade: Option<Arc<str>>,
    estimator: Arc<dyn TokenEstimator>,
    default_output: u32,
    utc_offset_secs: i32,
    clock_at: Option<SystemTime>,
}

impl<St: BudgetStore> BudgetBuilder<St> {
    /// A builder counting in `store`.
    pub fn new(store: St) -> Self {
        Self {
            store,
            rules: Vec::new(),
            caps: RequestCaps::default(),
            prices: Prices::builtin(),
            alerts: Vec::new(),
            on_alert: None,
            on_settle: None,
            downgrade: None,
            estimator: Arc::new(HeuristicEstimator::default()),
            default_output: 4_096,
            utc_offset_secs: 0,
            clock_at: None,
        }
    }

    /// Adds a budget.
    #[must_use]
    pub fn budget(mut self, rule: BudgetRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Sets the per-request caps.
    #[must_use]
    pub fn caps(mut self, caps: RequestCaps) -> Self {
        self.caps = caps;
        self
    }

    /// Sets the price table (default: [`Prices::builtin`]).
    #[must_use]
    pub fn prices(mut self, prices: Prices) -> Self {
        self.prices = prices;
        self
    }

    /// Adds an alert rule.
    #[must_use]
    pub fn alert(mut self, rule: AlertRule) -> Self {
        self.alerts.push(rule);
        self
    }

    /// Where alerts go. Called on the task that settles the call: keep it short (send to a
    /// channel for anything slow).
    #[must_use]
    pub fn on_alert(mut self, sink: impl Fn(&Alert) + Send + Sync + 'static) -> Self {
        self.on_alert = Some(Arc::new(sink));
        self
    }

    /// Called once per call as it settles, with what it was charged: each attempt's usage
    /// on its target and model (an abandoned stream's estimate, a dropped call's
    /// reservation), the cost, and the caller's key and tenant. Usage reports and cost
    /// metrics built on it count exactly what the budgets counted. Called on the task that
    /// settles the call (or in a stream's `Drop`): keep it short.
    #[must_use]
    pub fn on_settle(mut self, sink: impl Fn(&Settlement<'_>) + Send + Sync + 'static) -> Self {
        self.on_settle = Some(Arc::new(sink));
        self
    }

    /// A call a budget refuses is sent to `model` instead, when it fits there (the trail
    /// says so); otherwise it is refused.
    #[must_use]
    pub fn downgrade_to(mut self, model: impl Into<Arc<str>>) -> Self {
        self.downgrade = Some(model.into());
        self
    }

    /// How prompts are weighed (default: [`HeuristicEstimator`], an upper bound).
    #[must_use]
    pub fn estimator(mut self, estimator: impl TokenEstimator + 'static) -> Self {
        self.estimator = Arc::new(estimator);
        self
    }

    /// The output reserved for a call that sets no `max_tokens` (default 4,096); a typed
    /// call under a budget is sent with that cap, so it cannot spend more than it reserved.
    #[must_use]
    pub fn default_output_tokens(mut self, tokens: u32) -> Self {
        self.default_output = tokens;
        self
    }

    /// The offset from UTC that windows start in (default 0: UTC midnight).
    #[must_use]
    pub fn utc_offset_secs(mut self, secs: i32) -> Self {
        self.utc_offset_secs = secs;
        self
    }

    /// Reads the time of day as `at` now (default: the system clock), then advances on
    /// tokio's clock: tests place themselves just before a boundary.
    #[must_use]
    pub fn clock_starting_at(mut self, at: SystemTime) -> Self {
        self.clock_at = Some(at);
        self
    }

    /// The layer.
    pub fn build(self) -> BudgetLayer<St> {
        let mut scopes: Vec<Scope> = Vec::new();
        let mut rule_scope = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let index = scopes
                .iter()
                .position(|scope| scope.same_as(&rule.scope))
                .unwrap_or_else(|| {
                    scopes.push(rule.scope.clone());
                    scopes.len() - 1
                });
            rule_scope.push(index);
        }
        let mut general = vec![Vec::new(); scopes.len()];
        let mut specific: Vec<HashMap<Arc<str>, Vec<usize>>> = vec![HashMap::new(); scopes.len()];
        for (index, rule) in self.rules.iter().enumerate() {
            let scope = rule_scope[index];
            match &rule.only {
                Some(value) => specific[scope]
                    .entry(Arc::clone(value))
                    .or_default()
                    .push(index),
                None => general[scope].push(index),
            }
        }
        let clock = WallClock::new(
            self.clock_at.unwrap_or_else(SystemTime::now),
            self.utc_offset_secs,
        );
        let downgrade_price = self
            .downgrade
            .as_deref()
            .and_then(|model| self.prices.get(model).copied());
        BudgetLayer {
            budgets: Budgets {
                shared: Arc::new(Shared {
                    store: self.store,
                    names: self
                        .rules
                        .iter()
                        .map(|rule| Arc::from(rule.name()))
                        .collect(),
                    rules: self.rules.into_boxed_slice(),
                    scopes: scopes
                        .into_iter()
                        .zip(general)
                        .zip(specific)
                        .map(|((scope, general), specific)| ScopeRules {
                            scope,
                            general,
                            specific,
                        })
                        .collect(),
                    caps: self.caps,
                    prices: self.prices,
                    alerts: self.alerts.into_boxed_slice(),
                    on_alert: self.on_alert,
                    on_settle: self.on_settle,
                    downgrade: self.downgrade.map(|model| (model, downgrade_price)),
                    global: Arc::from(""),
                    estimator: self.estimator,
                    default_output: self.default_output,
                    clock,
                }),
            },
        }
    }
}

impl<St> fmt::Debug for BudgetBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetBuilder")
            .field("rules", &self.rules)
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

/// The budgets of a [`BudgetLayer`]: shared by every clone of the layer and its services.
pub struct Budgets<St = InMemoryBudgets> {
    pub(crate) shared: Arc<Shared<St>>,
}

impl<St> Clone for Budgets<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St> fmt::Debug for Budgets<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budgets")
            .field("rules", &self.shared.rules)
            .field("caps", &self.shared.caps)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ScopeRules {
    pub(crate) scope: Scope,
    /// Budgets for every value of the scope.
    pub(crate) general: Vec<usize>,
    /// Budgets for one value only.
    pub(crate) specific: HashMap<Arc<str>, Vec<usize>>,
}

pub(crate) struct Shared<St> {
    pub(crate) store: St,
    pub(crate) rules: Box<[BudgetRule]>,
    /// Each rule's name, made once (status reads them on every call of a budgeted key).
    pub(crate) names: Box<[Arc<str>]>,
    pub(crate) scopes: Box<[ScopeRules]>,
    pub(crate) caps: RequestCaps,
    pub(crate) prices: Prices,
    pub(crate) alerts: Box<[AlertRule]>,
    pub(crate) on_alert: Option<AlertSink>,
    pub(crate) on_settle: Option<SettleSink>,
    pub(crate) downgrade: Option<(Arc<str>, Option<ModelPrice>)>,
    /// The global scope's one value (empty), shared rather than allocated per call.
    pub(crate) global: Arc<str>,
    pub(crate) estimator: Arc<dyn TokenEstimator>,
    pub(crate) default_output: u32,
    pub(crate) clock: WallClock,
}

/// What one call was charged, as [`BudgetBuilder::on_settle`] receives it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Settlement<'a> {
    /// The caller's virtual key (its name), if the call carried one.
    pub virtual_key: Option<&'a str>,
    /// The caller's tenant, if the call carried one.
    pub tenant: Option<&'a str>,
    /// Each attempt's usage on its target and model, as charged.
    pub charges: &'a [seawall_core::Charge],
    /// The call's cost, when every model has a price.
    pub cost: Option<Cost>,
}

/// Where settlements go.
pub(crate) type SettleSink = Arc<dyn Fn(&Settlement<'_>) + Send + Sync>;

/// One budget's state for one scope value, as [`Budgets::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetStatus {
    /// The budget's name (`scope[:value]:window:unit`).
    pub budget: Arc<str>,
    /// The window.
    pub window: Window,
    /// Used in the current window, reservations of calls in flight included.
    pub used: Amount,
    /// The limit.
    pub limit: Amount,
    /// What is left.
    pub remaining: Amount,
    /// When the window ends (`None` for a lifetime budget).
    pub resets_at: Option<SystemTime>,
}

impl<St: BudgetStore> Budgets<St> {
    /// The state of every budget that holds for `value` of the scope named `scope` (`key`,
    /// `tenant`, `user`, `global`, or a custom scope's name), in the current windows.
    pub fn status(&self, scope: &str, value: &str) -> Vec<BudgetStatus> {
        let shared = &*self.shared;
        let local = shared.clock.local_now();
        let Some(rules) = shared.scopes.iter().find(|s| s.scope.name() == scope) else {
            return Vec::new();
        };
        let specific = rules.specific.get(value).map_or(&[][..], Vec::as_slice);
        rules
            .general
            .iter()
            .chain(specific)
            .map(|&index| {
                let rule = &shared.rules[index];
                let window = rule.window.index(local);
                let used = shared.store.used(index, value, window);
                let limit = rule.limit.units();
                BudgetStatus {
                    budget: Arc::clone(&shared.names[index]),
                    window: rule.window,
                    used: rule.limit.amount(used),
                    limit: rule.limit.amount(limit),
                    remaining: rule.limit.amount(limit.saturating_sub(used)),
                    resets_at: shared.resets_at(rule.window, window),
                }
            })
            .collect()
    }

    /// The price table.
    pub fn prices(&self) -> &Prices {
        &self.shared.prices
    }

    /// The cost of `usage` on `model`, at the layer's prices.
    pub fn cost(&self, model: &str, usage: &seawall_core::Usage) -> Option<Cost> {
        self.shared.prices.cost(model, usage)
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.shared.store
    }
}

impl<St> Shared<St> {
    /// When window `index` of `window` ends.
    pub(crate) fn resets_at(&self, window: Window, index: u64) -> Option<SystemTime> {
        window
            .start(index + 1)
            .map(|local| self.clock.system_time(local))
    }

    /// The budget index of spend-alert rule `alert` in the store (after the budgets).
    pub(crate) fn spend_counter(&self, alert: usize) -> usize {
        self.rules.len() + alert
    }

    /// A line of budget `index` for `value`, its window and amount still to be set.
    pub(crate) fn line(&self, index: usize, value: &Arc<str>) -> Line {
        Line {
            budget: index,
            value: Arc::clone(value),
            window: 0,
            amount: 0,
            limit: self.rules[index].limit.units(),
        }
    }
}
