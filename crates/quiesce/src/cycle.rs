//! One cycle's (or crash recovery's) state — its phase, the marker it keeps on disk, its
//! record. Only the driver holds a [`Cycle`]: the steps' tasks send it [`Progress`] over a
//! channel, and [`Cycle::apply`] is the one function that changes a cycle, and so the one
//! that decides what the marker on disk says.

use crate::capture::{Backup, Evidence};
use crate::machine::{Observed, Phase};
use crate::policy::Policies;
use crate::progress::{Applied, Level, OnDisk, Progress, Said};
use crate::resume::{StackPlan, Wanted};
use chrono::{DateTime, Utc};
use felhom_agentapi::{BackupPhase, BackupStatus};
use felhom_marker::{
    CycleRecord, MarkedContainer, MarkedStack, Marker, Outcome, ServiceMode, ServiceRecord,
    StackRecord, StrandedStack,
};
use felhom_stacks::{ContainerRef, StopReport};
use std::collections::{BTreeMap, BTreeSet};

mod hooks;
pub(crate) use hooks::Running;

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

/// Which stacks' starts are launched first. Every start is launched at once, so the order is
/// the order in which they queue for the slots: it decides who waits when there are more
/// stacks than slots. No stack depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum StartOrder {
    /// The stack whose stop began first has been down longest: it is started first. Every
    /// stack's downtime is then about the same, and the longest is the least it can be.
    DownLongestFirst,
    /// The stack stopped last is started first (as a stack's own containers are: the last
    /// stopped, its dependencies, start first).
    StoppedLastFirst,
}

