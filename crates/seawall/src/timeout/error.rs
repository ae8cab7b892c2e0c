//! The errors of the timeout layers: seawall-core's [`TimedOut`] (per attempt, first token,
//! idle) and [`DeadlineExceeded`] (the overall deadline), which the classifier knows.
//!
//! A stream timeout ends the stream with a [`StreamEvent::Error`](seawall_core::StreamEvent)
//! holding an [`LlmError`](seawall_core::LlmError) of kind
//! [`ErrorKind::Timeout`](seawall_core::ErrorKind::Timeout) whose `source()` is the
//! [`TimedOut`] (or the [`DeadlineExceeded`]): the classifier fails it over and counts it
//! as a health failure, like an attempt timeout.

pub use seawall_core::{DeadlineExceeded, TimedOut, TimeoutKind};
