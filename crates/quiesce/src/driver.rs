//! The driver: one loop over [`Step`] runs every cycle, and the same steps every crash
//! recovery. It alone holds the [`Cycle`].
//!
//! Each step reports what happened as an [`Event`]; [`Driver::advance`] hands it to
//! [`machine::step`], so the table's invariant ("no edge skips the resume") is the driver's:
//! no code sets a phase. What a step does on the way it sends as [`Progress`] over a channel,
//! and [`Driver::apply`] — the one function that changes the cycle — applies each fact as it
//! arrives and hands any change of the marker to the [`MarkerWriter`], never waiting for it.
//!
//! While stacks may be down, each step runs in its own task, and the driver races it against
//! the `max_quiesce` deadline, the cancellation and the task's panic, aborting the task when
//! any of them fires. So the bound holds even when a call inside a step never returns — an
//! agent that never answers, a stop that hangs, a marker write stuck on a disk — because it
//! is enforced outside that code path. The facts a task sent before its abort are still in
//! the channel and are applied: the resume knows which stops began, and which may still be in
//! flight.
//!
//! A step that must not go on until the marker on disk says something — a stack's stop, until
//! the marker records the containers it stops and that its stop began — asks the driver
//! ([`Reporter::record`]) and waits: the driver applies the fact, hands the marker to the
//! writer, and answers once that write has landed (`false` if it failed). The driver stays
//! the only writer.

use crate::backoff::Backoff;
use crate::controller::Shared;
use crate::cycle::Cycle;
use crate::hooks;
use crate::machine::{self, Event, Phase, Step};
use crate::observer::{Notice, NoticeKind};
use crate::policy::Policies;
use crate::progress::{Ack, Level, OnDisk, Progress, Reporter, Said};
use crate::resume::{self, Plan};
use crate::steps;
use crate::writer::{Landed, MarkerWriter, WriteError};
use crate::{after, humanize, CycleError, LANDING};
use felhom_agentapi::AgentApi;
use felhom_marker::{CycleRecord, Marker};
use felhom_stacks::Slots;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The longest an agent with the long-poll extension is asked to hold a status answer.
const LONG_POLL: Duration = Duration::from_secs(30);

/// One cycle or recovery being driven.
pub(crate) struct Driver<'a> {
    shared: &'a Shared,
    cycle: Cycle,
    /// The steps' end of the channel; cloned into each step.
    report: Reporter,
    progress: mpsc::UnboundedReceiver<Progress>,
    writer: MarkerWriter,
    /// Lines to log once the marker write of that number has landed.
    to_say: Vec<(u64, Said)>,
    /// Steps waiting to hear that the marker write of that number has landed.
    acks: Vec<(u64, Ack)>,
    /// Whether the last write that landed succeeded.
    last_write_ok: bool,
    /// The cycle's slots for engine work: every stop and start call holds one.
    slots: Slots,
}

impl<'a> Driver<'a> {
    fn new(shared: &'a Shared, cycle: Cycle) -> Self {
        let (tx, progress) = mpsc::unbounded_channel();
        Driver {
            shared,
            cycle,
            report: Reporter(tx),
            progress,
            writer: MarkerWriter::start(shared.parts.marker.clone()),
            to_say: Vec::new(),
            acks: Vec::new(),
            last_write_ok: true,
            slots: Slots::new(shared.config.parallelism),
        }
    }

    /// A new cycle over `marker`, once the marker is on disk (SPEC §2 rule 1). `Err`: it
    /// could not be written, and nothing is stopped.
    pub(crate) async fn begin(
        shared: &'a Shared,
        marker: Marker,
        policies: Policies,
    ) -> Result<Self, CycleError> {
        let mut driver = Driver::new(shared, Cycle::with_policies(marker, policies));
        driver.apply(Progress::Began);
        while driver.writer.pending() {
            match driver.writer.landed().await.result {
                Ok(()) => {}
                Err(WriteError::Store(e)) => return Err(e.into()),
                // Nothing is stopped: the store's panic is the caller's, as if called in place.
                Err(WriteError::Panicked(why)) => panic!("the marker store failed: {why}"),
            }
        }
        Ok(driver)
    }

