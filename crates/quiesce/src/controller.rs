//! The driver: runs cycles, recovery and the loop against the three traits.
//!
//! A cycle is split in two halves on purpose. The *down half* (stop the stacks, start the
//! backup, wait for it) runs in its own task; the supervisor around it owns the `max_quiesce`
//! deadline, the cancellation and the task's panic, and aborts the task when any of them fires.
//! So the bound holds even when a call inside the down half never returns — an agent that never
//! answers, a `docker compose stop` that hangs — because it is enforced outside that code path.
//! The *up half* (start the stacks again, clear the marker) runs in the supervisor itself and is
//! never aborted; each start call has its own bound and its own task, so a hung or panicking
//! start is a failed attempt, not a stuck resume.

use crate::config::CycleConfig;
use crate::error::CycleError;
use crate::lock::CycleLock;
use crate::machine::{step, Event, Observed, Phase, Step};
use chrono::{DateTime, Utc};
use felhom_agentapi::{AgentApi, BackupPhase, BackupStatus};
use felhom_marker::{
    CycleRecord, HistoryStore, MarkedStack, Marker, MarkerPhase, MarkerStore, Outcome, StackRecord,
};
use felhom_stacks::Stacks;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

/// The collaborators of the controller, as trait objects.
#[derive(Clone)]
pub struct Parts {
    /// The agent; `None` when the guest is not provisioned (recovery still works).
    pub agent: Option<Arc<dyn AgentApi>>,
    /// The stacks.
    pub stacks: Arc<dyn Stacks>,
    /// The marker.
    pub marker: Arc<dyn MarkerStore>,
    /// The cycle history.
    pub history: Arc<dyn HistoryStore>,
    /// The single-flight lock.
    pub lock: Arc<dyn CycleLock>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("agent", &self.agent.is_some())
            .finish_non_exhaustive()
    }
}

/// What the controller is doing now, for `status` and metrics.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The phase of the running cycle, if one runs.
    pub phase: Option<Phase>,
    /// The last finished cycle.
    pub last: Option<CycleRecord>,
    /// Cycles finished by this process, by outcome.
    pub cycles: Vec<(Outcome, u64)>,
    /// Stacks reported stranded by this process, total.
    pub stranded_total: u64,
    /// When the loop will next ask whether a backup is due (wall clock), when it waits.
    pub next_check_at: Option<DateTime<Utc>>,
}

/// Runs quiesce cycles. Cheap to clone; clones share their live status.
#[derive(Debug, Clone)]
pub struct Controller {
    parts: Parts,
    config: CycleConfig,
    live: Arc<Mutex<Live>>,
}

/// One cycle's state, shared by the down half's task and the supervisor.
struct Cycle {
    phase: Phase,
    marker: Marker,
    record: CycleRecord,
    /// Whether the marker was cleared already (after the resume).
    cleared: bool,
    /// Whether an unknown phase was warned about (warn once).
    warned_unknown: bool,
    /// Stacks to stop again before they are started: those whose stop began but was not seen
    /// to end (see [`settle_first`]).
    settle: BTreeSet<String>,
}

type Shared = Arc<Mutex<Cycle>>;

