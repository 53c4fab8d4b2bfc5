//! One cycle's (or crash recovery's) state — its phase, the marker it keeps on disk, its
//! record. Only the driver holds a [`Cycle`]: the steps' tasks send it [`Progress`] over a
//! channel, and [`Cycle::apply`] is the one function that changes a cycle, and so the one
//! that decides what the marker on disk says.
//!
//! This file holds the state and the dispatch: `apply`'s one arm per fact, the phase the
//! marker follows ([`Cycle::enter`]), and the few helpers every part shares. Each fact is
//! applied by the part that owns it, all of them `impl Cycle` over the same private fields:
//!
//! - `quiescing`: the stops (the containers recorded before a stop call, its report, what
//!   came back, a failed stop);
//! - `backing_up`: the backup (its id in the marker, the status answers, the check at the
//!   snapshot, what the agent told a recovery);
//! - `resuming`: the starts (failed attempts, a stack back or left alone, the stranded ones);
//! - `hooks`: the per-service policy's hooks and when a stack may leave the marker;
//! - `plan`: what the steps are told (the re-check before `POST /backup`, the resume's plan);
//! - `record`: the record a cycle starts with, and the verdicts at its end.

use crate::capture::{Backup, Evidence};
use crate::machine::Phase;
use crate::policy::Policies;
use crate::progress::{Applied, Level, OnDisk, Progress};
use felhom_agentapi::BackupPhase;
use felhom_marker::{
    CycleRecord, MarkedContainer, MarkedStack, Marker, Outcome, StackRecord, StrandedStack,
};
use felhom_stacks::ContainerRef;
use std::collections::{BTreeMap, BTreeSet};

mod backing_up;
mod hooks;
mod plan;
mod quiescing;
mod record;
mod resuming;

pub(crate) use hooks::Running;
pub(crate) use plan::Recheck;

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
    /// Stranded stacks the stranded list could not take: the marker keeps them.
    unkept_stranded: Vec<String>,
    /// What the engine said of each stack, for its verdict.
    evidence: BTreeMap<String, Evidence>,
    /// What the agent said of the backup, for the verdicts.
    backup: Backup,
    /// The status polls: the phase last seen, and whether the last answer was held.
    poll: PollState,
    /// Ignored optional fields of a status answer were warned about (warn once).
    warned_ignored: bool,
    /// Each stack's per-service policy (issue 23); empty for a recovery, which has the
    /// marker's account of the hooks only.
    policies: Policies,
    /// Services kept running whose `pre-snapshot` hook failed with `on-hook-error: stop`:
    /// they are stopped with their stack, (stack, service).
    fell_back: BTreeSet<(String, String)>,
    /// Hooks that began and have not ended yet.
    running: Vec<Running>,
    /// Stacks whose resume is over (started, or nothing to start): they leave the marker once
    /// no `post-resume` hook of theirs is due.
    resumed: BTreeSet<String>,
}

/// Where the status polls of a cycle are.
#[derive(Debug, Clone)]
pub(crate) struct PollState {
    /// The phase of the last answer (`running` after `POST /backup` answered).
    pub(crate) last_phase: BackupPhase,
    /// The last answer came with a new phase, or was held by an agent with the long-poll
    /// extension: the next poll needs no pause.
    pub(crate) held: bool,
}

/// A container as the marker records it.
pub(crate) fn marked(c: &ContainerRef) -> MarkedContainer {
    MarkedContainer {
        id: c.id.clone(),
        name: c.name.clone(),
        service: c.service.clone(),
    }
}

/// A container of the marker, as the stacks calls name it.
pub(crate) fn container(c: &MarkedContainer) -> ContainerRef {
    ContainerRef {
        id: c.id.clone(),
        name: c.name.clone(),
        service: c.service.clone(),
    }
}

impl Cycle {
    /// A new cycle over `marker` (not yet on disk: see [`Progress::Began`]), whose stacks
    /// have no labels.
    #[cfg(test)]
    pub(crate) fn new(marker: Marker) -> Self {
        Cycle::with(marker, Outcome::Failed, false, Policies::default())
    }

    /// A new cycle over `marker` (not yet on disk: see [`Progress::Began`]), its stacks'
    /// services quiesced as `policies` say.
    pub(crate) fn with_policies(marker: Marker, policies: Policies) -> Self {
        Cycle::with(marker, Outcome::Failed, false, policies)
    }

    /// The recovery of `marker`, left on disk by a controller that died.
    pub(crate) fn recovering(marker: Marker) -> Self {
        Cycle::with(marker, Outcome::Recovered, true, Policies::default())
    }