    /// The recovery of `marker`, left on disk by a controller that died.
    pub(crate) fn recovering(shared: &'a Shared, marker: Marker) -> Self {
        Driver::new(shared, Cycle::recovering(marker))
    }

    /// Notes a problem in the record.
    pub(crate) fn note(&mut self, level: Level, message: String) {
        self.apply(Progress::Note(level, message));
    }

    /// Drives a cycle from its first stop to its record.
    pub(crate) async fn drive(
        mut self,
        agent: Arc<dyn AgentApi>,
        cancel: &CancellationToken,
    ) -> CycleRecord {
        let shared = self.shared;
        let config = &shared.config;
        let (phase, mut next) = machine::begin();
        self.enter(phase);
        let deadline = after(config.max_quiesce);
        let mut backup_wait = Backoff::backup_wait(config);
        // Set at the first status poll while the stacks are down.
        let mut polling_since: Option<Instant> = None;
        // The last answer was held, or came with a new phase: ask again at once.
        let mut held = false;
        // Set when the outcome wait after an early resume begins.
        let mut outcome_wait: Option<(Backoff, Instant)> = None;
        // When the resume began: the outcome wait after an early resume ends `max_quiesce`
        // after it, not after the resume's end.
        let mut resumed_at: Option<Instant> = None;
        loop {
            let report = self.report.clone();
            let event = match next {
                Step::PreSnapshot => {
                    let (stacks, groups) = (
                        shared.parts.stacks.clone(),
                        self.cycle.pre_snapshot_groups(),
                    );
                    let task = hooks::pre_snapshot(stacks, groups, config.parallelism, report);
                    self.bounded(task, deadline, cancel).await
                }
                Step::Stop => {
                    let (stacks, groups) = (shared.parts.stacks.clone(), self.cycle.stop_groups());
                    let slots = self.slots.clone();
                    let task = steps::stop_all(stacks, groups, config.parallelism, slots, report);
                    self.bounded(task, deadline, cancel).await
                }
                Step::StartBackup => {
                    let cycle_id = self.cycle.record.cycle_id.clone();
                    let stopped = self.cycle.to_recheck();
                    let (stacks, slots) = (shared.parts.stacks.clone(), self.slots.clone());
                    let task = steps::start_backup(
                        agent.clone(),
                        stacks,
                        cycle_id,
                        stopped,
                        slots,
                        report,
                    );
                    self.bounded(task, deadline, cancel).await
                }
                Step::AwaitBackup => {
                    // The long-poll (SPEC §3): an agent with the extension holds each answer
                    // until the phase changes, so it is asked again at once; one without it
                    // answers at once, and is asked on the interval schedule.
                    let since = *polling_since.get_or_insert_with(Instant::now);
                    let pause = if held {
                        Duration::ZERO
                    } else {
                        backup_wait.pause_while_down(since.elapsed())
                    };
                    let wait = LONG_POLL.min(deadline.saturating_duration_since(Instant::now()));
                    let ours = self.cycle.record.backup_id.clone();
                    let last = self.cycle.poll().last_phase.clone();
                    let task = steps::poll_after(agent.clone(), ours, pause, last, wait, report);
                    let event = self.bounded(task, deadline, cancel).await;
                    held = matches!(event, Event::Status(_)) && self.cycle.poll().held;
                    if !held {
                        backup_wait.pace(event);
                    }
                    event
                }
                Step::Resume => {
                    resumed_at.get_or_insert_with(Instant::now);
                    self.resume(cancel).await
                }
                Step::AwaitOutcome => {
                    let (wait, until) = outcome_wait.get_or_insert_with(|| {
                        (
                            Backoff::outcome_wait(config),
                            outcome_until(resumed_at, config),
                        )
                    });
                    let event = self
                        .await_outcome(&agent, wait.delay(), *until, cancel)
                        .await;
                    wait.pace(event);
                    event
                }
                Step::Finish => return self.finish().await,
            };
            next = self.advance(event);
        }
    }

