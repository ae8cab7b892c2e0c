//! Prices per model and the cost of a call.
//!
//! A [`ModelPrice`] holds a model's prices in US dollars per million tokens: input, input
//! read from the provider's prompt cache, input written to it, output, and optionally
//! reasoning output (billed as output unless priced). [`Prices`] maps model names to prices:
//! [`Prices::builtin`] is a dated table of the current OpenAI, Anthropic and Gemini models
//! ([`Prices::CHECKED`]), which callers override or extend with [`Prices::with`].
//!
//! A model the table does not know has an **unknown** cost: [`Prices::cost`] returns `None`,
//! never a silent zero.
//!
//! ```
//! use seawall_core::{Cost, ModelPrice, Prices, Usage};
//!
//! let prices = Prices::builtin().with(
//!     "house-model",
//!     ModelPrice::per_million(1.0, 4.0).cached_input(0.1),
//! );
//! // 1,000 input tokens of which 800 came from the prompt cache, 200 output tokens.
//! let usage = Usage::new(1_000, 200).with_cached_input(800);
//! let cost = prices.cost("house-model", &usage).unwrap();
//! assert_eq!(cost, Cost::from_usd(0.000_2 + 0.000_08 + 0.000_8));
//! // A dated snapshot name finds its family's price.
//! assert!(prices.get("gpt-4o-mini-2024-07-18").is_some());
//! assert_eq!(prices.cost("my-local-llama", &usage), None);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::response::Usage;

/// An amount of US dollars, counted in nano-dollars (10⁻⁹ USD) so that sums are exact.
///
/// Computed costs round up to the next nano-dollar: a cost is never under-counted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cost(u64);

const NANOS_PER_USD: f64 = 1e9;

impl Cost {
    /// Nothing.
    pub const ZERO: Self = Self(0);
    /// The largest amount, for limits that do not bind.
    pub const MAX: Self = Self(u64::MAX);

    /// `nanos` nano-dollars.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// `usd` dollars, to the nearest nano-dollar; negative or not-a-number amounts are zero,
    /// amounts too large saturate.
    pub fn from_usd(usd: f64) -> Self {
        let nanos = (usd * NANOS_PER_USD).round();
        // `as` saturates and maps NaN to 0.
        Self(nanos as u64)
    }

    /// The amount in nano-dollars.
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// The amount in dollars.
    pub fn usd(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD
    }

    /// The sum, saturating.
    #[must_use]
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// The difference, or zero.
    #[must_use]
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
}

/// Dollars with as many decimals as the amount needs (at most nine): `$0.000123`.
impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000_000;
        let frac = self.0 % 1_000_000_000;
        if frac == 0 {
            return write!(f, "${whole}");
        }
        let digits = format!("{frac:09}");
        write!(f, "${whole}.{}", digits.trim_end_matches('0'))
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Self::saturating_add)
    }
}

/// A model's prices, in US dollars per million tokens.
///
/// Stored as pico-dollars per token (micro-dollars per million), so a price keeps six
/// decimals of a dollar per million tokens, and costs are integer arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ModelPrice {
    /// Input tokens not read from nor written to the prompt cache.
    pub input: PerMillion,
    /// Input tokens read from the provider's prompt cache.
    pub cached_input: PerMillion,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write: PerMillion,
    /// Output tokens.
    pub output: PerMillion,
    /// Reasoning tokens, when they have their own price; otherwise they are output.
    pub reasoning: Option<PerMillion>,
}

/// A price in US dollars per million tokens, kept as micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PerMillion(u64);

impl PerMillion {
    /// `usd` dollars per million tokens (to the micro-dollar; negative or NaN is zero).
    pub fn usd(usd: f64) -> Self {
        Self((usd * 1e6).round() as u64)
    }

    /// The price in dollars per million tokens.
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Pico-dollars for `tokens` tokens.
    fn picos(self, tokens: u64) -> u128 {
        u128::from(tokens) * u128::from(self.0)
    }

    /// Pico-dollars for `tokens` tokens, when they fit in 64 bits (every real call: a
    /// million tokens at $150 per million is 1.5 × 10¹⁴).
    fn picos_u64(self, tokens: u64) -> Option<u64> {
        tokens.checked_mul(self.0)
    }
}

impl ModelPrice {
    /// A model priced `input` and `output` dollars per million tokens; cached input and cache
    /// writes cost as much as input until set (so a cost is never under-counted).
    pub fn per_million(input: f64, output: f64) -> Self {
        let input = PerMillion::usd(input);
        Self {
            input,
            cached_input: input,
            cache_write: input,
            output: PerMillion::usd(output),
            reasoning: None,
        }
    }

