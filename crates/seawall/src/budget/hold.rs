//! Admission (caps, prices, the lines to reserve) and settlement with what was spent.

use std::sync::Arc;

use seawall_core::{BoxError, Charge, Cost, Downgrade, ModelPrice, Trail, TrailRecorder, Usage};

use super::error::{BudgetExceeded, RequestCapExceeded, Unpriced};
use super::layer::{Budgets, Settlement, Shared};
use super::request::BudgetRequest;
use super::rule::{Limit, OverCap, Scope, ScopeView};
use super::store::{BudgetStore, Line, Refused};

/// What admission decided for one call: the lines to reserve, and the reservation.
pub(crate) struct Plan<St: BudgetStore> {
    pub(crate) lines: Vec<Line>,
    pub(crate) hold: BudgetHold<St>,
}

/// A call's reservation, settled once: with what was spent, or, if dropped unsettled, as
/// reserved when the call was sent (the provider may have billed it) and refunded when not.
/// Responses settle it through [`Settle`](super::Settle).
pub struct BudgetHold<St: BudgetStore> {
    budgets: Budgets<St>,
    pub(crate) lines: Vec<Line>,
    pub(crate) model: Arc<str>,
    price: Option<ModelPrice>,
    /// The prompt estimate and reserved output, when the call was weighed (it is not when
    /// nothing needs the weight: no budget, no cap, no stream).
    reserved: Option<Usage>,
    /// The caller's trail recorder, or one installed for a stream, whose charges arrive
    /// after the response; a complete response carries its own trail.
    trail: Option<TrailRecorder>,
    downgrade: Option<Box<Downgrade>>,
    /// The caller's key and tenant, for the settlement callback (kept only when there is one).
    virtual_key: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
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
        let streaming = request.streaming();
        let trail = match request.context().and_then(|c| c.trail.clone()) {
            Some(trail) => Some(trail),
            None if streaming => Some(request.context_mut().trail().clone()),
            None => None,
        };

        // Which budgets hold for this call.
        let mut lines = Vec::new();
        let view = ScopeView {
            context: request.context(),
            user: request.user().map(|user| &**user),
            model: request.model().map(|model| &**model),
            headers: request.headers(),
        };
        for rules in &*shared.scopes {
            let value = match &rules.scope {
                Scope::Global => Some(Arc::clone(&shared.global)),
                Scope::User => request.user().cloned(),
                scope => scope.value(&view),
            };
            let Some(value) = value else { continue };
            let specific = rules.specific.get(&value).map_or(&[][..], Vec::as_slice);
            for &index in rules.general.iter().chain(specific) {
                lines.push(shared.line(index, &value));
            }
        }
        let model = request
            .model()
            .cloned()
            .unwrap_or_else(|| Arc::clone(&shared.global));
        let (virtual_key, tenant) = match (&shared.on_settle, request.context()) {
            (Some(_), Some(context)) => (
                context.options().virtual_key.clone(),
                context.options().tenant.clone(),
            ),
            _ => (None, None),
        };

