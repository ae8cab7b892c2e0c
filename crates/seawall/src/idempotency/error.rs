use std::error::Error;
use std::fmt;

/// The idempotency key was used before with a different request: the call is refused, not
/// sent (a 422-class error: the caller reused a key by mistake).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyConflict {
    /// The key.
    pub key: String,
}

impl fmt::Display for IdempotencyConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "idempotency key {:?} was already used with a different request",
            self.key
        )
    }
}

impl Error for IdempotencyConflict {}

/// The first call with this idempotency key failed or was abandoned; the calls that joined
/// it share its outcome. Retry with the same key to run it again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FirstCallFailed {
    /// The key.
    pub key: String,
    /// What became of the first call.
    pub reason: String,
}

impl fmt::Display for FirstCallFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the first call with idempotency key {:?} failed: {}",
            self.key, self.reason
        )
    }
}

impl Error for FirstCallFailed {}
