//! The up half as the driver runs it: the resume (the stacks of the marker started again,
//! the stranded ones handed to the stranded list before they leave the marker), and after an
//! early resume the wait for the backup's outcome, which only the record waits for.

use super::Driver;
use crate::backoff::Backoff;
use crate::machine::{Event, Phase};
use crate::observer::{Notice, NoticeKind};
use crate::progress::{Level, Progress};
use crate::resume::{self, Plan};
use crate::steps;
use crate::{after, LANDING};
use felhom_agentapi::AgentApi;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

/// Where a cycle's wait for the backup's outcome is, across the driver's turns.
#[derive(Debug, Default)]
pub(super) struct OutcomeWait {
    /// When the resume began: the outcome wait after an early resume ends `max_quiesce`
    /// after it, not after the resume's end.
    resumed_at: Option<Instant>,
    /// Set when the outcome wait after an early resume begins: its pace, and its end.
    polls: Option<(Backoff, Instant)>,
}

impl OutcomeWait {
    /// The resume begins (the first time counts).
    pub(super) fn resume_began(&mut self) {
        self.resumed_at.get_or_insert_with(Instant::now);
    }
}

impl Driver<'_> {
    /// Starts the stacks of the marker again. The marker's change to `resuming` gets a
    /// moment to land first, but the resume never waits on a disk for long.
    pub(super) async fn resume(&mut self, cancel: &CancellationToken) -> Event {
        self.let_land(Some(LANDING)).await;
        let plan = Plan {
            cycle_id: self.cycle.record.cycle_id.clone(),
            stacks: self.cycle.plan(),
            slots: self.slots.clone(),
            // Only the cycle's own resume recreates what vanished while it held the stacks
            // down; a recovery never (docs/decisions.md, "What an operator removed").
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

    /// The outcome wait after an early resume: one poll, paced by `wait`'s schedule and
    /// ended by its bound.
    pub(super) async fn await_outcome(
        &mut self,
        agent: &Arc<dyn AgentApi>,
        wait: &mut OutcomeWait,
        cancel: &CancellationToken,
    ) -> Event {
        let shared = self.shared;
        let config = &shared.config;
        let resumed_at = wait.resumed_at;
        let (pace, until) = wait.polls.get_or_insert_with(|| {
            (
                Backoff::outcome_wait(config),
                outcome_until(resumed_at, config),
            )
        });
        let event = self.poll_outcome(agent, pace.delay(), *until, cancel).await;
        pace.pace(event);
        event
    }

    /// After an early resume the stacks run: only the record waits, for one poll after
    /// `pause`, bounded by `until` (`max_quiesce` again) and by cancellation.
    async fn poll_outcome(
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
