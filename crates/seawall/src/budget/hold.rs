//! Admission (caps, prices, the lines to reserve) and settlement with what was spent.

use std::sync::Arc;

use seawall_core::{BoxError, Charge, Cost, Downgrade, ModelPrice, TrailRecorder, Usage};

use super::alert::{Alert, AlertKind, AlertRule};
use super::error::{BudgetExceeded, RequestCapExceeded, Unpriced};
use super::layer::{Budgets, Shared};
use super::request::BudgetRequest;
use super::rule::{Limit, OverCap, ScopeView};
use super::store::{BudgetStore, Line, Refused};

/// What admission decided for one call: the lines to reserve, and where to send the call
/// if they do not fit.
pub(crate) struct Plan<St: BudgetStore> {
    pub(crate) lines: Vec<Line>,
    pub(crate) fallback: Option<Fallback>,
    pub(crate) hold: BudgetHold<St>,
}

/// The call, downgraded: its model and lines at the cheaper price.
pub(crate) struct Fallback {
    pub(crate) model: Arc<str>,
    pub(crate) price: Option<ModelPrice>,
    pub(crate) lines: Vec<Line>,
}

/// A call's reservation, settled once: with what was spent, or, if dropped unsettled, as
/// reserved when the call was sent (the provider may have billed it) and refunded when not.
/// Responses settle it through [`Settle`](super::Settle).
pub struct BudgetHold<St: BudgetStore> {
    budgets: Budgets<St>,
    pub(crate) lines: Vec<Line>,
    pub(crate) model: Arc<str>,
    price: Option<ModelPrice>,
    prompt: u64,
    reserved_output: u64,
    trail: TrailRecorder,
    pub(crate) sent: bool,
    settled: bool,
}

/// What a call spent, as far as the layer can tell.
pub(crate) enum Spent {
    /// Nothing beyond the attempts the trail charged (a refusal, a provider error, a cache
    /// hit).
    Nothing,
    /// As reserved: nothing better is known (a raw response without usage).
    AsReserved,
    /// The provider reported `usage` for the call, answered by `model`.
    Reported { usage: Usage, model: Option<String> },
    /// A stream that ended without its usage (abandoned by its caller, or complete without
    /// a usage report): the last usage seen, and the content delivered.
    Abandoned {
        usage: Option<Usage>,
        chars: u64,
        deltas: u64,
    },
    /// A stream that failed: the trail's charges when a router recorded the attempts,
    /// otherwise as [`Spent::Abandoned`].
    Broken {
        usage: Option<Usage>,
        chars: u64,
        deltas: u64,
    },
}

impl<St: BudgetStore> Budgets<St> {
    /// Checks the caps, prices the call and says what to reserve; a refusal is the error.
    pub(crate) fn admit<Req: BudgetRequest>(
        &self,
        request: &mut Req,
    ) -> Result<Plan<St>, BoxError> {
        let shared = &*self.shared;
        let trail = request.context_mut().trail().clone();
        let local = shared.clock.local_now();

        // Which budgets hold for this call.
        let view = ScopeView {
            context: request.context(),
            user: request.user(),
            model: request.model(),
            headers: request.headers(),
        };
        let mut applicable: Vec<(usize, Arc<str>)> = Vec::new();
        for rules in &*shared.scopes {
            let Some(value) = rules.scope.value(&view) else {
                continue;
            };
            let specific = rules.specific.get(&value).map_or(&[][..], Vec::as_slice);
            for &index in rules.general.iter().chain(specific) {
                applicable.push((index, Arc::clone(&value)));
            }
        }

        // The output cap: clamped or refused above the cap; set when a budget holds, so the
        // call cannot spend more than it reserves.
        let default_output = shared.default_output;
        let asked = request.max_output();
        let mut output = asked.unwrap_or(default_output);
        if let Some(cap) = shared.caps.max_output_tokens
            && output > cap
        {
            let clamped = shared.caps.over_output == OverCap::Clamp && request.set_max_output(cap);
            if !clamped && asked.is_some() {
                return Err(RequestCapExceeded::OutputTokens {
                    requested: u64::from(output),
                    cap: u64::from(cap),
                }
                .into());
            }
            request.set_max_output(cap);
            output = cap;
        } else if asked.is_none() && !applicable.is_empty() {
            request.set_max_output(output);
        }
        let estimate = request.estimate(&*shared.estimator, output);
        let prompt = estimate.prompt;
        let reserved_output = estimate.reserved_output;
        if let Some(cap) = shared.caps.max_input_tokens
            && prompt > cap
        {
            return Err(RequestCapExceeded::InputTokens {
                estimated: prompt,
                cap,
            }
            .into());
        }

        let model: Arc<str> = Arc::from(request.model().unwrap_or(""));
        let price = shared.prices.get(&model).copied();
        let reserved = Usage::new(prompt, reserved_output);
        let needs_price = shared.caps.max_cost.is_some()
            || applicable
                .iter()
                .any(|(index, _)| matches!(shared.rules[*index].limit, Limit::Usd(_)));
        if needs_price && price.is_none() {
            return Err(Unpriced {
                model: model.to_string(),
            }
            .into());
        }
        let estimated_cost = price.map(|price| price.cost(&reserved));
        if let (Some(cap), Some(cost)) = (shared.caps.max_cost, estimated_cost)
            && cost > cap
        {
            return Err(RequestCapExceeded::Cost {
                estimated: cost,
                cap,
            }
            .into());
        }

        let lines_at = |cost: Option<Cost>| -> Vec<Line> {
            applicable
                .iter()
                .map(|(index, value)| {
                    let amount = match shared.rules[*index].limit {
                        Limit::Tokens(_) => reserved.total(),
                        Limit::Usd(_) => cost.map_or(0, Cost::nanos),
                    };
                    shared.line(*index, value, local, amount)
                })
                .collect()
        };
        let lines = lines_at(estimated_cost);
        let fallback = match &shared.downgrade {
            Some((cheaper, cheaper_price))
                if !lines.is_empty()
                    && **cheaper != *model
                    && (cheaper_price.is_some() || !needs_price) =>
            {
                Some(Fallback {
                    model: Arc::clone(cheaper),
                    price: *cheaper_price,
                    lines: lines_at(cheaper_price.map(|price| price.cost(&reserved))),
                })
            }
            _ => None,
        };
        Ok(Plan {
            lines,
            fallback,
            hold: BudgetHold {
                budgets: self.clone(),
                lines: Vec::new(),
                model,
                price,
                prompt,
                reserved_output,
                trail,
                sent: false,
                settled: false,
            },
        })
    }
}

