//! The spend configuration: `[prices]`, `[budget]`, `[[alerts]]`, and each key's
//! `budgets`.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::config::{ConfigError, problem};

/// `[prices."model"]`: a model's prices in USD per million tokens, replacing or adding to
/// the built-in table.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PriceConfig {
    /// `input`: input tokens.
    pub input: f64,
    /// `output`: output tokens.
    pub output: f64,
    /// `cached_input`: input read from the provider's prompt cache (default: `input`).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// `cache_write`: input written to the provider's prompt cache (default: `input`).
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// `reasoning`: reasoning tokens (default: billed as output).
    #[serde(default)]
    pub reasoning: Option<f64>,
}

/// `over_output`: what a `max_tokens` above `budget.max_output_tokens` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverOutputConfig {
    /// Lowered to the cap.
    #[default]
    Clamp,
    /// Refused with a 400.
    Refuse,
}

/// `[budget]`: per-request caps, the downgrade group, the calendar's offset and where
/// alerts go. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BudgetConfig {
    /// `utc_offset`: the offset windows start in, as `"+02:00"` or `"-05:30"` (default UTC).
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// `max_input_tokens`: estimated input tokens per request.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// `max_output_tokens`: `max_tokens` per request.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// `over_output`: `"clamp"` (default) or `"refuse"`.
    #[serde(default)]
    pub over_output: OverOutputConfig,
    /// `max_cost_usd`: estimated cost per request.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// `default_output_tokens`: what a call without `max_tokens` reserves, and is capped at,
    /// under a budget (default 4,096).
    #[serde(default)]
    pub default_output_tokens: Option<u32>,
    /// `downgrade_group`: a group a call goes to when its key's budget refuses it where it
    /// was sent, if it fits there.
    #[serde(default)]
    pub downgrade_group: Option<String>,
    /// `alert_webhook`: an `http://` or `https://` URL alerts are POSTed to as JSON.
    #[serde(default)]
    pub alert_webhook: Option<String>,
}

/// `budgets = [{ window = "day", usd = 5.0 }, ...]` on a key: one limit per window, in
/// tokens or in dollars.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyBudgetConfig {
    /// `window`: `"hour"`, `"day"`, `"month"` or `"lifetime"`.
    pub window: String,
    /// `tokens`: input plus output tokens per window.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// `usd`: dollars per window.
    #[serde(default)]
    pub usd: Option<f64>,
}

/// `[[alerts]]`: one of `spend_usd` (with `window`), `call_usd`, `budget_share`,
/// `breaker_open` or `queue_length`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertConfig {
    /// `spend_usd`: spending through the gateway in one `window` passes this.
    #[serde(default)]
    pub spend_usd: Option<f64>,
    /// `window`: the window `spend_usd` counts over (default `"hour"`).
    #[serde(default)]
    pub window: Option<String>,
    /// `call_usd`: one call costs more than this.
    #[serde(default)]
    pub call_usd: Option<f64>,
    /// `budget_share`: a key's budget reaches this share of its limit (0.8 for 80 %).
    #[serde(default)]
    pub budget_share: Option<f64>,
    /// `breaker_open = true`: a target's health breaker opens.
    #[serde(default)]
    pub breaker_open: bool,
    /// `queue_length`: this many calls (or more) wait in a target's rate limiter (checked
    /// every second; raised again once the queue fell below half of it).
    #[serde(default)]
    pub queue_length: Option<usize>,
}

/// Parses `"+02:00"`, `"-05:30"`, `"Z"` or `"+00:00"` into seconds east of UTC.
pub(crate) fn parse_utc_offset(text: &str) -> Option<i32> {
    if text == "Z" || text == "UTC" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 3_600 + minutes * 60))
}

fn positive(key: &str, value: Option<f64>) -> Result<(), ConfigError> {
    match value {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(problem(key, "must be a positive number")),
        _ => Ok(()),
    }
}

fn window(key: &str, name: &str) -> Result<seawall::budget::Window, ConfigError> {
    seawall::budget::Window::parse(name)
        .ok_or_else(|| problem(key, "must be \"hour\", \"day\", \"month\" or \"lifetime\""))
}