    /// Drives a recovery: the table takes it through the resume to its end, and nowhere else
    /// (`machine::tests::recoveries_only_resume_then_finish`). Only once the stacks run is
    /// the agent asked about the marker's backup (`ask`, SPEC §2 rule 3).
    pub(crate) async fn recover(
        mut self,
        ask: impl Future<Output = Option<Progress>>,
        cancel: &CancellationToken,
    ) -> CycleRecord {
        let (phase, mut next) = machine::recovery();
        self.enter(phase);
        while next == Step::Resume {
            let event = self.resume(cancel).await;
            next = self.advance(event);
        }
        if let Some(said) = self.alongside(ask).await {
            self.apply(said);
        }
        self.finish().await
    }

    /// The one place the phase moves: [`machine::step`] decides.
    fn advance(&mut self, event: Event) -> Step {
        let early = self.shared.config.resume_on_snapshot;
        let (phase, next) = machine::step(self.cycle.phase, event, early);
        self.enter(phase);
        next
    }

    /// Puts the cycle in `phase`: the cycle and the marker first, then the overview.
    fn enter(&mut self, phase: Phase) {
        self.apply(Progress::Entered(phase));
        self.shared.shown.set(|o| o.phase = Some(phase));
    }

    /// The one function that changes the cycle, and so the marker: applies `progress` and
    /// hands the marker's new state, if any, to the writer.
    fn apply(&mut self, mut progress: Progress) {
        let ack = progress.take_ack();
        let applied = self.cycle.apply(progress);
        let written = match applied.on_disk {
            OnDisk::Keep => None,
            OnDisk::Save(marker) => Some(self.writer.hand_over(Some(marker))),
            OnDisk::Remove => Some(self.writer.hand_over(None)),
        };
        if let Some(ack) = ack {
            self.ack_when_written(ack, written);
        }
        if let Some(said) = applied.say {
            self.to_say
                .push((written.unwrap_or(self.writer.handed()), said));
            self.say_what_landed();
        }
    }

    /// Answers `ack` once the marker that holds what it asked for is on disk: the write of
    /// number `written`, or (nothing changed) the last one handed over.
    fn ack_when_written(&mut self, ack: Ack, written: Option<u64>) {
        if !self.cycle.has_marker() {
            let _ = ack.send(false);
            return;
        }
        let seq = written.unwrap_or(self.writer.handed());
        if self.writer.settled() >= seq {
            // Already on disk — or, for a write just handed over, never to be: the writer is
            // gone.
            let _ = ack.send(written.is_none() && self.last_write_ok);
        } else {
            self.acks.push((seq, ack));
        }
    }

    /// A marker write landed: a failure is noted (a marker that cannot be removed is stuck);
    /// the steps and lines waiting for it are told.
    fn landed(&mut self, landed: Landed) {
        let ok = landed.result.is_ok();
        self.last_write_ok = ok;
        let (done, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks)
            .into_iter()
            .partition(|(seq, _)| *seq <= landed.seq);
        self.acks = still;
        for (_, ack) in done {
            let _ = ack.send(ok);
        }
        if let Err(e) = &landed.result {
            crate::health::counted(&self.shared.shown);
            let what = if landed.cleared {
                "clearing"
            } else {
                "updating"
            };
            let message = format!("{what} the marker: {}", e.describe());
            self.note(Level::Error, message.clone());
            if landed.cleared {
                let cycle_id = &self.cycle.record.cycle_id;
                self.shared
                    .stuck
                    .mark(&self.shared.shown, cycle_id, message);
            }
        }
        self.say_what_landed();
    }