impl<St: BudgetStore> BudgetHold<St> {
    fn shared(&self) -> &Shared<St> {
        &self.budgets.shared
    }

    /// The call was downgraded to `fallback` (its lines are reserved); the trail says why.
    pub(crate) fn downgraded(&mut self, fallback: Fallback, reason: &BudgetExceeded) {
        let downgrade = Downgrade::new(&*self.model, &*fallback.model, reason.to_string());
        self.trail
            .update(|trail| trail.downgrade = Some(Box::new(downgrade)));
        self.model = fallback.model;
        self.price = fallback.price;
        self.lines = fallback.lines;
    }

    /// Starts reserving `lines` in the store.
    pub(crate) fn store_reserve(&self, lines: &[Line]) -> St::Reserve {
        self.shared().store.reserve(lines)
    }

    /// The downgrade, if the call was downgraded.
    pub(crate) fn downgrade(&self) -> Option<Box<Downgrade>> {
        self.trail.update(|trail| trail.downgrade.clone())
    }

    /// The refusal for `refused` among `lines`.
    pub(crate) fn exceeded(&self, lines: &[Line], refused: Refused) -> BudgetExceeded {
        let shared = self.shared();
        let line = &lines[refused.line];
        let rule = &shared.rules[line.budget];
        BudgetExceeded {
            budget: rule.name(),
            scope: rule.scope.name().to_owned(),
            value: line.value.to_string(),
            window: rule.window,
            used: rule.limit.amount(refused.used),
            limit: rule.limit.amount(line.limit),
            needed: rule.limit.amount(line.amount),
            resets_at: shared.resets_at(rule.window, line.window),
        }
    }

    /// Settles the reservation with what was spent; returns the call's cost, when known.
    pub(crate) fn settle(&mut self, spent: Spent) -> Option<Cost> {
        if self.settled {
            return None;
        }
        self.settled = true;
        let charges = self.trail.update(|trail| trail.charges.clone());
        let reserved = Usage::new(self.prompt, self.reserved_output);
        let (tokens, cost) = match spent {
            Spent::Nothing => self.priced(&charges, None),
            Spent::AsReserved => (reserved.total(), self.price.map(|p| p.cost(&reserved))),
            Spent::Reported { usage, model } if charges.is_empty() => {
                let price = model
                    .as_deref()
                    .and_then(|model| self.shared().prices.get(model).copied())
                    .or(self.price);
                (usage.total(), price.map(|p| p.cost(&usage)))
            }
            Spent::Reported { .. } => self.priced(&charges, None),
            Spent::Broken { .. } if !charges.is_empty() => self.priced(&charges, None),
            Spent::Abandoned {
                usage,
                chars,
                deltas,
            }
            | Spent::Broken {
                usage,
                chars,
                deltas,
            } => {
                let seen = usage.unwrap_or_default();
                // About one token per content event, and never fewer than a token per
                // four characters.
                let delivered = deltas.max(chars.div_ceil(4));
                let open = Usage::new(
                    if seen.input_tokens > 0 {
                        seen.input_tokens
                    } else {
                        self.prompt
                    },
                    seen.output_tokens.max(delivered),
                );
                self.priced(&charges, Some(open))
            }
        };
        self.trail.update(|trail| trail.cost = cost);
        self.apply(tokens, cost);
        cost
    }