/// Checks the spend settings; `groups` are the exact group names.
pub(crate) fn validate(
    prices: &BTreeMap<String, PriceConfig>,
    budget: &BudgetConfig,
    alerts: &[AlertConfig],
    key_budgets: &[(usize, &[KeyBudgetConfig])],
    groups: &HashSet<&str>,
) -> Result<(), ConfigError> {
    for (model, price) in prices {
        let key = |field: &str| format!("prices.{model:?}.{field}");
        for (field, value) in [
            ("input", Some(price.input)),
            ("output", Some(price.output)),
            ("cached_input", price.cached_input),
            ("cache_write", price.cache_write),
            ("reasoning", price.reasoning),
        ] {
            if value.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
                return Err(problem(key(field), "must be a non-negative number"));
            }
        }
    }
    if let Some(offset) = &budget.utc_offset
        && parse_utc_offset(offset).is_none()
    {
        return Err(problem(
            "budget.utc_offset",
            "must be an offset such as \"+02:00\" or \"-05:30\"",
        ));
    }
    positive("budget.max_cost_usd", budget.max_cost_usd)?;
    if budget.max_input_tokens == Some(0) {
        return Err(problem("budget.max_input_tokens", "must be at least 1"));
    }
    if budget.max_output_tokens == Some(0) {
        return Err(problem("budget.max_output_tokens", "must be at least 1"));
    }
    if budget.default_output_tokens == Some(0) {
        return Err(problem(
            "budget.default_output_tokens",
            "must be at least 1",
        ));
    }
    if let Some(group) = &budget.downgrade_group
        && !groups.contains(group.as_str())
    {
        return Err(problem(
            "budget.downgrade_group",
            format!("unknown group {group:?} (a group named exactly, not a pattern)"),
        ));
    }
    if let Some(url) = &budget.alert_webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(problem(
            "budget.alert_webhook",
            "must start with http:// or https://",
        ));
    }
    for (i, alert) in alerts.iter().enumerate() {
        let key = |field: &str| format!("alerts[{i}].{field}");
        let set = [
            alert.spend_usd.is_some(),
            alert.call_usd.is_some(),
            alert.budget_share.is_some(),
            alert.breaker_open,
            alert.queue_length.is_some(),
        ];
        if set.iter().filter(|set| **set).count() != 1 {
            return Err(problem(
                format!("alerts[{i}]"),
                "set exactly one of spend_usd, call_usd, budget_share, breaker_open, queue_length",
            ));
        }
        if alert.queue_length == Some(0) {
            return Err(problem(key("queue_length"), "must be at least 1"));
        }
        positive(&key("spend_usd"), alert.spend_usd)?;
        positive(&key("call_usd"), alert.call_usd)?;
        positive(&key("budget_share"), alert.budget_share)?;
        match (&alert.window, alert.spend_usd) {
            (Some(name), Some(_)) => {
                window(&key("window"), name)?;
            }
            (Some(_), None) => return Err(problem(key("window"), "only with spend_usd")),
            (None, _) => {}
        }
    }
    for (i, budgets) in key_budgets {
        for (j, b) in budgets.iter().enumerate() {
            let key = |field: &str| format!("keys[{i}].budgets[{j}].{field}");
            window(&key("window"), &b.window)?;
            match (b.tokens, b.usd) {
                (Some(0), None) => return Err(problem(key("tokens"), "must be at least 1")),
                (Some(_), None) => {}
                (None, Some(_)) => positive(&key("usd"), b.usd)?,
                _ => {
                    return Err(problem(
                        format!("keys[{i}].budgets[{j}]"),
                        "set exactly one of tokens, usd",
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_utc_offset("+02:00"), Some(7_200));
        assert_eq!(parse_utc_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        for bad in ["02:00", "+2:00", "+15:00", "+02:60", "", "+", "+02:0x"] {
            assert_eq!(parse_utc_offset(bad), None, "{bad}");
        }
    }
}