    /// Sets the price of input read from the prompt cache, per million tokens.
    #[must_use]
    pub fn cached_input(mut self, usd: f64) -> Self {
        self.cached_input = PerMillion::usd(usd);
        self
    }

    /// Sets the price of input written to the prompt cache, per million tokens.
    #[must_use]
    pub fn cache_write(mut self, usd: f64) -> Self {
        self.cache_write = PerMillion::usd(usd);
        self
    }

    /// Sets a price of its own for reasoning tokens, per million.
    #[must_use]
    pub fn reasoning(mut self, usd: f64) -> Self {
        self.reasoning = Some(PerMillion::usd(usd));
        self
    }

    /// What `usage` costs at these prices.
    ///
    /// [`Usage`] counts cached input and cache writes inside `input_tokens`, and reasoning
    /// inside `output_tokens` (the adapters normalise every provider's shape to that), so
    /// each token is priced once, in its own category.
    pub fn cost(&self, usage: &Usage) -> Cost {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let writes = usage
            .cache_write_tokens
            .min(usage.input_tokens.saturating_sub(cached));
        let plain_input = usage.input_tokens - cached - writes;
        let (reasoning, plain_output) = match self.reasoning {
            Some(_) => {
                let reasoning = usage.reasoning_tokens.min(usage.output_tokens);
                (reasoning, usage.output_tokens - reasoning)
            }
            None => (0, usage.output_tokens),
        };
        let reasoning_price = self.reasoning.unwrap_or_default();
        let parts = [
            (self.input, plain_input),
            (self.cached_input, cached),
            (self.cache_write, writes),
            (self.output, plain_output),
            (reasoning_price, reasoning),
        ];
        // 64-bit arithmetic when nothing overflows; 128-bit otherwise.
        let small = parts.iter().try_fold(0u64, |sum, &(price, tokens)| {
            sum.checked_add(price.picos_u64(tokens)?)
        });
        if let Some(picos) = small {
            return Cost(picos.div_ceil(1_000));
        }
        let picos: u128 = parts
            .iter()
            .map(|&(price, tokens)| price.picos(tokens))
            .sum();
        Cost(u64::try_from(picos.div_ceil(1_000)).unwrap_or(u64::MAX))
    }

    /// The dearer of two prices, category by category: what a call that may be answered by
    /// either model is reserved at.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        Self {
            input: self.input.max(other.input),
            cached_input: self.cached_input.max(other.cached_input),
            cache_write: self.cache_write.max(other.cache_write),
            output: self.output.max(other.output),
            reasoning: match (self.reasoning, other.reasoning) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(self.output).max(b.unwrap_or(other.output))),
            },
        }
    }
}

/// A table of prices by model name.
///
/// Lookups take the exact name first, then the longest name in the table that the model's
/// name starts with, followed by `-` or `@` and a date or version tag (a dated snapshot such
/// as `claude-sonnet-4-5-20250929` or `gpt-4o-2024-08-06`, `-latest`, `-001`), after removing
/// a `models/` prefix (Gemini). Any other suffix names another model, whose cost is unknown
/// until priced. Cloning is cheap: the table is shared.
#[derive(Clone, Default)]
pub struct Prices(Arc<HashMap<Box<str>, ModelPrice, foldhash::fast::RandomState>>);

impl Prices {
    /// When the built-in table was compiled from the providers' published pricing pages
    /// (standard tier, no batch discount; Gemini and long-context tiers at their base rate).
    pub const CHECKED: &'static str = "2026-12-05";

    /// An empty table: every model's cost is unknown until priced.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in table of current OpenAI, Anthropic and Gemini models.
    pub fn builtin() -> Self {
        let mut table = HashMap::with_capacity_and_hasher(BUILTIN.len(), Default::default());
        for &(model, input, cached, write, output) in BUILTIN {
            let price = ModelPrice::per_million(input, output)
                .cached_input(cached)
                .cache_write(write);
            table.insert(Box::from(model), price);
        }
        Self(Arc::new(table))
    }

    /// The table with `model` priced at `price` (replacing any price it had).
    #[must_use]
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        Arc::make_mut(&mut self.0).insert(model.into().into_boxed_str(), price);
        self
    }

    /// The price of `model`, if the table knows it.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        if let Some(price) = self.0.get(model) {
            return Some(price);
        }
        // The longest priced name that `model` extends with a date or version tag. Any
        // other suffix is another model (`claude-opus-4-6` is not `claude-opus-4`).
        let mut end = model.len();
        while let Some(cut) = model[..end].rfind(['-', '@']) {
            if is_version_tag(&model[cut + 1..])
                && let Some(price) = self.0.get(&model[..cut])
            {
                return Some(price);
            }
            end = cut;
        }
        None
    }

    /// What `usage` cost on `model`, or `None` if the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Cost> {
        self.get(model).map(|price| price.cost(usage))
    }

    /// The priced models, in no particular order.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.0.iter().map(|(model, price)| (&**model, price))
    }

    /// Whether the table prices no model.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `latest`, or digits and dashes with at least three digits: `2024-08-06`, `20250929`, `001`.
