//! A marker that cannot be removed although its stacks run (a read-only state directory): it
//! needs a person, and this process does not recover it again — that would restart every
//! stack of it at every tick.

use crate::overview::Shown;
use std::sync::Mutex;

/// The cycle id of the marker this process could not remove, if any.
#[derive(Debug, Default)]
pub(crate) struct StuckMarker(Mutex<Option<String>>);

impl StuckMarker {
    /// The marker of `cycle_id` could not be removed: remembered, and shown (`message`).
    pub(crate) fn mark(&self, shown: &Shown, cycle_id: &str, message: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(cycle_id.to_owned());
        shown.set(|o| o.marker_stuck = Some(message));
    }

    /// Whether the marker of `cycle_id` is the one that could not be removed.
    pub(crate) fn is(&self, cycle_id: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_deref() == Some(cycle_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn only_the_marker_that_could_not_be_removed_is_stuck_and_it_is_shown() {
        let shown = Shown::new(Arc::new(()));
        let stuck = StuckMarker::default();
        assert!(!stuck.is("c-1"));
        stuck.mark(&shown, "c-1", "clearing the marker: read-only".into());
        assert!(stuck.is("c-1"));
        assert!(
            !stuck.is("c-2"),
            "another cycle's marker is recovered as any"
        );
        assert_eq!(
            shown.get().marker_stuck.as_deref(),
            Some("clearing the marker: read-only")
        );
    }
}
