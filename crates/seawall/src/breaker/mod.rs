//! A per-target breaker: the *health breaker* and, separately, the *capacity cooldown*.
//!
//! - **Health breaker** (closed → open → half-open). It trips on
//!   [N consecutive health failures](BreakerBuilder::consecutive_failures) or on a
//!   [failure ratio](BreakerBuilder::failure_ratio) over a sliding time window with a
//!   minimum number of calls. Calls slower than a [threshold](BreakerBuilder::slow_call),
//!   and streams whose first token comes later than a
//!   [threshold](BreakerBuilder::slow_first_token), can count as failures. After the break
//!   (which [grows](BreakerBuilder::break_duration) with each reopening, up to a cap) the
//!   next calls are [probes](BreakerBuilder::half_open_probes): that many successes close
//!   it, one failure opens it again.
//! - **Capacity cooldown.** A 429, an exhausted quota, or a response whose quota headers
//!   are at zero parks the target until the server's reset (retry-after or quota reset; an
//!   optional [default](BreakerBuilder::default_cooldown) when there is neither) without
//!   counting a health failure. Beside a rate limiter that follows the provider's reports,
//!   [turn it off](BreakerBuilder::capacity_cooldown): the limiter holds the target until
//!   the reset, and calls that can wait that long queue for it instead of being refused.
//!
//! What counts is decided by the stack's [`Classifier`](seawall_core::Classifier) (the one
//! the request context carries, the breaker's own, or the built-in table): `health_failure`
//! failures count, `out_of_capacity` ones park the target, an answer from the target (even
//! a 400) is a success, and layer-local rejections (a limiter below, a cancelled call)
//! count for nothing. On raw HTTP a 4xx or 5xx response is classified from its status and
//! headers ([`LlmResponse::failure`](seawall_core::LlmResponse)); an
//! [`LlmError`](seawall_core::LlmError) extension set by a layer below that read the error
//! body takes precedence. A typed streamed call's outcome is recorded at its first content
//! event (or at an error or the end before it).
//!
//! A call that is not admitted fails in the response future with
//! [`CircuitOpen`] (target, time until a call could be admitted,
//! [`OpenReason`]) and is not sent; `poll_ready` only delegates.
//! The closed path is lock-free (atomics); a mutex guards transitions and the half-open
//! bookkeeping, never across an `.await`. Transitions are logged as `tracing` events
//! (target `seawall::breaker`) and passed to an optional [callback](BreakerBuilder::on_event).
//!
//! The state is created with the layer and shared by its clones, its services and its
//! [`BreakerHandle`]s, which the failover layer reads to skip open targets and operators
//! use to force a target open or reset it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use seawall::breaker::{BreakerLayer, OpenReason};
//! use seawall_core::{BoxError, BreakerState, ChatRequest, ChatResponse, CircuitOpen, ErrorKind, LlmError, Message};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let layer = BreakerLayer::builder("openai/gpt-4o")
//!     .consecutive_failures(2)
//!     .break_duration(Duration::from_secs(5), Duration::from_secs(20))
//!     .build();
//! let handle = layer.handle();
//! let down = service_fn(|_: ChatRequest| async {
//!     Err::<ChatResponse, BoxError>(LlmError::new(ErrorKind::Server, "internal error").with_status(500).into())
//! });
//! let service = ServiceBuilder::new().layer(layer).service(down);
//! let request = ChatRequest::new("gpt-4o", [Message::user("Hi")]);
//!
//! for _ in 0..2 {
//!     let _ = service.clone().oneshot(request.clone()).await;
//! }
//! assert_eq!(handle.state(), BreakerState::Open);
//!
//! let error = service.clone().oneshot(request).await.unwrap_err();
//! let open = error.downcast_ref::<CircuitOpen>().expect("rejected without a call");
//! assert_eq!(open.reason, OpenReason::Unhealthy);
//! assert_eq!(open.retry_in, Duration::from_secs(5));
//!
//! handle.reset();
//! assert!(handle.check(tokio::time::Instant::now()).is_ok());
//! # }
//! ```

mod config;
pub mod error;
pub mod future;
mod layer;
mod peers;
mod service;
mod state;

pub use self::config::{BreakerBuilder, BreakerEvent};
pub use self::error::{CircuitOpen, OpenReason};
pub use self::layer::BreakerLayer;
pub use self::peers::{BreakerPeers, PeerChange};
pub use self::service::Breaker;
pub use self::state::{BreakerHandle, WeakBreakerHandle};
