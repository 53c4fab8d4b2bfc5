//! One cycle's (or crash recovery's) state — its phase, the marker it keeps on disk, its
//! record. Only the driver holds a [`Cycle`]: the steps' tasks send it [`Progress`] over a
//! channel, and [`Cycle::apply`] is the one function that changes a cycle, and so the one
//! that decides what the marker on disk says.

use crate::machine::{Observed, Phase};
use crate::progress::{Applied, Level, OnDisk, Progress, Said};
use chrono::{DateTime, Utc};
use felhom_agentapi::{BackupPhase, BackupStatus};
use felhom_marker::{CycleRecord, MarkedStack, Marker, Outcome, StackRecord, StrandedStack};
use std::collections::BTreeSet;

/// The most lines a record's `errors` keeps: an agent that fails every poll for `max_quiesce`
/// must not grow the history without bound.
pub(crate) const MAX_ERRORS: usize = 50;

/// One cycle (or recovery) in progress.
#[derive(Debug)]
pub(crate) struct Cycle {
    pub(crate) phase: Phase,
    /// What the marker on disk is to say; `None` once it is removed.
    marker: Option<Marker>,
    pub(crate) record: CycleRecord,
    /// A crash recovery: nothing is known of how far each stop got.
    pub(crate) recovering: bool,
    /// An unknown agent phase was warned about (warn once).
    warned_unknown: bool,
    /// Stacks stranded by the resume that the stranded list does not hold yet.
    pub(crate) newly_stranded: Vec<StrandedStack>,
}

impl Cycle {
    /// A new cycle over `marker` (not yet on disk: see [`Progress::Began`]).
    pub(crate) fn new(marker: Marker) -> Self {
        Cycle::with(marker, Outcome::Failed, false)
    }

    /// The recovery of `marker`, left on disk by a controller that died.
    pub(crate) fn recovering(marker: Marker) -> Self {
        Cycle::with(marker, Outcome::Recovered, true)
    }

    fn with(marker: Marker, outcome: Outcome, recovering: bool) -> Self {
        Cycle {
            phase: Phase::Quiescing,
            record: new_record(&marker, outcome),
            marker: Some(marker),
            recovering,
            warned_unknown: false,
            newly_stranded: Vec::new(),
        }
    }

    /// The stacks the marker names: down, or about to be stopped.
    pub(crate) fn marked(&self) -> Vec<MarkedStack> {
        self.marker
            .as_ref()
            .map(|m| m.stacks.clone())
            .unwrap_or_default()
    }

    /// The stacks to stop again before their start: in a recovery all of them (nothing is
    /// known of how far each stop got), else those whose stop began but was not seen to end
    /// well — interrupted by the bound, a cancellation or a panic, or failed. Their containers
    /// may still be shutting down.
    pub(crate) fn to_settle(&self) -> BTreeSet<String> {
        if self.recovering {
            return self.marked().into_iter().map(|s| s.name).collect();
        }
        self.record
            .stacks
            .iter()
            .filter(|s| s.stop_started_at.is_some() && s.stopped_at.is_none())
            .map(|s| s.name.clone())
            .collect()
    }

    /// Applies one fact: the cycle changes, and so may the marker on disk.
    pub(crate) fn apply(&mut self, progress: Progress) -> Applied {
        match progress {
            Progress::Began => self.on_disk_now(),
            Progress::Entered(phase) => self.enter(phase),
            Progress::StopBegan { stack, at } => {
                if let Some(rec) = self.stack_record(&stack) {
                    rec.stop_started_at = Some(at);
                }
                Applied::default()
            }
            Progress::Stopped {
                stack,
                services,
                at,
            } => self.stopped(&stack, services, at),
            Progress::StopFailed { stack, error } => {
                self.note(Level::Error, format!("stopping {stack}: {error}"))
            }
            Progress::BackupStarted { id, adopted } => {
                self.record.backup_id = Some(id.clone());
                self.change_marker(|m| m.backup_id = Some(id.clone()));
                Applied {
                    say: Some(Said::BackupStarted { id, adopted }),
                    ..self.on_disk_now()
                }
            }
            Progress::StatusSeen { observed, status } => self.observed(observed, &status),
            Progress::StartFailed {
                stack,
                attempt,
                attempts,
                error,
            } => {
                self.note(
                    Level::Warn,
                    format!("starting {stack} (attempt {attempt}/{attempts}): {error}"),
                );
                self.change_marker(|m| {
                    if let Some(s) = m.stacks.iter_mut().find(|s| s.name == stack) {
                        s.restart_attempts += 1;
                    }
                });
                self.on_disk_now()
            }
            Progress::StackBack { stack, attempt, at } => self.back(stack, attempt, at),
            Progress::Stranded(stack) => {
                let message = format!(
                    "stack {} STRANDED: it could not be started again",
                    stack.name
                );
                self.note(Level::Error, message);
                self.record.stranded.push(stack.name.clone());
                self.newly_stranded.push(stack);
                Applied::default()
            }
            Progress::StrandedKept(names) => {
                self.change_marker(|m| m.stacks.retain(|s| !names.contains(&s.name)));
                if self.marked().is_empty() {
                    // Every stack runs or is stranded: nothing is left for a recovery.
                    self.marker = None;
                    return Applied {
                        on_disk: OnDisk::Remove,
                        say: None,
                    };
                }
                self.on_disk_now()
            }
            Progress::AgentSaid { phase, snapshot_at } => {
                self.record.agent_phase = Some(phase);
                self.record.snapshot_at = snapshot_at.or(self.record.snapshot_at);
                Applied::default()
            }
            Progress::Note(level, message) => self.note(level, message),
        }
    }

