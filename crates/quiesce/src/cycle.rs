//! One cycle's state, shared by the driver and the tasks of its steps: where it is, its marker
//! and its record. Only [`crate::Controller`]'s `advance` moves the phase.

use crate::machine::Phase;
use chrono::Utc;
use felhom_marker::{CycleRecord, Marker, MarkerStore, Outcome, StackRecord};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// The most lines a record's `errors` keeps: an agent that fails every poll for `max_quiesce`
/// must not grow the history without bound.
pub(crate) const MAX_ERRORS: usize = 50;

/// One cycle (or recovery) in progress.
#[derive(Debug)]
pub(crate) struct Cycle {
    pub(crate) phase: Phase,
    pub(crate) marker: Marker,
    pub(crate) record: CycleRecord,
    /// The marker was cleared (every stack runs or is stranded): it is not written again.
    pub(crate) cleared: bool,
    /// An unknown agent phase was warned about (warn once).
    pub(crate) warned_unknown: bool,
    /// A crash recovery: nothing is known of how far each stop got.
    pub(crate) recovering: bool,
}

/// How loud a noted problem is in the log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Level {
    Warn,
    Error,
}

impl Cycle {
    /// A cycle in `phase` over `marker`; its record starts from the marker.
    pub(crate) fn new(phase: Phase, marker: Marker, outcome: Outcome, recovering: bool) -> Self {
        let record = new_record(&marker, outcome);
        Cycle {
            phase,
            marker,
            record,
            cleared: false,
            warned_unknown: false,
            recovering,
        }
    }

    /// The one way to note a problem: logged with the cycle id, and kept in the record's
    /// `errors` up to [`MAX_ERRORS`] lines.
    pub(crate) fn note(&mut self, level: Level, message: String) {
        let cycle = self.record.cycle_id.as_str();
        match level {
            Level::Warn => tracing::warn!(cycle, "{message}"),
            Level::Error => tracing::error!(cycle, "{message}"),
        }
        if self.record.errors.len() < MAX_ERRORS {
            self.record.errors.push(message);
        }
    }

    /// Writes the marker as it is now, unless it was cleared. Past the first stop a failed
    /// write does not end the cycle: the marker on disk is older but still names every stack
    /// (it only ever loses stacks that run again).
    pub(crate) fn save_marker(&mut self, store: &dyn MarkerStore) {
        if self.cleared {
            return;
        }
        if let Err(e) = store.save(&self.marker) {
            self.note(Level::Error, format!("updating the marker: {e}"));
        }
    }

    /// The record of stack `name`.
    pub(crate) fn stack_record(&mut self, name: &str) -> Option<&mut StackRecord> {
        self.record.stacks.iter_mut().find(|r| r.name == name)
    }

    /// The stacks to stop again before their start: in a recovery all of them (nothing is
    /// known of how far each stop got), else those whose stop began but was not seen to end
    /// well — interrupted by the bound, a cancellation or a panic, or failed. Their containers
    /// may still be shutting down.
    pub(crate) fn to_settle(&self) -> BTreeSet<String> {
        if self.recovering {
            return self.marker.stacks.iter().map(|s| s.name.clone()).collect();
        }
        self.record
            .stacks
            .iter()
            .filter(|s| s.stop_started_at.is_some() && s.stopped_at.is_none())
            .map(|s| s.name.clone())
            .collect()
    }

    /// Stack `name` runs again: it leaves the marker, and its downtime is recorded.
    pub(crate) fn started(&mut self, name: &str, store: &dyn MarkerStore) {
        let now = Utc::now();
        self.marker.stacks.retain(|s| s.name != name);
        self.save_marker(store);
        if let Some(rec) = self.stack_record(name) {
            rec.started_at = Some(now);
            rec.downtime_ms = rec
                .stop_started_at
                .map(|t| (now - t).num_milliseconds().max(0) as u64);
        }
    }
}

/// The cycle as the driver and its steps' tasks share it.
#[derive(Debug, Clone)]
pub(crate) struct SharedCycle(Arc<Mutex<Cycle>>);

impl SharedCycle {
    pub(crate) fn new(cycle: Cycle) -> Self {
        SharedCycle(Arc::new(Mutex::new(cycle)))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Cycle> {
        // A step's task that panicked while holding the lock cannot leave the cycle
        // half-updated in a way that matters more than resuming: take the state as it is.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn new_record(marker: &Marker, outcome: Outcome) -> CycleRecord {
    CycleRecord {
        cycle_id: marker.cycle_id.clone(),
        started_at: marker.started_at,
        finished_at: marker.started_at,
        outcome,
        backup_id: marker.backup_id.clone(),
        snapshot_at: None,
        agent_phase: None,
        stacks: marker
            .stacks
            .iter()
            .map(|s| StackRecord {
                name: s.name.clone(),
                services: s.services.clone(),
                stop_started_at: None,
                stopped_at: None,
                started_at: None,
                downtime_ms: None,
            })
            .collect(),
        stranded: Vec::new(),
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_marker::MarkedStack;

    fn cycle(recovering: bool) -> Cycle {
        let stacks = ["a", "b"]
            .map(|name| MarkedStack {
                name: name.into(),
                services: vec!["app".into()],
                restart_attempts: 0,
            })
            .to_vec();
        Cycle::new(
            Phase::Quiescing,
            Marker::new("c-1", Utc::now(), stacks),
            Outcome::Failed,
            recovering,
        )
    }

    #[test]
    fn notes_are_capped() {
        let mut c = cycle(false);
        for i in 0..(MAX_ERRORS + 10) {
            c.note(Level::Warn, format!("problem {i}"));
        }
        assert_eq!(c.record.errors.len(), MAX_ERRORS);
        assert_eq!(c.record.errors[0], "problem 0");
    }

    #[test]
    fn a_recovery_settles_every_stack_a_cycle_only_the_unfinished_stops() {
        assert_eq!(cycle(true).to_settle().len(), 2);
        let mut c = cycle(false);
        assert!(c.to_settle().is_empty());
        let now = Utc::now();
        for r in &mut c.record.stacks {
            r.stop_started_at = Some(now);
        }
        if let Some(a) = c.stack_record("a") {
            a.stopped_at = Some(now);
        }
        assert_eq!(c.to_settle().into_iter().collect::<Vec<_>>(), ["b"]);
    }
}
