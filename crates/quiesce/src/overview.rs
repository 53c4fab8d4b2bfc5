//! What the controller shows of itself ([`Overview`]), and [`Shown`]: the one place it
//! changes, which tells the observer of each change.

use crate::machine::Phase;
use crate::{Notice, Observer};
use chrono::{DateTime, Utc};
use felhom_marker::{CycleRecord, Outcome, StrandedStack};
use serde::{Serialize, Serializer};
use std::sync::{Arc, Mutex};

/// What the controller is doing now and what needs a person, for `status`, metrics and
/// [`Observer::changed`]. Serialised as the status endpoint's JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overview {
    /// The phase of the running cycle, if one runs.
    pub phase: Option<Phase>,
    /// The last finished cycle.
    pub last: Option<CycleRecord>,
    /// Cycles finished by this process, by outcome (a JSON object `{"done": 3, ...}`).
    #[serde(serialize_with = "by_outcome")]
    pub cycles: Vec<(Outcome, u64)>,
    /// When the loop will next ask whether a backup is due (wall clock), when it waits.
    pub next_check_at: Option<DateTime<Utc>>,
    /// The stacks that could not be started again, as the state directory keeps them across
    /// cycles and restarts until each runs (SPEC §2 rule 6).
    pub stranded_stacks: Vec<StrandedStack>,
    /// Since when the Docker engine cannot be reached while stacks wait to be started: "waiting
    /// for the engine since …". `None` while it answers.
    pub engine_unreachable_since: Option<DateTime<Utc>>,
    /// The last unusable marker (or stranded list) found by this process: what became of it.
    pub marker_corrupt: Option<String>,
    /// A marker that cannot be removed although its stacks run: it needs a person.
    pub marker_stuck: Option<String>,
    /// Why new cycles are refused, while they are (a state directory others may write to):
    /// it needs a person. Markers and stranded stacks are recovered all the same.
    pub cycles_refused: Option<String>,
    /// The last problem that kept a recovery from running or finishing (the lock cannot be
    /// taken, the marker or the stranded list cannot be read); `None` once one runs clean.
    pub state_problem: Option<String>,
    /// How many times this process failed to keep its state on disk — a marker, the
    /// stranded list or a history record not written, a marker not removed
    /// (`felhom_state_errors_total`). Each is logged; the truth is kept (in the marker, in
    /// memory) where the disk would not take it.
    pub state_errors: u64,
    /// Whether the daemon's start-up recovery runs: the loop's first work (a crashed cycle's
    /// marker, the stranded stacks), which may wait as long as the engine is away.
    pub recovering: bool,
}

impl Overview {
    /// The names of the stranded stacks (see [`Overview::stranded_stacks`]).
    pub fn stranded(&self) -> Vec<String> {
        self.stranded_stacks
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }
}

fn by_outcome<S: Serializer>(cycles: &[(Outcome, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(cycles.iter().map(|(outcome, n)| (outcome, n)))
}

/// The overview and the observer it is shown to.
pub(crate) struct Shown {
    overview: Mutex<Overview>,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shown")
            .field("overview", &self.get())
            .finish_non_exhaustive()
    }
}

impl Shown {
    pub(crate) fn new(observer: Arc<dyn Observer>) -> Self {
        Shown {
            overview: Mutex::new(Overview::default()),
            observer,
        }
    }

    /// The overview now.
    pub(crate) fn get(&self) -> Overview {
        self.overview
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the overview, then tells the observer (outside the lock: it may read it).
    pub(crate) fn set(&self, change: impl FnOnce(&mut Overview)) {
        let now = {
            let mut overview = self.overview.lock().unwrap_or_else(|p| p.into_inner());
            change(&mut overview);
            overview.clone()
        };
        self.observer.changed(&now);
    }

    /// Tells the observer something an operator should hear of.
    pub(crate) fn notice(&self, notice: &Notice) {
        self.observer.notice(notice);
    }

    /// Tells the observer the loop is alive.
    pub(crate) fn tick(&self) {
        self.observer.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Option<Phase>>>);
    impl Observer for Seen {
        fn changed(&self, overview: &Overview) {
            self.0.lock().expect("seen").push(overview.phase);
        }
    }

    #[test]
    fn every_change_is_told_with_the_overview_as_it_is_after_it() {
        let seen = Arc::new(Seen::default());
        let shown = Shown::new(seen.clone());
        shown.set(|o| o.phase = Some(Phase::Quiescing));
        shown.set(|o| o.phase = None);
        assert_eq!(
            *seen.0.lock().expect("seen"),
            [Some(Phase::Quiescing), None]
        );
        assert_eq!(shown.get().phase, None);
    }
}
