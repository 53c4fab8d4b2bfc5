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

//!
//! The parts, each an `impl Driver` over the same private fields: `down` (what each step of
//! the down half is handed of the cycle), `bounded` (the race that makes the bound hold),
//! `up` (the resume, the stranded stacks, the outcome wait after an early resume), `landing`
//! (the writer's answers, and the driver's waits while facts keep arriving). What stays here
//! is the loop, the one place the phase moves ([`Driver::advance`]) and the one function that
//! changes the cycle ([`Driver::apply`]).

use crate::controller::Shared;
use crate::cycle::Cycle;
use crate::machine::{self, Event, Phase, Step};
use crate::policy::Policies;
use crate::progress::{Ack, Level, OnDisk, Progress, Reporter, Said};
use crate::writer::{MarkerWriter, WriteError};
use crate::{after, CycleError};
use felhom_agentapi::AgentApi;
use felhom_marker::{CycleRecord, Marker};
use felhom_stacks::Slots;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod bounded;
mod down;
mod landing;
mod up;

use down::BackupPolls;
use up::OutcomeWait;

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

    /// Drives a cycle from its first stop to its record: the step the table says, its event
    /// back to the table, until the end.
    pub(crate) async fn drive(
        mut self,
        agent: Arc<dyn AgentApi>,
        cancel: &CancellationToken,
    ) -> CycleRecord {
        let config = &self.shared.config;
        let deadline = after(config.max_quiesce);
        let mut polls = BackupPolls::new(config);
        let mut outcome = OutcomeWait::default();
        let (phase, mut next) = machine::begin();
        self.enter(phase);
        loop {
            let event = match next {
                Step::PreSnapshot => self.pre_snapshot(deadline, cancel).await,
                Step::Stop => self.stop(deadline, cancel).await,
                Step::StartBackup => self.start_backup(&agent, deadline, cancel).await,
                Step::AwaitBackup => {
                    self.await_backup(&agent, &mut polls, deadline, cancel)
                        .await
                }
                Step::Resume => {
                    outcome.resume_began();
                    self.resume(cancel).await
                }
                Step::AwaitOutcome => self.await_outcome(&agent, &mut outcome, cancel).await,
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