    fn say_what_landed(&mut self) {
        let settled = self.writer.settled();
        self.to_say.retain(|(after, said)| {
            if *after <= settled {
                said.say();
            }
            *after > settled
        });
    }

    /// Applies every fact already sent.
    fn drain(&mut self) {
        while let Ok(progress) = self.progress.try_recv() {
            self.apply(progress);
        }
    }

    /// Runs `work` beside the driver: the facts it reports are applied, and the marker writes
    /// that land are taken in, as they come.
    async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let out = loop {
            tokio::select! {
                out = &mut work => break out,
                Some(progress) = self.progress.recv() => self.apply(progress),
                landed = self.writer.landed() => self.landed(landed),
            }
        };
        self.drain();
        out
    }

    /// Waits up to `limit` (`None`: as long as it takes) for the marker writes handed over.
    async fn let_land(&mut self, limit: Option<Duration>) {
        let until = limit.map(after);
        while self.writer.pending() {
            tokio::select! {
                landed = self.writer.landed() => self.landed(landed),
                () = sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => {
                    let waited = humanize(limit.unwrap_or_default());
                    let message = format!("the marker's last change did not reach the disk within {waited}: going on");
                    self.note(Level::Error, message);
                    return;
                }
            }
        }
    }

    /// Runs one step of the down half in its own task, raced against the deadline, the
    /// cancellation and the task's panic; whichever ends first is the event. The step begins
    /// once the marker writes before it have landed (the phase, the backup's id), which
    /// races the same deadline.
    async fn bounded(
        &mut self,
        step: impl Future<Output = Event> + Send + 'static,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Event {
        let mut step = Some(step);
        let mut task: Option<JoinHandle<Event>> = None;
        let (event, why) = loop {
            if task.is_none() && !self.writer.pending() {
                task = step.take().map(|s| tokio::spawn(s.in_current_span()));
            }
            tokio::select! {
                joined = join(&mut task) => match joined {
                    Ok(event) => {
                        self.drain();
                        return event;
                    }
                    Err(e) => break (Event::Panicked, format!("the cycle's task failed: {e}")),
                },
                Some(progress) = self.progress.recv() => self.apply(progress),
                landed = self.writer.landed() => self.landed(landed),
                () = sleep_until(deadline) => break (
                    Event::Bound,
                    format!("max_quiesce ({}) reached: resuming", humanize(self.shared.config.max_quiesce)),
                ),
                () = cancel.cancelled() => break (Event::Cancelled, "cancelled: resuming".to_owned()),
            }
        };
        if let Some(mut task) = task.filter(|t| !t.is_finished()) {
            task.abort();
            // Let the aborted task unwind (its child processes are killed on drop), but never
            // wait for it long: the resume matters more.
            let _ = timeout(LANDING, &mut task).await;
        }
        // What the task sent before it ended is applied: which stops had begun.
        // A step aborted while it waited for a write no longer hears of it.
        self.drain();
        self.note(Level::Warn, why);
        event
    }

    /// Starts the stacks of the marker again. The marker's change to `resuming` gets a
    /// moment to land first, but the resume never waits on a disk for long.
    async fn resume(&mut self, cancel: &CancellationToken) -> Event {
        self.let_land(Some(LANDING)).await;
        let plan = Plan {
            cycle_id: self.cycle.record.cycle_id.clone(),
            stacks: self.cycle.plan(),
            slots: self.slots.clone(),
            recreate_vanished: !self.cycle.recovering,
        };
        let (shared, report) = (self.shared, self.report.clone());
        self.alongside(resume::resume(shared, plan, &report, cancel))
            .await;
        let newly = std::mem::take(&mut self.cycle.newly_stranded);
        if newly.is_empty() {
            return Event::Resumed;
        }
        // SPEC §2 rule 6: a stranded stack is state, kept until it runs. It leaves the marker
        // only once the stranded list holds it, so that a crash in between loses it nowhere.
        let names: Vec<String> = newly.iter().map(|s| s.name.clone()).collect();
        match shared.stranded.keep(&shared.shown, newly).await {
            Ok(()) => self.apply(Progress::StrandedKept(names.clone())),
            Err(e) => {
                // A full disk must not forget them: the marker, already on disk, keeps them
                // (issue 19), and is recovered again on the stranded stacks' slow schedule.
                self.note(Level::Error, format!("keeping the stranded stacks: {e}"));
                crate::health::counted(&shared.shown);
                shared.stuck.hold_back(&self.cycle.record.cycle_id);
                self.apply(Progress::StrandedNotKept(names.clone()));
            }
        }
        let message = format!("could not be started again: {}", names.join(", "));
        let mut notice = Notice::about(NoticeKind::Stranded, &self.cycle.record, message);
        // The outcome as far as it is known: after an early resume the backup's is still to
        // come (the record's is set when the cycle finishes).
        notice.outcome = match self.cycle.phase {
            Phase::Resuming {
                outcome: Some(outcome),
            } => Some(outcome.as_str().to_owned()),
            _ => None,
        };
        shared.shown.notice(&notice);
        Event::Resumed
    }

    /// After an early resume the stacks run: only the record waits, for one poll after
    /// `pause`, bounded by `until` (`max_quiesce` again) and by cancellation.
    async fn await_outcome(
        &mut self,
        agent: &Arc<dyn AgentApi>,
        pause: Duration,
        until: Instant,
        cancel: &CancellationToken,
    ) -> Event {
        self.let_land(Some(LANDING)).await;
        let ours = self.cycle.record.backup_id.clone();
        let last = self.cycle.poll().last_phase.clone();
        let report = self.report.clone();
        let poll = steps::poll_after(agent.clone(), ours, pause, last, Duration::ZERO, report);
        let event = self
            .alongside(async {
                tokio::select! {
                    event = poll => event,
                    () = sleep_until(until) => Event::Bound,
                    () = cancel.cancelled() => Event::Cancelled,
                }
            })
            .await;
        if event == Event::Bound {
            let message =
                "the backup's outcome did not arrive within max_quiesce after the early resume";
            self.note(Level::Warn, message.to_owned());
        }
        event
    }

    /// Records the finished cycle (once every marker write has landed) and tells the
    /// observer.
    async fn finish(mut self) -> CycleRecord {
        self.let_land(None).await;
        let record = {
            let record = &mut self.cycle.record;
            record.finished_at = chrono::Utc::now();
            record.outcome = match self.cycle.phase {
                Phase::Finished(outcome) => outcome,
                // The table finishes only from `Finished`; anything else would be recorded
                // as a failure rather than hidden.
                _ => felhom_marker::Outcome::Failed,
            };
            self.cycle.judge();
            self.cycle.record.clone()
        };
        crate::record::finished(self.shared, &record, self.cycle.recovering).await;
        record
    }
}

/// When the wait for the backup's outcome after an early resume ends: `max_quiesce` after the
/// resume began, so that a resume which waited for an engine that was away (`once` and
/// `recover` up to `max_quiesce`) and the outcome wait share one bound — the lock, which the
/// daemon needs to bring back what still waits for the engine, is not held for another
/// `max_quiesce` on top (issue 19). At least [`LANDING`] from now all the same: one last look
/// at a backup that may well be done.
fn outcome_until(resumed_at: Option<Instant>, config: &crate::CycleConfig) -> Instant {
    let floor = after(LANDING);
    let Some(began) = resumed_at else {
        return after(config.max_quiesce);
    };
    match began.checked_add(config.max_quiesce) {
        Some(end) => end.max(floor),
        None => after(config.max_quiesce),
    }
}

/// The task's end, or never when there is no task yet.
async fn join(task: &mut Option<JoinHandle<Event>>) -> Result<Event, JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
