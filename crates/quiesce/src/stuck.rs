//! Markers this process does not recover at every tick, though no live process holds them:
//!
//! - a marker that cannot be removed although its stacks run (a read-only state directory)
//!   is *stuck*: it needs a person, and this process does not recover it again — that would
//!   start every stack of it at every tick;
//! - a marker kept because the stacks it still names were stranded and the stranded list
//!   could not be written (a full disk) is *held back*: it is the only place those stacks
//!   are kept, so it stays, and it is recovered again on the slow schedule of stranded stacks
//!   (2 min, doubling to 30 min) rather than at every tick — each time their starts are
//!   tried again, and once the list can be written they leave the marker for it.
//!
//! Both are this process's memory only: a new process (a restart, the timer's `recover`)
//! recovers such a marker once more, which starts only what does not run (issue 18).

use crate::backoff::Backoff;
use crate::overview::Shown;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

/// The markers, by cycle id, this process does not recover at every tick.
#[derive(Debug, Default)]
pub(crate) struct StuckMarker(Mutex<HashMap<String, Memory>>);

#[derive(Debug, Clone, Copy)]
enum Memory {
    /// It cannot be removed: never again in this process.
    Stuck,
    /// It keeps stranded stacks: not before `at`; the pause after that is `pause`'s.
    HeldBack { at: Instant, pause: Backoff },
}

/// Whether a recovery of a marker may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Recover it.
    Recover,
    /// It cannot be removed: a problem to show, not a recovery.
    Stuck,
    /// Its time has not come: leave it quietly.
    NotYet,
}

impl StuckMarker {
    fn memory(&self) -> MutexGuard<'_, HashMap<String, Memory>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The marker of `cycle_id` could not be removed: remembered, and shown (`message`).
    pub(crate) fn mark(&self, shown: &Shown, cycle_id: &str, message: String) {
        self.memory().insert(cycle_id.to_owned(), Memory::Stuck);
        shown.set(|o| o.marker_stuck = Some(message));
    }

    /// The marker of `cycle_id` keeps stacks that the stranded list could not take: it is
    /// recovered again after a pause that doubles each time, up to half an hour.
    pub(crate) fn hold_back(&self, cycle_id: &str) {
        let now = Instant::now();
        let mut memory = self.memory();
        let mut pause = match memory.get(cycle_id) {
            Some(Memory::HeldBack { pause, .. }) => *pause,
            _ => Backoff::stranded(),
        };
        let at = now + pause.delay();
        pause.grow();
        memory.insert(cycle_id.to_owned(), Memory::HeldBack { at, pause });
    }

    /// Whether the marker of `cycle_id` is to be recovered now.
    pub(crate) fn verdict(&self, cycle_id: &str) -> Verdict {
        match self.memory().get(cycle_id) {
            None => Verdict::Recover,
            Some(Memory::Stuck) => Verdict::Stuck,
            Some(Memory::HeldBack { at, .. }) if Instant::now() < *at => Verdict::NotYet,
            Some(Memory::HeldBack { .. }) => Verdict::Recover,
        }
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
        assert_eq!(stuck.verdict("c-1"), Verdict::Recover);
        stuck.mark(&shown, "c-1", "clearing the marker: read-only".into());
        assert_eq!(stuck.verdict("c-1"), Verdict::Stuck);
        assert_eq!(
            stuck.verdict("c-2"),
            Verdict::Recover,
            "another cycle's marker is recovered as any"
        );
        assert_eq!(
            shown.get().marker_stuck.as_deref(),
            Some("clearing the marker: read-only")
        );
    }

    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_held_back_marker_waits_two_minutes_then_four_up_to_half_an_hour() {
        let stuck = StuckMarker::default();
        let minute = Duration::from_secs(60);
        let mut waited = Vec::new();
        for _ in 0..6 {
            stuck.hold_back("c-1");
            let began = Instant::now();
            while stuck.verdict("c-1") == Verdict::NotYet {
                tokio::time::sleep(minute).await;
            }
            waited.push(began.elapsed().as_secs() / 60);
        }
        assert_eq!(waited, [2, 4, 8, 16, 30, 30]);
        assert_eq!(stuck.verdict("c-2"), Verdict::Recover);
    }
}
