//! What a budget counts, over what, for whom; and the caps on one request.

use std::fmt;
use std::sync::Arc;

use seawall_core::{Cost, RequestContext};

use super::window::Window;

/// Who a budget is for: each distinct value of the scope (each key, tenant, user) has a
/// budget of its own.
#[derive(Clone)]
#[non_exhaustive]
pub enum Scope {
    /// Every call through the layer, together.
    Global,
    /// The caller's virtual key ([`CallOptions::virtual_key`](seawall_core::CallOptions)).
    VirtualKey,
    /// The caller's tenant ([`CallOptions::tenant`](seawall_core::CallOptions)).
    Tenant,
    /// The request's `user` field.
    User,
    /// Any value the caller extracts from the request.
    Custom(CustomScope),
}

/// A scope named `name` whose value a function reads from the request.
#[derive(Clone)]
pub struct CustomScope {
    name: Arc<str>,
    extract: Arc<ExtractScope>,
}

/// Reads a custom scope's value from a request.
type ExtractScope = dyn Fn(&ScopeView<'_>) -> Option<Arc<str>> + Send + Sync;

/// What a scope can read of a request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ScopeView<'a> {
    /// The call's context.
    pub context: Option<&'a RequestContext>,
    /// The request's `user` field.
    pub user: Option<&'a str>,
    /// The model asked for.
    pub model: Option<&'a str>,
    /// The request's headers (raw HTTP requests only).
    pub headers: Option<&'a http::HeaderMap>,
}

impl Scope {
    /// A scope named `name` (for errors, headers and alerts) whose value `extract` reads;
    /// a request it returns `None` for is not under the scope's budgets.
    pub fn custom(
        name: impl Into<Arc<str>>,
        extract: impl Fn(&ScopeView<'_>) -> Option<Arc<str>> + Send + Sync + 'static,
    ) -> Self {
        Self::Custom(CustomScope {
            name: name.into(),
            extract: Arc::new(extract),
        })
    }

    /// The scope's name: `global`, `key`, `tenant`, `user`, or a custom scope's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Global => "global",
            Self::VirtualKey => "key",
            Self::Tenant => "tenant",
            Self::User => "user",
            Self::Custom(custom) => &custom.name,
        }
    }

    /// The scope's value for a request, if the request is under it.
    pub(crate) fn value(&self, view: &ScopeView<'_>) -> Option<Arc<str>> {
        let options = view.context.map(RequestContext::options);
        match self {
            Self::Global => Some(Arc::from("")),
            Self::VirtualKey => options.and_then(|o| o.virtual_key.clone()),
            Self::Tenant => options.and_then(|o| o.tenant.clone()),
            Self::User => view.user.map(Arc::from),
            Self::Custom(custom) => (custom.extract)(view),
        }
    }

    /// Whether two scopes read the same value (custom scopes: the same name).
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl fmt::Debug for CustomScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomScope")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much a budget allows per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// Input plus output tokens.
    Tokens(u64),
    /// Money, at the layer's prices.
    Usd(Cost),
}

/// An amount of tokens or money: what a budget has used, or allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Amount {
    /// Tokens.
    Tokens(u64),
    /// Money.
    Usd(Cost),
}

impl Amount {
    /// The amount in the budget's unit: tokens, or nano-dollars.
    pub fn units(self) -> u64 {
        match self {
            Self::Tokens(tokens) => tokens,
            Self::Usd(cost) => cost.nanos(),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tokens(tokens) => write!(f, "{tokens} tokens"),
            Self::Usd(cost) => write!(f, "{cost}"),
        }
    }
}

impl Limit {
    /// The limit in the budget's unit: tokens, or nano-dollars.
    pub(crate) fn units(self) -> u64 {
        match self {
            Self::Tokens(tokens) => tokens,
            Self::Usd(cost) => cost.nanos(),
        }
    }