    /// Tokens and cost of the trail's charges, plus `open` usage on the answering model.
    fn priced(&self, charges: &[Charge], open: Option<Usage>) -> (u64, Option<Cost>) {
        let prices = &self.shared().prices;
        let price_of = |model: &str| prices.get(model).copied().or(self.price);
        let mut tokens = 0u64;
        let mut cost = Some(Cost::ZERO);
        for charge in charges {
            tokens = tokens.saturating_add(charge.usage.total());
            cost = cost
                .zip(price_of(&charge.model).map(|p| p.cost(&charge.usage)))
                .map(|(sum, one)| sum.saturating_add(one));
        }
        if let Some(open) = open {
            let model = self
                .trail
                .update(|trail| trail.final_model.clone())
                .unwrap_or_else(|| self.model.to_string());
            tokens = tokens.saturating_add(open.total());
            cost = cost
                .zip(price_of(&model).map(|p| p.cost(&open)))
                .map(|(sum, one)| sum.saturating_add(one));
            // The estimate is the open attempt's charge: reports count what was charged.
            self.trail.update(|trail| {
                let target = trail.final_target.clone();
                trail.charges.push(Charge::new(target, model, open));
            });
        }
        (tokens, cost)
    }

    /// Replaces each line's reservation by what was used, then raises the alerts due.
    fn apply(&self, tokens: u64, cost: Option<Cost>) {
        let shared = self.shared();
        let local = shared.clock.local_now();
        for line in &self.lines {
            let rule = &shared.rules[line.budget];
            let used = match rule.limit {
                Limit::Tokens(_) => tokens,
                Limit::Usd(_) => cost.map_or(line.amount, Cost::nanos),
            };
            let now = rule.window.index(local);
            let after = shared.store.settle(line, used, now);
            if let Some(after) = after {
                self.share_alerts(line, after, now);
            }
        }
        if let Some(cost) = cost {
            self.spend_alerts(cost, local);
        }
    }

    fn share_alerts(&self, line: &Line, used: u64, window: u64) {
        let shared = self.shared();
        let Some(sink) = &shared.on_alert else { return };
        let rule = &shared.rules[line.budget];
        for (mark, alert) in shared.alerts.iter().enumerate() {
            let AlertRule::BudgetShare { share } = *alert else {
                continue;
            };
            let threshold = (line.limit as f64 * share).ceil() as u64;
            if used >= threshold
                && shared
                    .store
                    .first_alert(line.budget, &line.value, window, mark as u32)
            {
                sink(&Alert {
                    kind: AlertKind::BudgetShare {
                        budget: rule.name(),
                        value: line.value.to_string(),
                        window: rule.window,
                        used: rule.limit.amount(used),
                        limit: rule.limit.amount(line.limit),
                        share,
                    },
                    at: shared.clock.system_now(),
                });
            }
        }
    }

    fn spend_alerts(&self, cost: Cost, local: i64) {
        let shared = self.shared();
        let Some(sink) = &shared.on_alert else { return };
        for (index, alert) in shared.alerts.iter().enumerate() {
            match *alert {
                AlertRule::ExpensiveCall { threshold } if cost > threshold => {
                    let model = self
                        .trail
                        .update(|trail| trail.final_model.clone())
                        .unwrap_or_else(|| self.model.to_string());
                    sink(&Alert {
                        kind: AlertKind::ExpensiveCall {
                            cost,
                            threshold,
                            model,
                        },
                        at: shared.clock.system_now(),
                    });
                }
                AlertRule::Spend { window, threshold } => {
                    let counter = shared.spend_counter(index);
                    let now = window.index(local);
                    let line = Line {
                        budget: counter,
                        value: Arc::from(""),
                        window: now,
                        amount: 0,
                        limit: u64::MAX,
                    };
                    let spent = shared.store.settle(&line, cost.nanos(), now);
                    if spent.is_some_and(|spent| spent >= threshold.nanos())
                        && shared.store.first_alert(counter, "", now, 0)
                    {
                        sink(&Alert {
                            kind: AlertKind::Spend {
                                window,
                                spent: Cost::from_nanos(spent.unwrap_or_default()),
                                threshold,
                            },
                            at: shared.clock.system_now(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

impl<St: BudgetStore> std::fmt::Debug for BudgetHold<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetHold")
            .field("lines", &self.lines)
            .field("model", &self.model)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl<St: BudgetStore> Drop for BudgetHold<St> {
    fn drop(&mut self) {
        // Dropped unsettled: charged as reserved once sent (the provider may have billed
        // it), refunded when nothing was sent.
        let spent = if self.sent {
            Spent::AsReserved
        } else {
            Spent::Nothing
        };
        self.settle(spent);
    }
}
