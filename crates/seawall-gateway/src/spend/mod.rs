//! Spending in the gateway: the budget layer built from the config, the usage report, and
//! where alerts go.

pub(crate) mod config;
mod report;
mod webhook;

use std::sync::Arc;
use std::time::SystemTime;

use seawall::budget::{
    Alert, AlertRule, Amount, BudgetBuilder, BudgetLayer, BudgetRule, Budgets, OverCap,
    RequestCaps, Scope, Settlement, Window,
};
use seawall_core::{Cost, ModelPrice, Prices};

use crate::config::{Config, OverOutputConfig, PriceConfig};
use crate::state::BudgetState;

pub(crate) use report::UsageReport;
pub(crate) use webhook::{AlertOut, TargetAlert};

impl PriceConfig {
    fn price(&self) -> ModelPrice {
        let mut price = ModelPrice::per_million(self.input, self.output);
        if let Some(cached) = self.cached_input {
            price = price.cached_input(cached);
        }
        if let Some(writes) = self.cache_write {
            price = price.cache_write(writes);
        }
        if let Some(reasoning) = self.reasoning {
            price = price.reasoning(reasoning);
        }
        price
    }
}

/// The price table: the built-in one, each target's own prices for its model, then
/// `[prices]`; and each group named at the dearest price among its targets (what a call to
/// it is reserved at), unless `[prices]` names the group itself.
pub(crate) fn prices(config: &Config) -> Prices {
    let mut prices = Prices::builtin();
    for t in &config.targets {
        if let (Some(input), Some(output)) = (t.input_price_per_mtok, t.output_price_per_mtok) {
            prices = prices.with(t.model.clone(), ModelPrice::per_million(input, output));
        }
    }
    for (model, price) in &config.prices {
        prices = prices.with(model.clone(), price.price());
    }
    for g in &config.groups {
        if g.prefix().is_some() || config.prices.contains_key(&g.name) {
            continue;
        }
        let dearest = g
            .targets
            .iter()
            .map(|name| {
                let target = config.targets.iter().find(|t| &t.name == name)?;
                prices.get(&target.model).copied()
            })
            .try_fold(None::<ModelPrice>, |max, price| {
                price.map(|price| Some(max.map_or(price, |max| max.max(price))))
            });
        if let Some(Some(price)) = dearest {
            prices = prices.with(g.name.clone(), price);
        }
    }
    prices
}

/// Each budget of `config`'s layer, in the layer's order (that of [`layer`]): its key, unit
/// and window. A budget a reload keeps by identity keeps what it has counted, under its
/// new limit.
pub(crate) fn budget_identities(config: &Config) -> Vec<String> {
    let mut identities = Vec::new();
    for k in &config.keys {
        if k.token_budget.is_some() {
            identities.push(format!("{}\0tokens\0{:?}", k.name, Window::Lifetime));
        }
        for budget in &k.budgets {
            let window = Window::parse(&budget.window).unwrap_or(Window::Lifetime);
            let unit = match (budget.tokens, budget.usd) {
                (Some(_), _) => "tokens",
                (None, Some(_)) => "usd",
                (None, None) => continue,
            };
            identities.push(format!("{}\0{unit}\0{window:?}", k.name));
        }
    }
    identities
}

