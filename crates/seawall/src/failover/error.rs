//! The router's error when no target answered.
//!
//! [`AllTargetsFailed`] lives in `seawall-core` so that the one classifier knows it (it is
//! fatal: nothing is left to try). The router returns it, like every error, wrapped in an
//! [`ErrorWithTrail`]; find it with [`ErrorWithTrail::downcast_inner`].

pub use seawall_core::{AllTargetsFailed, ErrorWithTrail};
