//! Writes that go on in the background, counted, so that a caller can wait for them.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Background writes in flight.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    in_flight: AtomicUsize,
    settled: Notify,
}

impl Writes {
    /// Runs `write` on its own task (when there is a runtime), counted until it ends.
    pub(crate) fn spawn(self: &Arc<Self>, write: impl Future<Output = ()> + Send + 'static) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let writes = Arc::clone(self);
        let guard = Done(writes);
        runtime.spawn(async move {
            let _guard = guard;
            write.await;
        });
    }

    /// Waits until every write spawned so far has ended.
    pub(crate) async fn flush(&self) {
        loop {
            let mut notified = pin!(self.settled.notified());
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a write ended, however its task ends.
struct Done(Arc<Writes>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.settled.notify_waiters();
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    let hash = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in hash {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}