fn is_version_tag(tag: &str) -> bool {
    tag == "latest"
        || (tag.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            && tag.bytes().filter(u8::is_ascii_digit).count() >= 3)
}

impl fmt::Debug for Prices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prices")
            .field("models", &self.0.len())
            .finish()
    }
}

/// (model, input, cached input, cache write, output), USD per million tokens, standard tier.
/// OpenAI and Gemini bill no cache writes (priced as input); Anthropic's are the 5-minute
/// writes (1-hour writes cost more: price them with [`Prices::with`] if you use them).
#[rustfmt::skip]
const BUILTIN: &[(&str, f64, f64, f64, f64)] = &[
    // OpenAI.
    ("gpt-5.1",              1.25,  0.125,  1.25,  10.0),
    ("gpt-5",                1.25,  0.125,  1.25,  10.0),
    ("gpt-5-mini",           0.25,  0.025,  0.25,   2.0),
    ("gpt-5-nano",           0.05,  0.005,  0.05,   0.4),
    ("gpt-4.1",              2.0,   0.5,    2.0,    8.0),
    ("gpt-4.1-mini",         0.4,   0.1,    0.4,    1.6),
    ("gpt-4.1-nano",         0.1,   0.025,  0.1,    0.4),
    ("gpt-4o",               2.5,   1.25,   2.5,   10.0),
    ("gpt-4o-mini",          0.15,  0.075,  0.15,   0.6),
    ("o3",                   2.0,   0.5,    2.0,    8.0),
    ("o3-mini",              1.1,   0.55,   1.1,    4.4),
    ("o4-mini",              1.1,   0.275,  1.1,    4.4),
    ("o1",                  15.0,   7.5,   15.0,   60.0),
    // Anthropic (cache writes: 5-minute).
    ("claude-opus-5",        5.0,   0.5,    6.25,  25.0),
    ("claude-opus-4-8",      5.0,   0.5,    6.25,  25.0),
    ("claude-opus-4-7",      5.0,   0.5,    6.25,  25.0),
    ("claude-opus-4-6",      5.0,   0.5,    6.25,  25.0),
    ("claude-opus-4-5",      5.0,   0.5,    6.25,  25.0),
    ("claude-opus-4-1",     15.0,   1.5,   18.75,  75.0),
    ("claude-opus-4-0",     15.0,   1.5,   18.75,  75.0),
    ("claude-opus-4",       15.0,   1.5,   18.75,  75.0),
    ("claude-sonnet-4-6",    3.0,   0.3,    3.75,  15.0),
    ("claude-sonnet-4-5",    3.0,   0.3,    3.75,  15.0),
    ("claude-sonnet-4-0",    3.0,   0.3,    3.75,  15.0),
    ("claude-sonnet-4",      3.0,   0.3,    3.75,  15.0),
    ("claude-3-7-sonnet",    3.0,   0.3,    3.75,  15.0),
    ("claude-haiku-4-5",     1.0,   0.1,    1.25,   5.0),
    ("claude-3-5-haiku",     0.8,   0.08,   1.0,    4.0),
    ("claude-3-haiku",       0.25,  0.03,   0.3,    1.25),
    // Gemini (prompts up to 200k tokens).
    ("gemini-2.5-pro",       1.25,  0.125,  1.25,  10.0),
    ("gemini-2.5-flash",     0.3,   0.03,   0.3,    2.5),
    ("gemini-2.5-flash-lite", 0.1,  0.01,   0.1,    0.4),
    ("gemini-2.0-flash",     0.1,   0.025,  0.1,    0.4),
    ("gemini-2.0-flash-lite", 0.075, 0.075, 0.075,  0.3),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(cost: Cost) -> f64 {
        cost.usd()
    }

    #[test]
    fn openai_usage_prices_cached_and_reasoning_tokens_in_their_category() {
        // gpt-4o: 1,000 prompt tokens of which 600 cached; 500 completion of which 200
        // reasoning (billed as output).
        let usage = Usage::new(1_000, 500)
            .with_cached_input(600)
            .with_reasoning(200);
        let cost = Prices::builtin().cost("gpt-4o", &usage).unwrap();
        let expected = 400.0 * 2.5e-6 + 600.0 * 1.25e-6 + 500.0 * 10e-6;
        assert!((usd(cost) - expected).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn anthropic_usage_prices_cache_reads_and_writes_apart() {
        // The adapter's input = input + cache reads + cache writes.
        let usage = Usage::new(100 + 2_000 + 1_000, 300)
            .with_cached_input(2_000)
            .with_cache_writes(1_000);
        let cost = Prices::builtin()
            .cost("claude-sonnet-4-5-20250929", &usage)
            .unwrap();
        let expected = 100.0 * 3e-6 + 2_000.0 * 0.3e-6 + 1_000.0 * 3.75e-6 + 300.0 * 15e-6;
        assert!((usd(cost) - expected).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn gemini_thoughts_are_output_unless_reasoning_has_a_price() {
        let usage = Usage::new(1_000, 800)
            .with_cached_input(1_000)
            .with_reasoning(600);
        let prices = Prices::builtin();
        let cost = prices.cost("models/gemini-2.5-flash", &usage).unwrap();
        let expected = 1_000.0 * 0.03e-6 + 800.0 * 2.5e-6;
        assert!((usd(cost) - expected).abs() < 1e-9, "{cost}");

        let priced = prices.with(
            "gemini-2.5-flash",
            ModelPrice::per_million(0.3, 2.5).reasoning(3.5),
        );
        let cost = priced.cost("gemini-2.5-flash", &usage).unwrap();
        let expected = 1_000.0 * 0.3e-6 + 200.0 * 2.5e-6 + 600.0 * 3.5e-6;
        assert!((usd(cost) - expected).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn costs_round_up_to_the_nano_dollar_and_never_exceed_usage() {
        // 3 tokens at $0.0005 per million: 1.5 nano-dollars, charged 2.
        let price = ModelPrice::per_million(0.0005, 0.0);
        assert_eq!(price.cost(&Usage::new(3, 0)), Cost::from_nanos(2));
        // Counts that contradict each other (more cached than input) price no token twice.
        let odd = Usage::new(10, 0)
            .with_cached_input(50)
            .with_cache_writes(50);
        let cost = ModelPrice::per_million(1.0, 1.0).cost(&odd);
        assert_eq!(cost, Cost::from_nanos(10_000));
        // Counts too large for 64-bit arithmetic are priced in 128 bits.
        let huge = Usage::new(u64::MAX / 2, 0);
        let cost = ModelPrice::per_million(150.0, 0.0).cost(&huge);
        assert_eq!(cost, Cost::MAX);
    }

    #[test]
    fn the_longest_priced_family_wins_and_unknown_models_have_no_price() {
        let prices = Prices::builtin();
        let mini = prices.get("gpt-4o-mini").unwrap();
        assert_eq!(prices.get("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_ne!(prices.get("gpt-4o-2024-08-06"), Some(mini));
        assert_eq!(prices.get("gpt-4o-2024-08-06"), prices.get("gpt-4o"));
        // `gpt-5.1` is not `gpt-5` with a suffix.
        assert_ne!(prices.get("gpt-5.1-2025-11-13"), None);
        assert_eq!(prices.get("gpt-5.9"), None);
        assert_eq!(prices.get("llama3.2"), None);
        assert_eq!(prices.get("claude-opus-4-9"), None);
        assert_eq!(
            prices.get("claude-3-5-haiku-latest"),
            prices.get("claude-3-5-haiku")
        );
        assert!(prices.get("claude-opus-4-20250514").is_some());
        assert_eq!(prices.cost("llama3.2", &Usage::new(1, 1)), None);
    }

    #[test]
    fn overrides_replace_and_extend_without_touching_the_original() {
        let builtin = Prices::builtin();
        let mine = builtin
            .clone()
            .with("gpt-4o", ModelPrice::per_million(1.0, 1.0));
        assert_ne!(builtin.get("gpt-4o"), mine.get("gpt-4o"));
    }

    #[test]
    fn display_and_usd() {
        assert_eq!(Cost::from_usd(0.000_123).to_string(), "$0.000123");
        assert_eq!(Cost::from_usd(2.0).to_string(), "$2");
        assert_eq!(Cost::from_usd(-1.0), Cost::ZERO);
        assert_eq!(Cost::from_usd(f64::NAN), Cost::ZERO);
        assert_eq!(Cost::from_usd(1e30), Cost::MAX);
    }

    #[test]
    fn max_takes_the_dearer_price_per_category() {
        let a = ModelPrice::per_million(1.0, 10.0).cached_input(0.5);
        let b = ModelPrice::per_million(2.0, 4.0).cached_input(0.1);
        let m = a.max(b);
        assert_eq!(m.input, PerMillion::usd(2.0));
        assert_eq!(m.output, PerMillion::usd(10.0));
        assert_eq!(m.cached_input, PerMillion::usd(0.5));
    }
}
