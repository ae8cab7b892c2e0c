use std::error::Error;
use std::fmt;

/// The cache's shared store could not be reached and is set to fail closed: the call is
/// refused, nothing was sent upstream (the gateway answers 503).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheUnavailable;

impl fmt::Display for CacheUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response cache's shared store is unreachable and set to fail closed")
    }
}

impl Error for CacheUnavailable {}