    /// The marker as it is now goes on disk (unless it was removed: it is never re-created).
    fn on_disk_now(&self) -> Applied {
        Applied {
            on_disk: self.marker.clone().map_or(OnDisk::Keep, OnDisk::Save),
            say: None,
        }
    }

    fn change_marker(&mut self, change: impl FnOnce(&mut Marker)) {
        if let Some(marker) = &mut self.marker {
            change(marker);
        }
    }

    /// The marker follows the phase: it records each phase in which stacks are not yet back,
    /// and is removed once they run — unless stacks still wait for the engine (it names them).
    fn enter(&mut self, phase: Phase) -> Applied {
        let left = std::mem::replace(&mut self.phase, phase);
        let Some(marker) = &mut self.marker else {
            return Applied::default();
        };
        match phase.marker_phase() {
            Some(on_disk) if marker.phase != on_disk => {
                marker.phase = on_disk;
                self.on_disk_now()
            }
            Some(_) => Applied::default(),
            None if marker.stacks.is_empty() => {
                self.marker = None;
                Applied {
                    on_disk: OnDisk::Remove,
                    say: None,
                }
            }
            None if !matches!(left, Phase::Resuming { .. }) => Applied::default(),
            None => {
                let waiting: Vec<&str> = marker.stacks.iter().map(|s| s.name.as_str()).collect();
                let message = format!(
                    "the docker engine could not be reached: the marker is kept for {}",
                    waiting.join(", ")
                );
                self.note(Level::Error, message)
            }
        }
    }

    /// Stack `stack` is down: its times, and the services that really ran are the ones to
    /// start again (a service that started between the listing and the stop is added).
    fn stopped(&mut self, stack: &str, services: Vec<String>, at: DateTime<Utc>) -> Applied {
        if let Some(rec) = self.stack_record(stack) {
            rec.stopped_at = Some(at);
            if !services.is_empty() {
                rec.services = services.clone();
            }
        }
        let mut changed = false;
        self.change_marker(|m| {
            let marked = m.stacks.iter_mut().find(|s| s.name == stack);
            if let Some(marked) = marked.filter(|m| !services.is_empty() && m.services != services)
            {
                marked.services = services;
                changed = true;
            }
        });
        if changed {
            self.on_disk_now()
        } else {
            Applied::default()
        }
    }

    /// Stack `stack` runs again: it leaves the marker, and its downtime is recorded.
    fn back(&mut self, stack: String, attempt: u32, at: DateTime<Utc>) -> Applied {
        self.change_marker(|m| m.stacks.retain(|s| s.name != stack));
        if let Some(rec) = self.stack_record(&stack) {
            rec.started_at = Some(at);
            rec.downtime_ms = rec
                .stop_started_at
                .map(|t| (at - t).num_milliseconds().max(0) as u64);
        }
        Applied {
            say: Some(Said::StackBack { stack, attempt }),
            ..self.on_disk_now()
        }
    }

    /// What an agent status says for the record.
    fn observed(&mut self, observed: Observed, status: &BackupStatus) -> Applied {
        match (observed, &status.phase) {
            (Observed::Snapshotted, _) if self.record.snapshot_at.is_none() => {
                self.record.snapshot_at = Some(status.snapshot_at.unwrap_or_else(Utc::now));
                let backup = self.record.backup_id.as_deref().unwrap_or_default();
                tracing::info!(backup, "the agent reports the snapshot taken");
            }
            (Observed::Done, _) if self.record.snapshot_at.is_none() => {
                self.record.snapshot_at = status.snapshot_at;
            }
            (Observed::Failed, _) => {
                let why = status.error.as_deref().unwrap_or("no reason given");
                return self.note(
                    Level::Warn,
                    format!("the agent reports the backup failed: {why}"),
                );
            }
            (Observed::Running, BackupPhase::Unknown(name)) if !self.warned_unknown => {
                self.warned_unknown = true;
                tracing::warn!("the agent reports an unknown phase {name:?}: treated as running");
            }
            _ => {}
        }
        Applied::default()
    }

    /// The one way to note a problem: logged with the cycle id, and kept in the record's
    /// `errors` up to [`MAX_ERRORS`] lines.
    fn note(&mut self, level: Level, message: String) -> Applied {
        let cycle = self.record.cycle_id.as_str();
        match level {
            Level::Warn => tracing::warn!(cycle, "{message}"),
            Level::Error => tracing::error!(cycle, "{message}"),
        }
        if self.record.errors.len() < MAX_ERRORS {
            self.record.errors.push(message);
        }
        Applied::default()
    }

    fn stack_record(&mut self, name: &str) -> Option<&mut StackRecord> {
        self.record.stacks.iter_mut().find(|r| r.name == name)
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
mod tests;