    /// `units` of this limit's kind.
    pub(crate) fn amount(self, units: u64) -> Amount {
        match self {
            Self::Tokens(_) => Amount::Tokens(units),
            Self::Usd(_) => Amount::Usd(Cost::from_nanos(units)),
        }
    }

    pub(crate) fn unit_name(self) -> &'static str {
        match self {
            Self::Tokens(_) => "tokens",
            Self::Usd(_) => "usd",
        }
    }
}

/// One budget: a limit per window for each value of a scope, or for one value only.
///
/// ```
/// use seawall::budget::{BudgetRule, Scope, Window};
///
/// // Each user: 200,000 tokens a day. The key `team-a`: $50 a month.
/// let per_user = BudgetRule::tokens(Scope::User, Window::Day, 200_000);
/// let team_a = BudgetRule::usd(Scope::VirtualKey, Window::Month, 50.0).only("team-a");
/// assert_eq!(team_a.name(), "key:team-a:month:usd");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BudgetRule {
    /// Who it is for.
    pub scope: Scope,
    /// Only this value of the scope, or every value.
    pub only: Option<Arc<str>>,
    /// The period it counts over.
    pub window: Window,
    /// How much it allows per window.
    pub limit: Limit,
}

impl BudgetRule {
    /// At most `tokens` input plus output tokens per `window` for each value of `scope`.
    pub fn tokens(scope: Scope, window: Window, tokens: u64) -> Self {
        Self {
            scope,
            only: None,
            window,
            limit: Limit::Tokens(tokens),
        }
    }

    /// At most `usd` dollars per `window` for each value of `scope`.
    pub fn usd(scope: Scope, window: Window, usd: f64) -> Self {
        Self {
            scope,
            only: None,
            window,
            limit: Limit::Usd(Cost::from_usd(usd)),
        }
    }

    /// The budget holds for the scope's value `value` only (one key's own budget).
    #[must_use]
    pub fn only(mut self, value: impl Into<Arc<str>>) -> Self {
        self.only = Some(value.into());
        self
    }

    /// `scope[:value]:window:unit`, as errors, headers and alerts name it.
    pub fn name(&self) -> String {
        match &self.only {
            Some(value) => format!(
                "{}:{value}:{}:{}",
                self.scope.name(),
                self.window,
                self.limit.unit_name()
            ),
            None => format!(
                "{}:{}:{}",
                self.scope.name(),
                self.window,
                self.limit.unit_name()
            ),
        }
    }
}

/// What to do with a request whose `max_tokens` is above the output cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverCap {
    /// Lower `max_tokens` to the cap and send it (raw HTTP requests, whose body the layer
    /// does not rewrite, are refused).
    #[default]
    Clamp,
    /// Refuse it.
    Refuse,
}

/// Limits on one request, checked before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RequestCaps {
    /// At most this many estimated input tokens.
    pub max_input_tokens: Option<u64>,
    /// At most this many output tokens (`max_tokens`).
    pub max_output_tokens: Option<u32>,
    /// At most this estimated cost (prompt estimate plus the reserved output, priced).
    pub max_cost: Option<Cost>,
    /// What a `max_tokens` above the output cap gets.
    pub over_output: OverCap,
}

impl RequestCaps {
    /// No caps.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `tokens` estimated input tokens per request.
    #[must_use]
    pub fn max_input_tokens(mut self, tokens: u64) -> Self {
        self.max_input_tokens = Some(tokens);
        self
    }

    /// At most `tokens` output tokens per request; above it, `policy`.
    #[must_use]
    pub fn max_output_tokens(mut self, tokens: u32, policy: OverCap) -> Self {
        self.max_output_tokens = Some(tokens);
        self.over_output = policy;
        self
    }

    /// At most `usd` dollars of estimated cost per request.
    #[must_use]
    pub fn max_cost_usd(mut self, usd: f64) -> Self {
        self.max_cost = Some(Cost::from_usd(usd));
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.max_input_tokens.is_none()
            && self.max_output_tokens.is_none()
            && self.max_cost.is_none()
    }
}
