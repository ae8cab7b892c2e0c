use std::time::Instant;

use seawall_core::Clock;

/// Tokio's clock, the one every seawall layer measures on: under
/// `#[tokio::test(start_paused = true)]` it is the paused test clock.
///
/// Build a [`Deadline`](seawall_core::Deadline) of your own with it:
///
/// ```
/// use std::time::Duration;
///
/// use seawall::timeout::TokioClock;
/// use seawall_core::{Clock, Deadline};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let deadline = Deadline::after(TokioClock.now(), Duration::from_secs(30));
/// tokio::time::advance(Duration::from_secs(29)).await;
/// assert_eq!(deadline.remaining(TokioClock.now()), Duration::from_secs(1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    #[inline]
    fn instant(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}