    fn with(marker: Marker, outcome: Outcome, recovering: bool, policies: Policies) -> Self {
        Cycle {
            phase: Phase::Quiescing,
            record: record::new_record(&marker, outcome, &policies),
            marker: Some(marker),
            recovering,
            warned_unknown: false,
            newly_stranded: Vec::new(),
            unkept_stranded: Vec::new(),
            evidence: BTreeMap::new(),
            backup: Backup::default(),
            poll: PollState {
                last_phase: BackupPhase::Running,
                held: false,
            },
            warned_ignored: false,
            policies,
            fell_back: BTreeSet::new(),
            running: Vec::new(),
            resumed: BTreeSet::new(),
        }
    }

    /// The stacks the marker names: down, or about to be stopped.
    pub(crate) fn marked(&self) -> Vec<MarkedStack> {
        self.marker
            .as_ref()
            .map(|m| m.stacks.clone())
            .unwrap_or_default()
    }

    /// Where the status polls are.
    pub(crate) fn poll(&self) -> &PollState {
        &self.poll
    }

    /// Whether a marker is kept (it is removed once every stack runs or is stranded).
    pub(crate) fn has_marker(&self) -> bool {
        self.marker.is_some()
    }

    /// Applies one fact: the cycle changes, and so may the marker on disk. One arm per fact;
    /// each is applied by the part of `cycle` that owns it.
    pub(crate) fn apply(&mut self, progress: Progress) -> Applied {
        match progress {
            Progress::Began => self.on_disk_now(),
            Progress::Entered(phase) => self.enter(phase),
            Progress::Recording {
                stack, containers, ..
            } => self.recording(&stack, &containers),
            Progress::StopBegan { stack, at } => self.stop_began(&stack, at),
            Progress::Stopped { stack, report, at } => self.stopped(&stack, &report, at),
            Progress::CameBack { stack, containers } => self.came_back(&stack, &containers),
            Progress::StopFailed {
                stack,
                error,
                began,
            } => self.stop_failed(&stack, &error, began),
            Progress::BackupStarted { id, adopted } => self.backup_started(id, adopted),
            Progress::StatusSeen {
                observed,
                status,
                ignored,
                held,
            } => self.status_seen(observed, &status, &ignored, held),
            Progress::Checked { stack, check } => self.checked(&stack, check),
            Progress::StartFailed {
                stack,
                attempt,
                attempts,
                error,
            } => self.start_failed(&stack, attempt, attempts, &error),
            Progress::StackBack { stack, attempt, at } => self.back(stack, attempt, at),
            Progress::LeftAlone { stack } => self.left_alone(stack),
            Progress::Stranded(stack) => self.stranded(stack),
            Progress::StrandedKept(names) => self.stranded_kept(&names),
            Progress::StrandedNotKept(names) => self.stranded_not_kept(names),
            Progress::AgentSaid { phase, snapshot_at } => self.agent_said(phase, snapshot_at),
            Progress::HookAbout {
                stack,
                service,
                hook,
                container,
                program,
                ..
            } => self.hook_about(&stack, &service, hook, &container, program),
            Progress::HookEnded {
                stack,
                service,
                container,
                run,
            } => self.hook_ended(&stack, &service, &container, run),
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

    fn evidence_of(&mut self, stack: &str) -> &mut Evidence {
        self.evidence.entry(stack.to_owned()).or_default()
    }

    /// The marker follows the phase: it records each phase in which stacks are not yet back,
    /// and is removed once they run — unless stacks still wait for the engine (it names them,
    /// and so does the record).
    fn enter(&mut self, phase: Phase) -> Applied {
        if matches!(phase, Phase::Resuming { .. }) {
            // The hooks of the down half that did not end were cut short with it (their
            // calls dropped: the engine's call kills what it ran).
            self.cut_short();
        }
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
                // What the marker keeps besides the stranded stacks the list could not take.
                let waiting: Vec<String> = marker
                    .stacks
                    .iter()
                    .map(|s| s.name.clone())
                    .filter(|name| !self.unkept_stranded.contains(name))
                    .collect();
                if waiting.is_empty() {
                    return Applied::default();
                }
                let message = format!(
                    "the docker engine could not be reached: the marker is kept for {}",
                    waiting.join(", ")
                );
                self.record.waiting_for_engine = waiting;
                self.note(Level::Error, message)
            }
        }
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

#[cfg(test)]
mod tests;
