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

/// The idempotency layer's shared store could not be reached and is set to fail closed:
/// the call is refused, nothing was sent upstream (the gateway answers 503).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IdempotencyUnavailable;

impl fmt::Display for IdempotencyUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the idempotency layer's shared store is unreachable and set to fail closed")
    }
}

impl Error for IdempotencyUnavailable {}