        // The output cap: clamped or refused above the cap; set when a budget holds, so the
        // call cannot spend more than it reserves.
        let asked = request.max_output();
        let mut output = asked.unwrap_or(shared.default_output);
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
        } else if asked.is_none() && !lines.is_empty() {
            request.set_max_output(output);
        }

        // The weight, when something needs it: a budget, a cap, or a stream that may be
        // abandoned before it reports its usage.
        let needs_price = shared.caps.max_cost.is_some()
            || lines
                .iter()
                .any(|line| matches!(shared.rules[line.budget].limit, Limit::Usd(_)));
        let weigh = !lines.is_empty() || !shared.caps.is_empty() || streaming;
        let reserved = weigh.then(|| {
            let estimate = request.estimate_once(&*shared.estimator, output);
            Usage::new(estimate.prompt, estimate.reserved_output)
        });
        if let (Some(cap), Some(reserved)) = (shared.caps.max_input_tokens, reserved)
            && reserved.input_tokens > cap
        {
            return Err(RequestCapExceeded::InputTokens {
                estimated: reserved.input_tokens,
                cap,
            }
            .into());
        }
        let price = shared.prices.get(&model).copied();
        if needs_price && price.is_none() {
            return Err(Unpriced {
                model: model.to_string(),
            }
            .into());
        }
        let estimated_cost = price
            .zip(reserved)
            .map(|(price, reserved)| price.cost(&reserved));
        if let (Some(cap), Some(cost)) = (shared.caps.max_cost, estimated_cost)
            && cost > cap
        {
            return Err(RequestCapExceeded::Cost {
                estimated: cost,
                cap,
            }
            .into());
        }
        if !lines.is_empty() {
            let local = shared.clock.local_now();
            let tokens = reserved.map_or(0, |reserved| reserved.total());
            for line in &mut lines {
                let rule = &shared.rules[line.budget];
                line.window = rule.window.index(local);
                line.amount = match rule.limit {
                    Limit::Tokens(_) => tokens,
                    Limit::Usd(_) => estimated_cost.map_or(0, Cost::nanos),
                };
            }
        }
        Ok(Plan {
            lines,
            hold: BudgetHold {
                budgets: self.clone(),
                lines: Vec::new(),
                model,
                price,
                reserved,
                trail,
                downgrade: None,
                virtual_key,
                tenant,
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

    /// Where the call goes when `lines` do not fit: the downgrade model and the same lines
    /// with their money at its price; `None` without a downgrade model, when the call is
    /// already for it, or when it has no price and a line or a cap counts money.
    pub(crate) fn fallback(&self, lines: &[Line]) -> Option<(Arc<str>, Vec<Line>)> {
        let shared = self.shared();
        let (cheaper, price) = shared.downgrade.as_ref()?;
        // Without a price, a cost cap could not hold there either.
        if lines.is_empty()
            || **cheaper == *self.model
            || (price.is_none() && shared.caps.max_cost.is_some())
        {
            return None;
        }
        let cost = price
            .zip(self.reserved)
            .map(|(price, reserved)| price.cost(&reserved));
        let mut moved = lines.to_vec();
        for line in &mut moved {
            if let Limit::Usd(_) = shared.rules[line.budget].limit {
                line.amount = cost?.nanos();
            }
        }
        Some((Arc::clone(cheaper), moved))
    }

    /// The call was downgraded to the downgrade model, whose `lines` are reserved; the
    /// trail says why.
    pub(crate) fn downgraded(&mut self, lines: Vec<Line>, reason: &BudgetExceeded) {
        let Some((cheaper, price)) = self.shared().downgrade.clone() else {
            return;
        };
        let downgrade = Box::new(Downgrade::new(&*self.model, &*cheaper, reason.to_string()));
        if let Some(trail) = &self.trail {
            trail.update(|trail| trail.downgrade = Some(downgrade.clone()));
        }
        self.downgrade = Some(downgrade);
        self.model = cheaper;
        self.price = price;
        self.lines = lines;
    }

    /// Starts reserving `lines` in the store.
    pub(crate) fn store_reserve(&self, lines: &[Line]) -> St::Reserve {
        self.shared().store.reserve(lines)
    }

    /// The downgrade, if the call was downgraded.
    pub(crate) fn downgrade(&self) -> Option<Box<Downgrade>> {
        self.downgrade.clone()
    }

    /// The refusal for `refused` among `lines`.
    pub(crate) fn exceeded(&self, lines: &[Line], refused: Refused) -> BudgetExceeded {
        let shared = self.shared();
        let line = &lines[refused.line];
        let rule = &shared.rules[line.budget];
        BudgetExceeded {
            budget: shared.names[line.budget].to_string(),
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
    /// `seen` is the trail the response or error carries, read when the call has no trail
    /// recorder.
    pub(crate) fn settle(&mut self, spent: Spent, seen: Option<&Trail>) -> Option<Cost> {
        if self.settled {
            return None;
        }
        self.settled = true;
        let recorded;
        let trail = match &self.trail {
            Some(recorder) => {
                // Only what settling reads, not the whole trail.
                recorded = recorder.update(|trail| {
                    let mut read = Trail::default();
                    read.charges.clone_from(&trail.charges);
                    read.final_model.clone_from(&trail.final_model);
                    read.final_target.clone_from(&trail.final_target);
                    read
                });
                Some(&recorded)
            }
            None => seen,
        };
        let final_model = || {
            trail
                .and_then(|trail| trail.final_model.clone())
                .unwrap_or_else(|| self.model.to_string())
        };
        let target = || trail.and_then(|trail| trail.final_target.clone());
        let charges = trail.map_or(&[][..], |trail| trail.charges.as_slice());
        // What the trail's charges leave out: the whole call when nothing was charged per
        // attempt, or the attempt a stream was abandoned in.
        let (charged, open) = match spent {
            Spent::Nothing => (charges, None),
            Spent::AsReserved => (
                &[][..],
                self.reserved
                    .map(|reserved| Charge::new(target(), &*self.model, reserved)),
            ),
            Spent::Reported { usage, model } if charges.is_empty() => (
                charges,
                Some(Charge::new(
                    target(),
                    model.unwrap_or_else(|| self.model.to_string()),
                    usage,
                )),
            ),
            Spent::Reported { .. } => (charges, None),
            Spent::Broken { .. } if !charges.is_empty() => (charges, None),
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
                let prompt = self.reserved.map_or(0, |reserved| reserved.input_tokens);
                let open = Usage::new(
                    if seen.input_tokens > 0 {
                        seen.input_tokens
                    } else {
                        prompt
                    },
                    seen.output_tokens.max(delivered),
                );
                (charges, Some(Charge::new(target(), final_model(), open)))
            }
        };
        let (tokens, cost) = self.priced(charged, open.as_ref());
        if let Some(recorder) = &self.trail {
            recorder.update(|trail| {
                // The trail's charges are what was charged: reports count them.
                if let Some(open) = &open {
                    trail.charges.push(open.clone());
                }
                trail.cost = cost;
            });
        }
        let shared = self.shared();
        if let Some(sink) = &shared.on_settle {
            let mut all = charged.to_vec();
            all.extend(open);
            sink(&Settlement {
                virtual_key: self.virtual_key.as_deref(),
                tenant: self.tenant.as_deref(),
                charges: &all,
                cost,
            });
        }
        self.apply(tokens, cost, final_model);
        cost
    }

    /// Tokens and cost of `charges` and `open`, each at its model's price; a model without
    /// a price is charged at the reservation's.
    fn priced(&self, charges: &[Charge], open: Option<&Charge>) -> (u64, Option<Cost>) {
        let prices = &self.shared().prices;
        let mut tokens = 0u64;
        let mut cost = Some(Cost::ZERO);
        for charge in charges.iter().chain(open) {
            tokens = tokens.saturating_add(charge.usage.total());
            let price = prices.get(&charge.model).copied().or(self.price);
            cost = cost
                .zip(price.map(|p| p.cost(&charge.usage)))
                .map(|(sum, one)| sum.saturating_add(one));
        }
        (tokens, cost)
    }

    /// Replaces each line's reservation by what was used, then raises the alerts due;
    /// `model` names the answering model for an alert.
    fn apply(&self, tokens: u64, cost: Option<Cost>, model: impl FnOnce() -> String) {
        let shared = self.shared();
        if self.lines.is_empty() && shared.on_alert.is_none() {
            return;
        }
        let local = shared.clock.local_now();
        for line in &self.lines {
            let rule = &shared.rules[line.budget];
            let used = match rule.limit {
                Limit::Tokens(_) => tokens,
                Limit::Usd(_) => cost.map_or(line.amount, Cost::nanos),
            };
            let now = rule.window.index(local);
            if let Some(after) = shared.store.settle(line, used, now) {
                shared.share_alerts(line, after, now);
            }
        }
        if let Some(cost) = cost {
            shared.spend_alerts(cost, local, model);
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
        self.settle(spent, None);
    }
}