/// The budget layer of `config`: each key's budgets, the per-request caps, the downgrade
/// group, the alert rules, alerts sent to `alerts`; each call's charges counted in `report`
/// as it settles, so it counts exactly what the budgets counted.
pub(crate) fn layer(
    config: &Config,
    prices: Prices,
    alerts: &AlertOut,
    report: Arc<UsageReport>,
    store: crate::state::BudgetState,
) -> BudgetLayer<crate::state::BudgetState> {
    let b = &config.budget;
    let mut caps = RequestCaps::new();
    if let Some(tokens) = b.max_input_tokens {
        caps = caps.max_input_tokens(tokens);
    }
    if let Some(tokens) = b.max_output_tokens {
        let policy = match b.over_output {
            OverOutputConfig::Clamp => OverCap::Clamp,
            OverOutputConfig::Refuse => OverCap::Refuse,
        };
        caps = caps.max_output_tokens(tokens, policy);
    }
    if let Some(usd) = b.max_cost_usd {
        caps = caps.max_cost_usd(usd);
    }
    let mut builder = BudgetBuilder::new(store)
        .prices(prices.clone())
        .caps(caps)
        .utc_offset_secs(
            b.utc_offset
                .as_deref()
                .and_then(config::parse_utc_offset)
                .unwrap_or(0),
        );
    if let Some(tokens) = b.default_output_tokens {
        builder = builder.default_output_tokens(tokens);
    }
    if let Some(group) = &b.downgrade_group {
        builder = builder.downgrade_to(group.as_str());
    }
    for k in &config.keys {
        let name: Arc<str> = Arc::from(k.name.as_str());
        if let Some(tokens) = k.token_budget {
            builder = builder.budget(
                BudgetRule::tokens(Scope::VirtualKey, Window::Lifetime, tokens).only(name.clone()),
            );
        }
        for budget in &k.budgets {
            let window = Window::parse(&budget.window).unwrap_or(Window::Lifetime);
            let rule = match (budget.tokens, budget.usd) {
                (Some(tokens), _) => BudgetRule::tokens(Scope::VirtualKey, window, tokens),
                (None, Some(usd)) => BudgetRule::usd(Scope::VirtualKey, window, usd),
                // Refused by validation.
                (None, None) => continue,
            };
            builder = builder.budget(rule.only(name.clone()));
        }
    }
    for a in &config.alerts {
        let rule = match (a.spend_usd, a.call_usd, a.budget_share) {
            (Some(usd), _, _) => {
                let window = a
                    .window
                    .as_deref()
                    .and_then(Window::parse)
                    .unwrap_or(Window::Hour);
                AlertRule::spend(window, usd)
            }
            (None, Some(usd), _) => AlertRule::expensive_call(usd),
            (None, None, Some(share)) => AlertRule::budget_share(share),
            (None, None, None) => continue,
        };
        builder = builder.alert(rule);
    }
    let out = alerts.clone();
    builder
        .on_alert(move |alert: &Alert| out.send(alert))
        .on_settle(move |settled: &Settlement<'_>| {
            account(&prices, &report, settled);
        })
        .build()
}

/// Adds one call's charges to the usage report: each attempt on its own model and target,
/// at its own price.
fn account(prices: &Prices, report: &UsageReport, settled: &Settlement<'_>) {
    for charge in settled.charges {
        let cost = prices.cost(&charge.model, &charge.usage);
        report.record(
            settled.virtual_key,
            &charge.model,
            charge.target.as_ref().map(|t| t.as_str()),
            &charge.usage,
            cost,
        );
    }
}

/// What a key has left, for the response headers: the least remaining per unit, and when
/// that budget resets.
pub(crate) struct Remaining {
    pub(crate) usd: Option<(Cost, Option<SystemTime>)>,
    pub(crate) tokens: Option<(u64, Option<SystemTime>)>,
}

/// The tightest of `key`'s budgets, per unit.
pub(crate) fn remaining(budgets: &Budgets<BudgetState>, key: &str) -> Remaining {
    let mut left = Remaining {
        usd: None,
        tokens: None,
    };
    for status in budgets.status("key", key) {
        match status.remaining {
            Amount::Usd(cost) if left.usd.is_none_or(|(least, _)| cost < least) => {
                left.usd = Some((cost, status.resets_at));
            }
            Amount::Tokens(tokens) if left.tokens.is_none_or(|(least, _)| tokens < least) => {
                left.tokens = Some((tokens, status.resets_at));
            }
            _ => {}
        }
    }
    left
}