/// The order of the starts: measured both ways, see docs/decisions.md ("Start order").
pub(crate) const START_ORDER: StartOrder = StartOrder::DownLongestFirst;

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
            record: new_record(&marker, outcome, &policies),
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

    /// The stacks to look at again before `POST /backup`: those whose stop ended, with the
    /// containers it stopped, since when they are down, and the services kept running (whose
    /// containers are not the stop's).
    pub(crate) fn to_recheck(&self) -> Vec<Recheck> {
        self.marked()
            .into_iter()
            .filter_map(|s| {
                let evidence = self.evidence.get(&s.name)?;
                let since = evidence.down_since().filter(|_| evidence.stop_ended())?;
                let containers = s.containers.iter().map(container).collect();
                Some(Recheck {
                    keep: self.keep(&s.name),
                    stack: s.name,
                    containers,
                    since,
                })
            })
            .collect()
    }

    /// How the stacks of the marker are brought back, in the order their starts are launched
    /// (see [`START_ORDER`]).
    ///
    /// - A stack whose stop never began is left alone: nothing of ours stopped it.
    /// - A stack whose every stop call answered is started as its stop left it; one whose
    ///   stop was cut short (the bound, a cancellation, a panic, a crash) or failed may still
    ///   be shutting down: its start waits for that, never signalling it again.
    /// - A recovered stack whose marker names no container (written before container ids)
    ///   is started by its services.
    /// - Once the agent reported the snapshot, each stopped stack is checked first.
    pub(crate) fn plan(&self) -> Vec<StackPlan> {
        let mut plans: Vec<StackPlan> = self
            .marked()
            .into_iter()
            .map(|stack| {
                let evidence = self.evidence.get(&stack.name);
                let containers: Vec<ContainerRef> =
                    stack.containers.iter().map(container).collect();
                // A stack with nothing of its own to stop (its services kept running, or
                // started again already: only its hooks are left) names no service.
                let by_services = stack.containers.is_empty() && !stack.services.is_empty();
                let start = if self.recovering && by_services {
                    // A marker written before container ids (or whose ids could not be
                    // salvaged): it does not say whether the stop began, nor what it stopped.
                    Some(Wanted::Services(stack.services.clone()))
                } else if !stack.stop_began {
                    None
                } else {
                    let ended = !self.recovering && evidence.is_some_and(Evidence::stop_ended);
                    Some(Wanted::Containers {
                        containers: containers.clone(),
                        in_flight: !ended,
                    })
                };
                let check = evidence
                    .and_then(Evidence::down_since)
                    .filter(|_| self.backup.captured && !self.recovering)
                    .map(|since| (containers, since));
                let post_resume = self.post_resume_plan(&stack, start.is_some());
                StackPlan {
                    stop_order: stack.stop_order,
                    stack,
                    start,
                    check,
                    post_resume,
                }
            })
            .collect();
        // When each stack's stop began; one never stopped has nothing to start: last.
        let began = |plan: &StackPlan| {
            self.record
                .stacks
                .iter()
                .find(|r| r.name == plan.stack.name)
                .and_then(|r| r.stop_started_at)
        };
        // Stable: stacks whose stops began at the same moment keep the marker's order.
        plans.sort_by(|a, b| match (began(a), began(b)) {
            (Some(a), Some(b)) => match START_ORDER {
                StartOrder::DownLongestFirst => a.cmp(&b),
                StartOrder::StoppedLastFirst => b.cmp(&a),
            },
            (a, b) => b.is_some().cmp(&a.is_some()),
        });
        plans
    }

    /// Applies one fact: the cycle changes, and so may the marker on disk.
    pub(crate) fn apply(&mut self, progress: Progress) -> Applied {
        match progress {
            Progress::Began => self.on_disk_now(),
            Progress::Entered(phase) => self.enter(phase),
            Progress::Recording {
                stack, containers, ..
            } => self.recording(&stack, &containers),
            Progress::StopBegan { stack, at } => {
                self.evidence_of(&stack).stop_began(at);
                if let Some(rec) = self.stack_record(&stack) {
                    rec.stop_started_at.get_or_insert(at);
                }
                Applied::default()
            }
            Progress::Stopped { stack, report, at } => self.stopped(&stack, &report, at),
            Progress::CameBack { stack, containers } => {
                self.evidence_of(&stack).came_back(&containers);
                let names: Vec<&str> = containers.iter().map(|(c, _)| c.name.as_str()).collect();
                let message = format!(
                    "stack {stack}: {} ran again before the backup began: stopped again",
                    names.join(", ")
                );
                self.note(Level::Warn, message)
            }
            Progress::StopFailed {
                stack,
                error,
                began,
            } => self.stop_failed(&stack, &error, began),
            Progress::BackupStarted { id, adopted } => {
                self.record.backup_id = Some(id.clone());
                self.backup.adopted = adopted;
                self.change_marker(|m| m.backup_id = Some(id.clone()));
                self.quiesce_the_kept_up();
                Applied {
                    say: Some(Said::BackupStarted { id, adopted }),
                    ..self.on_disk_now()
                }
            }
            Progress::StatusSeen {
                observed,
                status,
                ignored,
                held,
            } => {
                self.poll = PollState {
                    last_phase: status.phase.clone(),
                    held,
                };
                if !ignored.is_empty() && !self.warned_ignored {
                    self.warned_ignored = true;
                    let fields: Vec<String> = ignored.iter().map(ToString::to_string).collect();
                    tracing::warn!(
                        cycle = %self.record.cycle_id,
                        "the agent's status answers hold optional fields that do not parse; ignored (only the phase decides): {}",
                        fields.join("; ")
                    );
                }
                self.observed(observed, &status)
            }
            Progress::Checked { stack, mut check } => {
                // The containers of services kept running are not the stop's: they run.
                if let Ok(check) = &mut check {
                    let keep = self.keep(&stack);
                    check.appeared.retain(|c| !keep.contains(&c.service));
                    check.ran.retain(|(c, _)| !keep.contains(&c.service));
                }
                if let Err(why) = &check {
                    let message = format!(
                        "stack {stack}: whether it stayed down until the snapshot cannot be told: {why}"
                    );
                    self.note(Level::Warn, message);
                }
                self.evidence_of(&stack).checked(check);
                Applied::default()
            }
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
            Progress::LeftAlone { stack } => {
                let stopped_nothing = self
                    .marked()
                    .iter()
                    .any(|s| s.name == stack && !s.services.is_empty());
                if stopped_nothing {
                    tracing::info!(stack = %stack, "its stop never began: left as it is");
                }
                self.resumed.insert(stack.clone());
                self.settle(&stack);
                self.on_disk_now()
            }
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
            Progress::StrandedNotKept(names) => {
                let message = format!(
                    "the stranded list cannot take {}: the marker keeps them, and they are tried again from it later",
                    names.join(", ")
                );
                self.unkept_stranded.extend(names);
                self.note(Level::Error, message)
            }
            Progress::AgentSaid { phase, snapshot_at } => {
                self.record.agent_phase = Some(phase);
                self.record.snapshot_at = snapshot_at.or(self.record.snapshot_at);
                Applied::default()
            }
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

    /// Each stack's and each service's verdict into the record (once the cycle is over).
    /// A service the cycle stopped (or meant to) is judged from its stack's evidence, one
    /// kept running from its `pre-snapshot` hook; the stack's verdict is the first of
    /// docs/labels.md's order that any of its services has (or its stop's, where it had
    /// stopped containers of a service it no longer lists).
    pub(crate) fn judge(&mut self) {
        let none = Evidence::default();
        for rec in &mut self.record.stacks {
            let evidence = self.evidence.get(&rec.name).unwrap_or(&none);
            let (stop, facts) = evidence.verdict(&self.backup, self.recovering);
            let mut stops = rec.by_service.is_empty();
            for service in &mut rec.by_service {
                let judged_by_stop = service.mode == ServiceMode::Stop || service.stopped;
                stops |= judged_by_stop;
                service.capture = if self.recovering {
                    felhom_marker::Capture::Unknown
                } else if judged_by_stop {
                    evidence.verdict_of(&service.service, &self.backup)
                } else {
                    hooks::kept_up_verdict(service)
                };
            }
            let services = rec.by_service.iter().map(|s| s.capture);
            rec.capture = felhom_marker::Capture::first_of(services.chain(stops.then_some(stop)))
                .unwrap_or(stop);
            rec.facts = facts;
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

    /// `containers` of `stack` are about to be stopped: recorded, and its stop marked as
    /// begun. Its first recording replaces what the listing said (what runs now is what
    /// the stop stops); later ones add to it.
    fn recording(&mut self, stack: &str, containers: &[ContainerRef]) -> Applied {
        let mut changed = false;
        self.change_marker(|m| {
            let Some(s) = m.stacks.iter_mut().find(|s| s.name == stack) else {
                return;
            };
            let mut now: Vec<MarkedContainer> = if s.stop_began {
                s.containers.clone()
            } else {
                Vec::new()
            };
            for c in containers {
                if !now.iter().any(|k| k.id == c.id) {
                    now.push(marked(c));
                }
            }
            let mut services: Vec<String> = now.iter().map(|c| c.service.clone()).collect();
            services.sort();
            services.dedup();
            if !s.stop_began || now != s.containers {
                s.stop_began = true;
                s.containers = now;
                s.services = services;
                changed = true;
            }
        });
        if changed {
            if let Some(services) = self
                .marker
                .as_ref()
                .and_then(|m| m.stacks.iter().find(|s| s.name == stack))
                .map(|s| s.services.clone())
            {
                self.stopping(stack, &services);
                if let Some(rec) = self.stack_record(stack) {
                    rec.services = services;
                }
            }
            self.on_disk_now()
        } else {
            Applied::default()
        }
    }

    /// A stop call of `stack` answered: its evidence, its times; a container that had
    /// already exited when its first stop came (on its own, or by someone else) is not ours
    /// to start again, nor is one that vanished.
    fn stopped(&mut self, stack: &str, report: &StopReport, at: DateTime<Utc>) -> Applied {
        let evidence = self.evidence_of(stack);
        evidence.stopped(report, at);
        let not_ours: Vec<String> = report
            .containers
            .iter()
            .filter(|s| !s.was_running && !evidence.was_stopped(&s.container.id))
            .map(|s| s.container.id.clone())
            .chain(report.vanished.iter().map(|c| c.id.clone()))
            .collect();
        tracing::info!(stack = %stack, "stack stopped");
        if let Some(rec) = self.stack_record(stack) {
            rec.stopped_at = Some(at);
        }
        if not_ours.is_empty() {
            return Applied::default();
        }
        self.change_marker(|m| {
            if let Some(s) = m.stacks.iter_mut().find(|s| s.name == stack) {
                s.containers.retain(|c| !not_ours.contains(&c.id));
            }
        });
        self.on_disk_now()
    }

    /// A stop of `stack` failed. If no stop call of it began, nothing of it was stopped: the
    /// marker no longer says its stop began (it is left alone, not started).
    fn stop_failed(&mut self, stack: &str, error: &str, began: bool) -> Applied {
        let evidence = self.evidence_of(stack);
        evidence.stop_failed(began);
        let not_stopped = evidence.not_stopped();
        if !not_stopped {
            return self.note(Level::Error, format!("stopping {stack}: {error}"));
        }
        self.note(
            Level::Error,
            format!("stopping {stack}: {error}: it was not stopped"),
        );
        let mut changed = false;
        self.change_marker(|m| {
            if let Some(s) = m
                .stacks
                .iter_mut()
                .find(|s| s.name == stack && s.stop_began)
            {
                s.stop_began = false;
                changed = true;
            }
        });
        if changed {
            self.on_disk_now()
        } else {
            Applied::default()
        }
    }

    /// Stack `stack` runs again: it has nothing left to start (it leaves the marker once no
    /// `post-resume` hook of it is due), and its downtime is recorded.
    fn back(&mut self, stack: String, attempt: u32, at: DateTime<Utc>) -> Applied {
        self.change_marker(|m| {
            if let Some(s) = m.stacks.iter_mut().find(|s| s.name == stack) {
                // What a recovery finds of it now: nothing to start, its hooks' progress.
                s.containers = Vec::new();
                s.services = Vec::new();
                s.stop_began = false;
                s.restart_attempts = 0;
            }
        });
        self.resumed.insert(stack.clone());
        self.settle(&stack);
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
        if matches!(observed, Observed::Snapshotted | Observed::Done) {
            self.backup.captured = true;
        }
        if status.started_at.is_some() && observed != Observed::Lost {
            self.backup.started_at = status.started_at;
        }
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

/// The stacks to look at again before `POST /backup` ([`Cycle::to_recheck`]).
#[derive(Debug, Clone)]
pub(crate) struct Recheck {
    pub(crate) stack: String,
    /// The containers its stop stopped.
    pub(crate) containers: Vec<ContainerRef>,
    /// Since when they are down.
    pub(crate) since: DateTime<Utc>,
    /// Its services kept running: their containers are not the stop's.
    pub(crate) keep: BTreeSet<String>,
}

/// Each service of a marked stack as a recovery's record knows it: the services its stop
/// stopped, and those with hooks.
fn services_of(stack: &MarkedStack) -> Vec<ServiceRecord> {
    let mut services: Vec<ServiceRecord> = stack
        .services
        .iter()
        .map(|s| ServiceRecord {
            service: s.clone(),
            mode: ServiceMode::Stop,
            stopped: stack.stop_began,
            capture: felhom_marker::Capture::Unknown,
            hooks: Vec::new(),
        })
        .collect();
    for h in &stack.hooks {
        if !services.iter().any(|s| s.service == h.service) {
            services.push(ServiceRecord {
                service: h.service.clone(),
                mode: h.mode,
                stopped: !h.kept_up && stack.stop_began,
                capture: felhom_marker::Capture::Unknown,
                hooks: Vec::new(),
            });
        }
    }
    services.sort_by(|a, b| a.service.cmp(&b.service));
    services
}

fn new_record(marker: &Marker, outcome: Outcome, policies: &Policies) -> CycleRecord {
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
                capture: felhom_marker::Capture::Unknown,
                facts: Vec::new(),
                stop_order: s.stop_order,
                by_service: policies.services(&s.name).unwrap_or_else(|| services_of(s)),
                label_errors: policies.label_errors(&s.name),
            })
            .collect(),
        stranded: Vec::new(),
        waiting_for_engine: Vec::new(),
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
