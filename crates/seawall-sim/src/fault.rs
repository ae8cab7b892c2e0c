//! Fault scripts over real HTTP: one provider's live [`FaultPlan`] and when it was
//! installed. The vocabulary ([`Fault`], [`FaultRule`]) is `seawall_core::fault`, shared with
//! the in-process chaos layer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use seawall_core::fault::FaultPlan;
pub use seawall_core::fault::{Fault, FaultRule, RateLimitKind, RetryAfter, RetryHeaders};
use tokio::time::Instant;

/// One provider's live plan. The common case (no plan) costs one atomic load; with a plan,
/// a short lock clones an `Arc` and the rules run outside the lock.
#[derive(Debug)]
pub(crate) struct FaultSlot {
    active: AtomicBool,
    plan: Mutex<Option<(Arc<FaultPlan>, Instant)>>,
}

impl FaultSlot {
    pub(crate) fn new() -> FaultSlot {
        FaultSlot {
            active: AtomicBool::new(false),
            plan: Mutex::new(None),
        }
    }

    /// Replaces the plan (an empty list clears it).
    pub(crate) fn set(&self, rules: Vec<FaultRule>) {
        let mut slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if rules.is_empty() {
            *slot = None;
            self.active.store(false, Ordering::Release);
        } else {
            *slot = Some((Arc::new(FaultPlan::new(rules)), Instant::now()));
            self.active.store(true, Ordering::Release);
        }
    }

    /// The rules currently installed.
    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        let slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .map(|(plan, _)| plan.rules().cloned().collect())
            .unwrap_or_default()
    }

    /// Counts a request and returns the fault to apply, if any.
    pub(crate) fn next(&self) -> Option<Fault> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let (plan, installed_at) = {
            let slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
            slot.clone()?
        };
        plan.next(installed_at.elapsed()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_counts_from_its_installation() {
        let slot = FaultSlot::new();
        assert!(slot.next().is_none());
        slot.set(vec![FaultRule::nth(2, Fault::status(500))]);
        assert!(slot.next().is_none());
        assert_eq!(slot.next(), Some(Fault::status(500)));
        assert!(slot.next().is_none());
        slot.set(Vec::new());
        assert!(slot.next().is_none());
    }
}
