//! The writes that follow calls (settlements, releases, the provider's reports), gathered
//! for a few milliseconds and sent as one script call: they are sums and a latest report,
//! so one call says what many would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::{Core, NONE};

/// How long writes are gathered before they are sent.
pub(super) const GATHER: Duration = Duration::from_millis(2);

/// A report's script arguments per dimension: has report, remaining, limit, reset after.
pub(super) type Report = [u64; 16];

/// No report: only the limits stay as they are.
const NO_REPORT: Report = [
    0, 0, NONE, NONE, 0, 0, NONE, NONE, 0, 0, NONE, NONE, 0, 0, NONE, NONE,
];

/// Writes not yet sent, per dimension.
#[derive(Debug, Default)]
pub(super) struct Pending {
    debit: [AtomicU64; 4],
    refund: [AtomicU64; 4],
    release: [AtomicU64; 4],
    report: ArcSwapOption<Report>,
    scheduled: AtomicBool,
}

fn add(slots: &[AtomicU64; 4], units: [u64; 4]) {
    for (slot, units) in slots.iter().zip(units) {
        if units > 0 {
            slot.fetch_add(units, Ordering::AcqRel);
        }
    }
}

fn take(slots: &[AtomicU64; 4]) -> [u64; 4] {
    slots.each_ref().map(|slot| slot.swap(0, Ordering::AcqRel))
}

impl Pending {
    /// The `flush` script's arguments for everything gathered, and nothing left gathered;
    /// `None` when there is nothing to send.
    fn drain(&self) -> Option<Vec<u64>> {
        let report = self.report.swap(None);
        let sums = [take(&self.debit), take(&self.refund), take(&self.release)];
        if report.is_none() && sums == [[0; 4]; 3] {
            return None;
        }
        let mut args = sums.concat();
        args.extend_from_slice(report.as_deref().unwrap_or(&NO_REPORT));
        Some(args)
    }
}

impl Core {
    /// Charges `debit` and gives back `refund` on the configured limits; `release` leaves
    /// the units in flight.
    pub(super) fn settle_later(
        self: &Arc<Self>,
        debit: [u64; 4],
        refund: [u64; 4],
        release: [u64; 4],
    ) {
        add(&self.pending.debit, debit);
        add(&self.pending.refund, refund);
        add(&self.pending.release, release);
        self.send_soon();
    }

    /// Units reserved and never used: out of flight and off the configured limits.
    pub(super) fn give_back_units(self: &Arc<Self>, units: [u64; 4]) {
        self.settle_later([0; 4], units, units);
    }

    /// Gathers `units` to give back, for a send the caller makes.
    pub(super) fn pending_give_back(&self, units: [u64; 4]) {
        add(&self.pending.refund, units);
        add(&self.pending.release, units);
    }

    /// The provider's report, which replaces any report not sent yet (the newest report
    /// says what the older ones said), and the units it counted; `urgent`: sent at once
    /// with everything gathered so far.
    pub(super) fn report_later(self: &Arc<Self>, report: Report, counted: [u64; 4], urgent: bool) {
        self.pending.report.store(Some(Arc::new(report)));
        add(&self.pending.release, counted);
        if urgent {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                if let Some(args) = this.pending.drain() {
                    this.send("flush", args).await;
                }
            });
        } else {
            self.send_soon();
        }
    }

    /// Sends what is gathered now, and waits for the answer.
    pub(super) async fn send_now(&self) {
        if let Some(args) = self.pending.drain() {
            self.send("flush", args).await;
        }
    }

    fn send_soon(self: &Arc<Self>) {
        if self.pending.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.pending.scheduled.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        runtime.spawn(async move {
            tokio::time::sleep(GATHER).await;
            // Cleared before draining: a write added from here on schedules its own send.
            this.pending.scheduled.store(false, Ordering::Release);
            if let Some(args) = this.pending.drain() {
                this.send("flush", args).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_writes_are_sums_and_the_newest_report() {
        let pending = Pending::default();
        assert_eq!(pending.drain(), None);
        add(&pending.debit, [0, 10, 0, 0]);
        add(&pending.debit, [0, 5, 0, 0]);
        add(&pending.release, [1, 0, 0, 0]);
        add(&pending.release, [2, 0, 0, 0]);
        let mut report = NO_REPORT;
        report[..4].copy_from_slice(&[1, 7, 100, 30]);
        pending.report.store(Some(Arc::new(NO_REPORT)));
        pending.report.store(Some(Arc::new(report)));
        let args = pending.drain().unwrap();
        assert_eq!(&args[..12], &[0, 15, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&args[12..], &report);
        assert_eq!(pending.drain(), None, "everything was taken");
    }
}
