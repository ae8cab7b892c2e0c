//! A response's trail, shared with the recorder that wrote it instead of copied.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::trail::Trail;

/// The [`Trail`] a response or an error carries: read it as a `Trail` (it dereferences to
/// one).
///
/// Handing a call's trail over shares it with the call's
/// [`TrailRecorder`](crate::TrailRecorder) (a reference count, not a copy of every attempt),
/// and what the recorder or a holder writes afterwards is copied on write: each holder
/// keeps the trail as it was when handed over, as a copy would. An empty trail allocates
/// nothing.
#[derive(Clone, Default)]
pub struct SharedTrail(Option<Arc<Trail>>);

/// What an empty shared trail reads as.
static EMPTY: Trail = Trail::EMPTY;

impl SharedTrail {
    /// The trail, taken out without a copy when nothing else shares it.
    pub fn into_trail(self) -> Trail {
        self.0.map(Arc::unwrap_or_clone).unwrap_or_default()
    }

    /// Whether two handles share one trail (not whether their trails are equal).
    pub fn same_as(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(one), Some(other)) => Arc::ptr_eq(one, other),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Deref for SharedTrail {
    type Target = Trail;

    fn deref(&self) -> &Trail {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl DerefMut for SharedTrail {
    /// The trail to change: copied first if another holder shares it.
    fn deref_mut(&mut self) -> &mut Trail {
        Arc::make_mut(self.0.get_or_insert_default())
    }
}

impl From<Trail> for SharedTrail {
    fn from(trail: Trail) -> Self {
        Self(Some(Arc::new(trail)))
    }
}

impl From<SharedTrail> for Trail {
    fn from(shared: SharedTrail) -> Self {
        shared.into_trail()
    }
}

impl fmt::Debug for SharedTrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for SharedTrail {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other) || **self == **other
    }
}

impl Eq for SharedTrail {}

impl PartialEq<Trail> for SharedTrail {
    fn eq(&self, other: &Trail) -> bool {
        **self == *other
    }
}

impl PartialEq<SharedTrail> for Trail {
    fn eq(&self, other: &SharedTrail) -> bool {
        *self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::SharedTrail;
    use crate::{AttemptOutcome, AttemptRecord, TargetId, Trail, TrailRecorder};

    fn attempt(target: &str) -> AttemptRecord {
        AttemptRecord::new(TargetId::from(target), "m", AttemptOutcome::Succeeded)
    }

    #[test]
    fn an_empty_trail_reads_as_the_default_and_allocates_nothing() {
        let shared = SharedTrail::default();
        assert_eq!(*shared, Trail::default());
        assert!(shared.0.is_none());
    }

    #[test]
    fn a_handed_over_trail_keeps_what_it_held_when_the_recorder_writes_on() {
        let recorder = TrailRecorder::new();
        recorder.record(attempt("a"));
        let handed = recorder.shared();
        assert!(handed.same_as(&recorder.shared()), "shared, not copied");
        recorder.record(attempt("b"));
        assert_eq!(handed.attempts.len(), 1);
        assert_eq!(recorder.snapshot().attempts.len(), 2);
    }

    #[test]
    fn a_holder_that_writes_changes_its_copy_only() {
        let recorder = TrailRecorder::new();
        recorder.record(attempt("a"));
        let mut handed = recorder.shared();
        handed.attempts.push(attempt("b"));
        assert_eq!(handed.attempts.len(), 2);
        assert_eq!(recorder.snapshot().attempts.len(), 1);
        assert_eq!(handed.into_trail().attempts.len(), 2);
    }
}
