//! The usage report: spend and tokens by key, by model and by target, per day, for today
//! and yesterday.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use seawall_core::{Cost, Usage};
use serde_json::{Value, json};

/// One row of the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    calls: u64,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    cost: Cost,
    /// Charges whose model has no price: their cost is not in `cost`.
    unpriced: u64,
}

/// One day's rows: by key, by model, by target.
type Day = [BTreeMap<String, Totals>; 3];

/// Totals per day, then by key, model and target. Days older than yesterday are dropped as
/// new ones begin. Recorded once per attempt, off the admission path: the lock is held for
/// one update, which allocates only for a name the day has not seen.
pub(crate) struct UsageReport {
    days: Mutex<BTreeMap<i64, Day>>,
    /// Seconds east of UTC days start in.
    offset: i64,
}

impl UsageReport {
    pub(crate) fn new(offset_secs: i32) -> Self {
        Self {
            days: Mutex::new(BTreeMap::new()),
            offset: i64::from(offset_secs),
        }
    }

    /// Seconds east of UTC its days start in.
    pub(crate) fn offset_secs(&self) -> i32 {
        i32::try_from(self.offset).unwrap_or(0)
    }

    fn today(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        (i64::try_from(now).unwrap_or(0) + self.offset).div_euclid(86_400)
    }

    /// Adds one attempt's usage and cost.
    pub(crate) fn record(
        &self,
        key: Option<&str>,
        model: &str,
        target: Option<&str>,
        usage: &Usage,
        cost: Option<Cost>,
    ) {
        let today = self.today();
        let mut days = self.days.lock().unwrap_or_else(PoisonError::into_inner);
        if days
            .first_key_value()
            .is_some_and(|(day, _)| *day < today - 1)
        {
            *days = days.split_off(&(today - 1));
        }
        let rows = days.entry(today).or_default();
        let names = [key.unwrap_or("(no key)"), model, target.unwrap_or("(none)")];
        for (rows, name) in rows.iter_mut().zip(names) {
            let row = match rows.get_mut(name) {
                Some(row) => row,
                None => rows.entry(name.to_owned()).or_default(),
            };
            row.calls += 1;
            row.input_tokens += usage.input_tokens;
            row.cached_input_tokens += usage.cached_input_tokens;
            row.output_tokens += usage.output_tokens;
            match cost {
                Some(cost) => row.cost = row.cost.saturating_add(cost),
                None => row.unpriced += 1,
            }
        }
    }

    /// The report as JSON: `{"days": [{"date", "by_key", "by_model", "by_target"}, ...]}`,
    /// today first.
    pub(crate) fn to_json(&self) -> Value {
        let today = self.today();
        let days = self.days.lock().unwrap_or_else(PoisonError::into_inner);
        let rows_json = |rows: Option<&BTreeMap<String, Totals>>| -> Value {
            rows.into_iter()
                .flatten()
                .map(|(name, totals)| (name.clone(), row_json(totals)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let days: Vec<Value> = [today, today - 1]
            .into_iter()
            .map(|day| {
                let rows = days.get(&day);
                json!({
                    "date": date(day),
                    "by_key": rows_json(rows.map(|r| &r[0])),
                    "by_model": rows_json(rows.map(|r| &r[1])),
                    "by_target": rows_json(rows.map(|r| &r[2])),
                })
            })
            .collect();
        json!({ "utc_offset_seconds": self.offset, "days": days })
    }
}

fn row_json(totals: &Totals) -> Value {
    json!({
        "calls": totals.calls,
        "input_tokens": totals.input_tokens,
        "cached_input_tokens": totals.cached_input_tokens,
        "output_tokens": totals.output_tokens,
        "cost_usd": totals.cost.usd(),
        "unpriced_calls": totals.unpriced,
    })
}

/// `YYYY-MM-DD` of `days` since 1970-01-01.
fn date(days: i64) -> String {
    let (year, month, day) = seawall_core::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_428), "2025-12-06");
        assert_eq!(date(19_782), "2024-02-29");
    }

    #[test]
    fn rows_add_up_per_dimension() {
        let report = UsageReport::new(0);
        let usage = Usage::new(100, 10).with_cached_input(40);
        report.record(
            Some("a"),
            "gpt-4o",
            Some("openai"),
            &usage,
            Some(Cost::from_nanos(5)),
        );
        report.record(Some("a"), "llama", Some("local"), &usage, None);
        let json = report.to_json();
        let today = &json["days"][0];
        assert_eq!(today["by_key"]["a"]["calls"], 2);
        assert_eq!(today["by_key"]["a"]["input_tokens"], 200);
        assert_eq!(today["by_key"]["a"]["unpriced_calls"], 1);
        assert_eq!(today["by_model"]["gpt-4o"]["cost_usd"], 5e-9);
        assert_eq!(today["by_target"]["local"]["cached_input_tokens"], 40);
        assert_eq!(json["days"][1]["by_key"], json!({}));
    }
}