fn lock(shared: &Mutex<Cycle>) -> MutexGuard<'_, Cycle> {
    // A panic while holding the lock cannot leave the cycle half-updated in a way that matters
    // more than resuming: take the state as it is.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Controller {
    /// A controller over `parts`.
    pub fn new(parts: Parts, config: CycleConfig) -> Self {
        Controller {
            parts,
            config,
            live: Arc::new(Mutex::new(Live::default())),
        }
    }

    /// A snapshot of what the controller is doing.
    pub fn live(&self) -> Live {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_live(&self, f: impl FnOnce(&mut Live)) {
        f(&mut self.live.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Runs one cycle now: takes the lock, writes the marker, stops the running app stacks,
    /// backs up, resumes. `Err` means nothing was stopped; once anything may have been stopped
    /// the cycle always resumes and returns its record, whatever its outcome.
    pub async fn run_cycle(&self, cancel: &CancellationToken) -> Result<CycleRecord, CycleError> {
        let agent = self.parts.agent.clone().ok_or(CycleError::NoAgent)?;
        let _guard = self.parts.lock.acquire().map_err(CycleError::Busy)?;
        if let Some(marker) = self.parts.marker.load()? {
            return Err(CycleError::MarkerPresent {
                cycle_id: marker.cycle_id,
            });
        }
        let running = self.parts.stacks.running_app_stacks().await?;
        let started_at = Utc::now();
        let cycle_id = format!(
            "{}-{}",
            started_at.format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        );
        let stacks: Vec<MarkedStack> = running
            .into_iter()
            .map(|s| MarkedStack {
                name: s.name,
                services: s.services,
                restart_attempts: 0,
            })
            .collect();
        let marker = Marker::new(cycle_id.clone(), started_at, stacks);
        // SPEC §2 rule 1: the marker is on disk before the first stop. A failure here is an
        // error with nothing stopped.
        self.parts.marker.save(&marker)?;
        tracing::info!(
            cycle = %cycle_id,
            stacks = ?marker.stacks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "cycle started: marker written"
        );
        let record = new_record(&marker, Outcome::Failed);
        let shared: Shared = Arc::new(Mutex::new(Cycle {
            phase: Phase::Quiescing,
            marker,
            record,
            cleared: false,
            warned_unknown: false,
            settle: BTreeSet::new(),
        }));
        self.set_live(|l| l.phase = Some(Phase::Quiescing));
        let record = self.supervise(agent, shared, cancel).await;
        Ok(record)
    }

    /// The supervisor: runs the down half in its own task, bounded, then the up half.
    async fn supervise(
        &self,
        agent: Arc<dyn AgentApi>,
        shared: Shared,
        cancel: &CancellationToken,
    ) -> CycleRecord {
        let deadline = Instant::now() + self.config.max_quiesce;
        let mut down = tokio::spawn(down_half(
            agent.clone(),
            self.parts.clone(),
            self.config.clone(),
            shared.clone(),
            self.live.clone(),
        ));
        // `Some((event, why, still_running))` when something other than the down half's own
        // end finished the wait.
        let interrupted = tokio::select! {
            joined = &mut down => match joined {
                Ok(()) => None,
                Err(e) => Some((Event::Panicked, format!("the cycle's task failed: {e}"), false)),
            },
            () = sleep_until(deadline) => Some((
                Event::Bound,
                format!("max_quiesce ({}) reached: resuming", humanize(self.config.max_quiesce)),
                true,
            )),
            () = cancel.cancelled() => Some((Event::Cancelled, "cancelled: resuming".to_owned(), true)),
        };
        if let Some((event, why, still_running)) = interrupted {
            if still_running {
                down.abort();
                // Let the aborted task unwind (its child processes are killed on drop), but
                // never wait for it long: the resume matters more.
                let _ = timeout(Duration::from_secs(5), &mut down).await;
            }
            let mut cycle = lock(&shared);
            tracing::warn!(cycle = %cycle.record.cycle_id, phase = ?cycle.phase, "{why}");
            cycle.record.errors.push(why);
            cycle.phase = step(cycle.phase, event, self.config.resume_on_snapshot).0;
        }
        {
            // Whatever the down half returned, stacks that may be down are resumed.
            let mut cycle = lock(&shared);
            if cycle.phase.stacks_may_be_down() {
                let why = format!("cycle ended in {:?}: resuming", cycle.phase);
                cycle.record.errors.push(why);
                cycle.phase = step(cycle.phase, Event::Panicked, self.config.resume_on_snapshot).0;
            }
        }
        self.set_live(|l| l.phase = Some(lock(&shared).phase));
        {
            let mut cycle = lock(&shared);
            cycle.settle = settle_first(&cycle.record);
        }

        // The up half.
        self.resume(&shared).await;
        let (phase, next) = {
            let mut cycle = lock(&shared);
            let (phase, next) = step(cycle.phase, Event::Resumed, self.config.resume_on_snapshot);
            cycle.phase = phase;
            (phase, next)
        };
        self.set_live(|l| l.phase = Some(phase));
        if next == Step::Poll {
            self.await_outcome(&agent, &shared, cancel).await;
        }
        self.finish(&shared)
    }

    /// After an early resume: polls for the backup's outcome, bounded by `max_quiesce` again
    /// and by cancellation. The stacks already run; only the record waits.
    async fn await_outcome(
        &self,
        agent: &Arc<dyn AgentApi>,
        shared: &Shared,
        cancel: &CancellationToken,
    ) {
        let deadline = Instant::now() + self.config.max_quiesce;
        let mut delay = self
            .config
            .status_poll_interval
            .min(Duration::from_millis(500));
        loop {
            let event = tokio::select! {
                () = sleep(delay) => poll_status(agent, shared, &mut delay, 2.0, &self.config).await,
                () = sleep_until(deadline) => {
                    lock(shared).record.errors.push(
                        "the backup's outcome did not arrive within max_quiesce after the early resume".into());
                    Event::Bound
                }
                () = cancel.cancelled() => Event::Cancelled,
            };
            let mut cycle = lock(shared);
            let (phase, next) = step(cycle.phase, event, self.config.resume_on_snapshot);
            cycle.phase = phase;
            if next != Step::Poll {
                return;
            }
        }
    }

    /// Starts every stack left in the marker again, with retries; clears the marker.
    async fn resume(&self, shared: &Shared) {
        let (cycle_id, stacks) = {
            let mut cycle = lock(shared);
            cycle.marker.phase = MarkerPhase::Resuming;
            save_marker(&*self.parts.marker, &mut cycle);
            (cycle.record.cycle_id.clone(), cycle.marker.stacks.clone())
        };
        tracing::info!(cycle = %cycle_id, stacks = stacks.len(), "resuming stacks");
        let parallelism = self.config.parallelism.max(1);
        // Unordered: a slot is given to the next stack (in name order) as soon as any start
        // ends, not when the oldest one does; with parallelism 1 this is the strict order.
        let mut results: Vec<(usize, String, bool)> =
            futures::stream::iter(stacks.into_iter().enumerate())
                .map(|(index, stack)| async move {
                    let (name, ok) = self.restart_one(shared, stack).await;
                    (index, name, ok)
                })
                .buffer_unordered(parallelism)
                .collect()
                .await;
        // The record lists stranded stacks in the marker's order, whatever order they ended in.
        results.sort_unstable_by_key(|(index, _, _)| *index);
        let mut cycle = lock(shared);
        for (_, name, ok) in results {
            if !ok {
                tracing::error!(cycle = %cycle_id, stack = %name, "stack STRANDED: it could not be started again");
                cycle.record.stranded.push(name);
            }
        }
        // SPEC §2 rule 6: stranded stacks are reported, and the marker is released so that
        // later backups are not blocked.
        match self.parts.marker.clear() {
            Ok(()) => cycle.cleared = true,
            Err(e) => {
                tracing::error!(cycle = %cycle_id, "clearing the marker: {e}");
                cycle
                    .record
                    .errors
                    .push(format!("clearing the marker: {e}"));
            }
        }
        let stranded = cycle.record.stranded.len() as u64;
        drop(cycle);
        self.set_live(|l| l.stranded_total += stranded);
    }

    /// Starts one stack, retrying with backoff; keeps the marker right after each attempt.
    /// Returns the stack's name and whether it runs.
    async fn restart_one(&self, shared: &Shared, stack: MarkedStack) -> (String, bool) {
        let settle = lock(shared).settle.contains(&stack.name);
        if settle {
            self.settle(shared, &stack.name).await;
        }
        let mut backoff = self.config.restart_backoff;
        let attempts = self.config.restart_attempts.max(1);
        for attempt in 1..=attempts {
            let stacks = self.parts.stacks.clone();
            let (name, services) = (stack.name.clone(), stack.services.clone());
            let result = self
                .bounded("start", async move { stacks.start(&name, &services).await })
                .await;
            if self.note_start(shared, &stack.name, attempt, attempts, result) {
                return (stack.name, true);
            }
            if attempt < attempts {
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
        (stack.name, false)
    }

    /// Runs one stacks call of the up half in its own task, bounded by `start_call_timeout`:
    /// a call that hangs or panics is a failed call, never a stuck or dead resume.
    async fn bounded(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<(), felhom_stacks::StacksError>> + Send + 'static,
    ) -> Result<(), String> {
        match timeout(self.config.start_call_timeout, tokio::spawn(call)).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(join)) => Err(format!("the {what} task failed: {join}")),
            Err(_) => Err(format!(
                "{what} did not return within {}",
                humanize(self.config.start_call_timeout)
            )),
        }
    }

    /// Stops `name` again and waits for it, bounded. The engine goes on shutting a container
    /// down once it has sent SIGTERM, whatever became of the command that asked, and such a
    /// container still shows as running: a `start` would do nothing, the wait would see it
    /// running, and a moment later it would exit — stranded, with the marker cleared. A stop
    /// waits for that shutdown to end, so the start that follows really starts the stack.
    async fn settle(&self, shared: &Shared, name: &str) {
        tracing::info!(stack = %name, "its stop may still be under way: stopping it again before the start");
        let stacks = self.parts.stacks.clone();
        let owned = name.to_owned();
        let result = self
            .bounded("stop", async move { stacks.stop(&owned).await.map(drop) })
            .await;
        if let Err(problem) = result {
            // Not a reason to keep the stack down: its start follows all the same.
            let msg = format!("settling {name} before its start: {problem}");
            tracing::warn!("{msg}");
            lock(shared).record.errors.push(msg);
        }
    }

    /// Records the result of one start attempt in the marker and the record; `true` when the
    /// stack runs.
    fn note_start(
        &self,
        shared: &Shared,
        name: &str,
        attempt: u32,
        attempts: u32,
        result: Result<(), String>,
    ) -> bool {
        let mut cycle = lock(shared);
        match result {
            Ok(()) => {
                let now = Utc::now();
                cycle.marker.stacks.retain(|s| s.name != name);
                save_marker(&*self.parts.marker, &mut cycle);
                if let Some(rec) = cycle.record.stacks.iter_mut().find(|r| r.name == name) {
                    rec.started_at = Some(now);
                    rec.downtime_ms = rec
                        .stop_started_at
                        .map(|t| (now - t).num_milliseconds().max(0) as u64);
                }
                tracing::info!(stack = %name, attempt, "stack runs again");
                return true;
            }
            Err(e) => {
                let msg = format!("starting {} (attempt {attempt}/{attempts}): {e}", name);
                tracing::warn!("{msg}");
                cycle.record.errors.push(msg);
                if let Some(s) = cycle.marker.stacks.iter_mut().find(|s| s.name == name) {
                    s.restart_attempts += 1;
                }
                save_marker(&*self.parts.marker, &mut cycle);
            }
        }
        false
    }

    fn finish(&self, shared: &Shared) -> CycleRecord {
        let record = {
            let mut cycle = lock(shared);
            cycle.record.finished_at = Utc::now();
            cycle.record.outcome = match cycle.phase {
                Phase::Finished(outcome) => outcome,
                // Unreachable by the table; recorded as a failure rather than hidden.
                _ => Outcome::Failed,
            };
            cycle.record.clone()
        };
        if let Err(e) = self.parts.history.append(&record) {
            tracing::error!(cycle = %record.cycle_id, "appending to the history: {e}");
        }
        self.set_live(|l| {
            l.phase = None;
            l.last = Some(record.clone());
            match l.cycles.iter_mut().find(|(o, _)| *o == record.outcome) {
                Some((_, n)) => *n += 1,
                None => l.cycles.push((record.outcome, 1)),
            }
        });
        tracing::info!(
            cycle = %record.cycle_id,
            outcome = ?record.outcome,
            stranded = ?record.stranded,
            max_downtime_ms = record.stacks.iter().filter_map(|s| s.downtime_ms).max().unwrap_or(0),
            "cycle finished"
        );
        record
    }

    /// Crash recovery (SPEC §2 rule 3): if a marker exists, starts the stacks named in it,
    /// clears it and records the cycle; asks the agent how the marker's backup ended.
    /// `Ok(None)`: there was no marker.
    pub async fn recover(&self) -> Result<Option<CycleRecord>, CycleError> {
        let _guard = self.parts.lock.acquire().map_err(CycleError::Busy)?;
        let Some(marker) = self.parts.marker.load()? else {
            return Ok(None);
        };
        tracing::warn!(
            cycle = %marker.cycle_id,
            pid = marker.pid,
            phase = ?marker.phase,
            stacks = ?marker.stacks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "recovering the marker of an interrupted cycle"
        );
        let mut record = new_record(&marker, Outcome::Recovered);
        record.errors.push(format!(
            "the controller (pid {}) stopped during phase {:?}; recovered by pid {}",
            marker.pid,
            marker.phase,
            std::process::id()
        ));
        if let (Some(id), Some(agent)) = (marker.backup_id.clone(), self.parts.agent.clone()) {
            match timeout(Duration::from_secs(30), agent.backup_status()).await {
                Ok(Ok(status)) if status.id.as_deref() == Some(id.as_str()) => {
                    record.snapshot_at = status.snapshot_at;
                    record.agent_phase = Some(phase_name(&status.phase));
                }
                Ok(Ok(_)) => record.agent_phase = Some("lost".to_owned()),
                Ok(Err(e)) => record
                    .errors
                    .push(format!("asking the agent about backup {id}: {e}")),
                Err(_) => record.errors.push(format!(
                    "asking the agent about backup {id}: no answer within 30s"
                )),
            }
        }
        // Nothing is known of how far the dead controller got with each stop: every marked
        // stack is settled (stopped again) before its start.
        let settle = marker.stacks.iter().map(|s| s.name.clone()).collect();
        let shared: Shared = Arc::new(Mutex::new(Cycle {
            phase: Phase::Resuming {
                outcome: Some(Outcome::Recovered),
            },
            marker,
            record,
            cleared: false,
            warned_unknown: false,
            settle,
        }));
        self.resume(&shared).await;
        lock(&shared).phase = Phase::Finished(Outcome::Recovered);
        Ok(Some(self.finish(&shared)))
    }

    /// The daemon's loop: recovery first, then cycles whenever the agent says a backup is due,
    /// never more often than `min_cycle_interval` (or `failure_cooldown` after a failure).
    /// Returns when `cancel` fires, after any running cycle has resumed its stacks.
    pub async fn run(&self, cancel: &CancellationToken) {
        if let Err(e) = self.recover().await {
            tracing::error!("crash recovery: {e}");
        }
        let Some(agent) = self.parts.agent.clone() else {
            tracing::info!("no agent configured: the backup loop stays off");
            cancel.cancelled().await;
            return;
        };
        let mut not_before = match self.parts.history.recent(1) {
            Ok(records) => records
                .last()
                .map(|r| self.next_allowed(r))
                .unwrap_or_else(Instant::now),
            Err(e) => {
                tracing::warn!("reading the history: {e}");
                Instant::now()
            }
        };
        loop {
            let wait = not_before.saturating_duration_since(Instant::now());
            self.set_live(|l| l.next_check_at = Some(wall_clock_in(wait)));
            tokio::select! {
                () = sleep_until(not_before) => {}
                () = cancel.cancelled() => return,
            }
            let due = tokio::select! {
                due = agent.backup_due() => due,
                () = cancel.cancelled() => return,
            };
            not_before = Instant::now() + self.config.due_poll_interval;
            match due {
                Ok(due) if due.due => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!("{e}");
                    continue;
                }
            }
            tracing::info!("the agent says a backup is due");
            match self.run_cycle(cancel).await {
                Ok(record) => not_before = self.next_allowed(&record),
                Err(CycleError::MarkerPresent { .. }) => {
                    // Left by another process that crashed; it holds no lock any more.
                    if let Err(e) = self.recover().await {
                        tracing::error!("recovering a marker left by another process: {e}");
                    }
                }
                Err(e) => {
                    tracing::warn!("cycle not started: {e}");
                }
            }
            if cancel.is_cancelled() {
                return;
            }
        }
    }

    /// When the next cycle may start after `record` (SPEC §2 rule 7).
    fn next_allowed(&self, record: &CycleRecord) -> Instant {
        let failed = record.outcome != Outcome::Done || !record.stranded.is_empty();
        let gap = if failed {
            self.config
                .failure_cooldown
                .max(self.config.min_cycle_interval)
        } else {
            self.config.min_cycle_interval
        };
        let since = (Utc::now() - record.finished_at)
            .to_std()
            .unwrap_or_default();
        Instant::now() + gap.saturating_sub(since)
    }
}

/// The down half: stop, start the backup, wait. Runs in its own task; may be aborted at any
/// await point by the supervisor.
async fn down_half(
    agent: Arc<dyn AgentApi>,
    parts: Parts,
    config: CycleConfig,
    shared: Shared,
    live: Arc<Mutex<Live>>,
) {
    let early = config.resume_on_snapshot;
    let stacks = lock(&shared).marker.stacks.clone();
    futures::stream::iter(stacks)
        .map(|stack| stop_one(&parts, &shared, stack))
        // As in the resume: the next stop begins as soon as any one ends.
        .buffer_unordered(config.parallelism.max(1))
        .collect::<Vec<()>>()
        .await;
    let (mut phase, mut next) = step(Phase::Quiescing, Event::Stopped, early);
    let cycle_id = {
        let mut cycle = lock(&shared);
        cycle.phase = phase;
        cycle.marker.phase = MarkerPhase::BackingUp;
        save_marker(&*parts.marker, &mut cycle);
        cycle.record.cycle_id.clone()
    };
    set_phase(&live, phase);
    let mut delay = config.first_poll;
    loop {
        let event = match next {
            Step::StartBackup => match agent.start_backup(&cycle_id).await {
                Ok(start) => {
                    tracing::info!(cycle = %cycle_id, backup = %start.id, adopted = start.adopted, "backup started");
                    let mut cycle = lock(&shared);
                    cycle.record.backup_id = Some(start.id.clone());
                    cycle.marker.backup_id = Some(start.id);
                    save_marker(&*parts.marker, &mut cycle);
                    Event::BackupStarted
                }
                Err(e) => {
                    tracing::error!(cycle = %cycle_id, "{e}");
                    lock(&shared).record.errors.push(e.to_string());
                    Event::BackupRefused
                }
            },
            Step::Poll => {
                sleep(delay).await;
                poll_status(&agent, &shared, &mut delay, WAIT_GROWTH, &config).await
            }
            Step::Resume | Step::Finish => return,
        };
        (phase, next) = step(phase, event, early);
        lock(&shared).phase = phase;
        set_phase(&live, phase);
    }
}

/// Stops one stack, records its times and keeps the marker's service list true.
/// A stop failure does not end the cycle: the backup goes on (that stack is captured
/// crash-consistent, which is no worse than without the controller) and the stack is started
/// again with the others. See docs/decisions.md.
async fn stop_one(parts: &Parts, shared: &Shared, stack: MarkedStack) {
    let begin = Utc::now();
    lock(shared)
        .record
        .stacks
        .iter_mut()
        .filter(|r| r.name == stack.name)
        .for_each(|r| {
            r.stop_started_at = Some(begin);
        });
    let result = parts.stacks.stop(&stack.name).await;
    let mut cycle = lock(shared);
    match result {
        Ok(services) => {
            if let Some(rec) = cycle
                .record
                .stacks
                .iter_mut()
                .find(|r| r.name == stack.name)
            {
                rec.stopped_at = Some(Utc::now());
                if !services.is_empty() {
                    rec.services = services.clone();
                }
            }
            // The services that really ran are the ones to start again; a service that
            // started between the listing and the stop is added to the marker.
            let changed = match cycle
                .marker
                .stacks
                .iter_mut()
                .find(|s| s.name == stack.name)
            {
                Some(marked) if !services.is_empty() && marked.services != services => {
                    marked.services = services;
                    true
                }
                _ => false,
            };
            if changed {
                save_marker(&*parts.marker, &mut cycle);
            }
            tracing::info!(stack = %stack.name, "stack stopped");
        }
        Err(e) => {
            let msg = format!("stopping {}: {e}", stack.name);
            tracing::error!("{msg}");
            cycle.record.errors.push(msg);
        }
    }
}

/// How much the pause between two status polls grows while the stacks are down. Every poll
/// pause is idle downtime for the apps: on average a snapshot is noticed half a pause late.
/// Growing by half (rather than doubling) keeps that lateness near a quarter of the time
/// waited so far, for a few more requests: about 12 in the first 10 s from a 50 ms start,
/// against 8 when doubling from 100 ms; `status_poll_interval` still caps the pause.
const WAIT_GROWTH: f64 = 1.5;

/// One `GET /backup/status`, reduced to an event; after an answer the next pause is `growth`
/// times longer, up to `status_poll_interval`.
async fn poll_status(
    agent: &Arc<dyn AgentApi>,
    shared: &Shared,
    delay: &mut Duration,
    growth: f64,
    config: &CycleConfig,
) -> Event {
    match agent.backup_status().await {
        Ok(status) => {
            *delay = delay.mul_f64(growth).min(config.status_poll_interval);
            Event::Status(observe(shared, &status))
        }
        Err(e) => {
            // Backoff on errors, up to the larger of the poll interval and 30 s; the bound
            // (not a retry count) decides when waiting stops.
            let cap = config.status_poll_interval.max(Duration::from_secs(30));
            *delay = ((*delay).max(Duration::from_millis(500)) * 2).min(cap);
            tracing::warn!("{e} (retrying in {})", humanize(*delay));
            let mut cycle = lock(shared);
            if cycle.record.errors.len() < 50 {
                cycle.record.errors.push(e.to_string());
            }
            Event::StatusError
        }
    }
}

/// What an agent status means for our backup.
fn observe(shared: &Shared, status: &BackupStatus) -> Observed {
    let mut cycle = lock(shared);
    let ours = cycle.record.backup_id.clone();
    if ours.is_none() || status.id != ours {
        return Observed::Lost;
    }
    match &status.phase {
        BackupPhase::Idle => Observed::Lost,
        BackupPhase::Running => Observed::Running,
        BackupPhase::Snapshotted => {
            if cycle.record.snapshot_at.is_none() {
                cycle.record.snapshot_at = Some(status.snapshot_at.unwrap_or_else(Utc::now));
                tracing::info!(backup = ?ours, "the agent reports the snapshot taken");
            }
            Observed::Snapshotted
        }
        BackupPhase::Done => {
            if cycle.record.snapshot_at.is_none() {
                cycle.record.snapshot_at = status.snapshot_at;
            }
            Observed::Done
        }
        BackupPhase::Failed => {
            let why = status
                .error
                .clone()
                .unwrap_or_else(|| "no reason given".into());
            cycle
                .record
                .errors
                .push(format!("the agent reports the backup failed: {why}"));
            Observed::Failed
        }
        BackupPhase::Unknown(name) => {
            if !cycle.warned_unknown {
                cycle.warned_unknown = true;
                tracing::warn!("the agent reports an unknown phase {name:?}: treated as running");
            }
            Observed::Running
        }
        // `BackupPhase` may grow; a phase this build cannot name is still "in progress".
        #[allow(unreachable_patterns)]
        _ => Observed::Running,
    }
}

/// The stacks whose stop began but was not seen to end well: interrupted by the bound, a
/// cancellation or a panic, or failed. Their containers may still be shutting down.
fn settle_first(record: &CycleRecord) -> BTreeSet<String> {
    record
        .stacks
        .iter()
        .filter(|s| s.stop_started_at.is_some() && s.stopped_at.is_none())
        .map(|s| s.name.clone())
        .collect()
}

fn save_marker(store: &dyn MarkerStore, cycle: &mut Cycle) {
    if cycle.cleared {
        return;
    }
    if let Err(e) = store.save(&cycle.marker) {
        // Past the first stop the cycle goes on: the marker on disk is older but still names
        // every stack (it only ever loses stacks that run again).
        tracing::error!(cycle = %cycle.record.cycle_id, "updating the marker: {e}");
        cycle
            .record
            .errors
            .push(format!("updating the marker: {e}"));
    }
}

fn set_phase(live: &Mutex<Live>, phase: Phase) {
    live.lock().unwrap_or_else(|p| p.into_inner()).phase = Some(phase);
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

fn phase_name(phase: &BackupPhase) -> String {
    match phase {
        BackupPhase::Idle => "idle".into(),
        BackupPhase::Running => "running".into(),
        BackupPhase::Snapshotted => "snapshotted".into(),
        BackupPhase::Done => "done".into(),
        BackupPhase::Failed => "failed".into(),
        BackupPhase::Unknown(s) => s.clone(),
        #[allow(unreachable_patterns)]
        _ => "unknown".into(),
    }
}

fn wall_clock_in(wait: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
}

fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    //! The tuned hot paths (docs/performance.md): slots freed as soon as any stack is done,
    //! and the status poll schedule. Paused tokio time: the waits run instantly.
    use super::*;
    use async_trait::async_trait;
    use felhom_agentapi::{AgentError, BackupStart, Due};
    use felhom_marker::{MockHistoryStore, MockMarkerStore};
    use felhom_stacks::{RunningStack, StacksError};

    const SLOW: Duration = Duration::from_secs(10);
    const QUICK: Duration = Duration::from_secs(1);

    /// Stacks whose stop and start take `SLOW` for `slow` and `QUICK` for the others; each
    /// call's beginning is logged with its time since `t0`.
    struct TimedStacks {
        names: Vec<&'static str>,
        slow: &'static str,
        t0: Instant,
        log: Mutex<Vec<(String, Duration)>>,
    }

    impl TimedStacks {
        async fn call(&self, what: &str, stack: &str) {
            let at = self.t0.elapsed();
            self.log
                .lock()
                .expect("log")
                .push((format!("{what} {stack}"), at));
            sleep(if stack == self.slow { SLOW } else { QUICK }).await;
        }

        fn began(&self, call: &str) -> Duration {
            let log = self.log.lock().expect("log");
            log.iter()
                .find(|(c, _)| c == call)
                .map(|(_, at)| *at)
                .unwrap_or_else(|| panic!("{call:?} not in {log:?}"))
        }

        fn order(&self, what: &str) -> Vec<String> {
            let log = self.log.lock().expect("log");
            log.iter()
                .filter(|(c, _)| c.starts_with(what))
                .map(|(c, _)| c.clone())
                .collect()
        }
    }

    #[async_trait]
    impl Stacks for TimedStacks {
        async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
            Ok(self
                .names
                .iter()
                .map(|n| RunningStack {
                    name: (*n).to_owned(),
                    services: vec!["app".into()],
                })
                .collect())
        }
        async fn stop(&self, stack: &str) -> Result<Vec<String>, StacksError> {
            self.call("stop", stack).await;
            Ok(vec!["app".into()])
        }
        async fn start(&self, stack: &str, _services: &[String]) -> Result<(), StacksError> {
            self.call("start", stack).await;
            Ok(())
        }
        async fn is_running(&self, _stack: &str) -> Result<bool, StacksError> {
            Ok(true)
        }
    }

    /// An agent that answers `running` to the first `running` status polls, then
    /// `snapshotted`, then `done`; it logs when each poll came, since the `POST`.
    struct ScriptedAgent {
        running: usize,
        posted: Mutex<Option<Instant>>,
        polls: Mutex<Vec<Duration>>,
    }

    #[async_trait]
    impl AgentApi for ScriptedAgent {
        async fn backup_due(&self) -> Result<Due, AgentError> {
            Ok(Due {
                due: true,
                reason: None,
                next_due_at: None,
            })
        }
        async fn start_backup(&self, _cycle_id: &str) -> Result<BackupStart, AgentError> {
            *self.posted.lock().expect("posted") = Some(Instant::now());
            Ok(BackupStart {
                id: "b-1".into(),
                adopted: false,
            })
        }
        async fn backup_status(&self) -> Result<BackupStatus, AgentError> {
            let posted = self
                .posted
                .lock()
                .expect("posted")
                .unwrap_or_else(Instant::now);
            let mut polls = self.polls.lock().expect("polls");
            polls.push(posted.elapsed());
            let phase = match polls.len() {
                n if n <= self.running => BackupPhase::Running,
                n if n == self.running + 1 => BackupPhase::Snapshotted,
                _ => BackupPhase::Done,
            };
            Ok(BackupStatus {
                id: Some("b-1".into()),
                phase,
                started_at: None,
                snapshot_at: None,
                finished_at: None,
                error: None,
            })
        }
    }

    struct NoLock;
    impl CycleLock for NoLock {
        fn acquire(&self) -> Result<Box<dyn std::fmt::Debug + Send + Sync>, String> {
            Ok(Box::new(()))
        }
    }

    fn parts(agent: Arc<ScriptedAgent>, stacks: Arc<TimedStacks>) -> Parts {
        let mut marker = MockMarkerStore::new();
        marker.expect_load().returning(|| Ok(None));
        marker.expect_save().returning(|_| Ok(()));
        marker.expect_clear().returning(|| Ok(()));
        let mut history = MockHistoryStore::new();
        history.expect_append().returning(|_| Ok(()));
        Parts {
            agent: Some(agent),
            stacks,
            marker: Arc::new(marker),
            history: Arc::new(history),
            lock: Arc::new(NoLock),
        }
    }

    fn cycle_config(parallelism: usize) -> CycleConfig {
        CycleConfig {
            parallelism,
            start_call_timeout: Duration::from_secs(60),
            ..CycleConfig::default()
        }
    }

    async fn run(
        parallelism: usize,
        running_polls: usize,
    ) -> (Arc<TimedStacks>, Arc<ScriptedAgent>) {
        let stacks = Arc::new(TimedStacks {
            names: vec!["a", "b", "c", "d"],
            slow: "a",
            t0: Instant::now(),
            log: Mutex::new(Vec::new()),
        });
        let agent = Arc::new(ScriptedAgent {
            running: running_polls,
            posted: Mutex::new(None),
            polls: Mutex::new(Vec::new()),
        });
        let controller = Controller::new(
            parts(agent.clone(), stacks.clone()),
            cycle_config(parallelism),
        );
        let record = controller
            .run_cycle(&CancellationToken::new())
            .await
            .expect("the cycle runs");
        assert_eq!(record.outcome, Outcome::Done, "{record:?}");
        assert!(record.stranded.is_empty(), "{record:?}");
        (stacks, agent)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stack_does_not_hold_back_the_stacks_after_it() {
        let (stacks, _) = run(2, 0).await;
        // a (slow) and b begin at once; c takes b's slot when b ends, d takes c's: neither
        // waits for a. (In order of completion they would have: the oldest first.)
        assert_eq!(stacks.began("stop c"), QUICK);
        assert_eq!(stacks.began("stop d"), QUICK * 2);
        let resume = stacks.began("start a");
        assert!(resume >= SLOW, "the backup waited for every stop");
        assert_eq!(stacks.began("start c") - resume, QUICK);
        assert_eq!(stacks.began("start d") - resume, QUICK * 2);
        // Slots are handed out in name order.
        assert_eq!(
            stacks.order("stop"),
            ["stop a", "stop b", "stop c", "stop d"]
        );
        assert_eq!(
            stacks.order("start"),
            ["start a", "start b", "start c", "start d"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn parallelism_one_is_the_strict_order() {
        let (stacks, _) = run(1, 0).await;
        assert_eq!(stacks.began("stop b"), SLOW);
        assert_eq!(stacks.began("stop c"), SLOW + QUICK);
        let resume = stacks.began("start a");
        assert_eq!(stacks.began("start b") - resume, SLOW);
        assert_eq!(stacks.began("start d") - resume, SLOW + QUICK * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn status_polls_start_fast_and_back_off_to_the_interval() {
        let (_, agent) = run(4, 14).await;
        let polls = agent.polls.lock().expect("polls").clone();
        let pauses: Vec<u128> = polls
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        // 50 ms after the POST, then each pause half again as long, up to 2 s (give or take
        // the timer's millisecond).
        assert_eq!(polls[0].as_millis(), 50, "{polls:?}");
        let expected = [75, 112, 168, 253, 379, 569, 854, 1281, 1922, 2000, 2000];
        for (pause, want) in pauses.iter().zip(expected) {
            assert!(pause.abs_diff(want) <= 1, "{pauses:?} against {expected:?}");
        }
        // The snapshot (the 15th answer) ended the wait: the stacks were resumed, and the
        // outcome was polled for afterwards.
        assert!(polls.len() > 15, "{polls:?}");
    }
}
