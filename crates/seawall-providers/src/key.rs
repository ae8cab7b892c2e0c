use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use seawall_core::{ErrorKind, LlmError, ProviderKind};

/// An API key. Its `Debug` and `Display` print `<redacted>`, never the key, so it cannot
/// leak through logs, traces or error messages; header values built from it are marked
/// sensitive (hidden from HTTP/2 header compression tables and from `Debug`).
///
/// ```
/// use seawall_providers::ApiKey;
///
/// let key = ApiKey::new("sk-secret");
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// assert_eq!(key.to_string(), "<redacted>");
/// assert_eq!(key.expose(), "sk-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// Reads a key from an environment variable; `None` if it is unset or empty.
    pub fn from_env(variable: &str) -> Option<Self> {
        std::env::var(variable)
            .ok()
            .filter(|key| !key.trim().is_empty())
            .map(|key| Self::new(key.trim()))
    }

    /// The key itself, for building a request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A sensitive header value `prefix` + key (for example `Bearer `).
    ///
    /// A key holding characters a header cannot carry is an [`ErrorKind::Auth`] error of
    /// `provider` (that names no part of the key).
    pub(crate) fn header_value(
        &self,
        prefix: &str,
        provider: ProviderKind,
    ) -> Result<HeaderValue, LlmError> {
        let mut value = HeaderValue::try_from(format!("{prefix}{}", self.0)).map_err(|_| {
            LlmError::new(
                ErrorKind::Auth,
                "the API key holds characters a header cannot carry",
            )
            .with_provider(provider)
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self::new(key)
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        Self::new(key)
    }
}
