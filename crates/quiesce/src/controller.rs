//! The driver: one loop over [`Step`] runs every cycle and every crash recovery.
//!
//! Each step reports what happened as an [`Event`]; [`Controller::advance`] hands it to
//! [`machine::step`] and moves the phase, the marker's phase and the live status together. So
//! the table's invariant ("no edge skips the resume") is the driver's: no code sets a phase.
//!
//! While stacks may be down, each step runs in its own task, and the driver races it against
//! the `max_quiesce` deadline, the cancellation and the task's panic, aborting the task when
//! any of them fires. So the bound holds even when a call inside a step never returns — an
//! agent that never answers, a stop that hangs — because it is enforced outside that code path.
//! The resume (see `up`) runs in the driver and is never aborted.

use crate::backoff::Backoff;
use crate::cycle::{Cycle, Level, SharedCycle};
use crate::machine::{self, step, Event, Phase, Step};
use crate::observer::{Notice, NoticeKind};
use crate::tend::Tending;
use crate::{down, humanize, max_downtime_ms, CycleConfig, CycleError};
use crate::{Live, Parts};
use chrono::Utc;
use felhom_agentapi::AgentApi;
use felhom_marker::{CycleRecord, MarkedStack, Marker, Outcome};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Runs quiesce cycles. Cheap to clone; clones share their live status.
#[derive(Debug, Clone)]
pub struct Controller {
    pub(crate) parts: Parts,
    pub(crate) config: CycleConfig,
    live: Arc<Mutex<Live>>,
    pub(crate) tending: Arc<Mutex<Tending>>,
}

/// How long an aborted step's task may take to unwind (its child processes are killed on
/// drop) before the resume begins anyway.
const UNWIND: Duration = Duration::from_secs(5);

impl Controller {
    /// A controller over `parts`.
    pub fn new(parts: Parts, config: CycleConfig) -> Self {
        Controller {
            parts,
            config,
            live: Arc::new(Mutex::new(Live::default())),
            tending: Arc::new(Mutex::new(Tending::default())),
        }
    }

    /// A snapshot of what the controller is doing.
    pub fn live(&self) -> Live {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the live status and tells the observer (outside the lock: it may read it).
    pub(crate) fn set_live(&self, f: impl FnOnce(&mut Live)) {
        let live = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut live);
            live.clone()
        };
        self.parts.observer.changed(&live);
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
        // Every line of the cycle, the collaborators' included, carries its id (`cycle`).
        let span = tracing::info_span!("cycle", cycle = %cycle_id);
        async {
            tracing::info!(
                stacks = ?marker.stacks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                "cycle started: marker written"
            );
            let begin = machine::begin();
            let cycle = SharedCycle::new(Cycle::new(begin.0, marker, Outcome::Failed, false));
            Ok(self.drive(Some(agent), cycle, begin, cancel).await)
        }
        .instrument(span)
        .await
    }

    /// The one loop: runs `start`'s step, then whatever [`Controller::advance`] says, until
    /// the cycle is finished.
    pub(crate) async fn drive(
        &self,
        agent: Option<Arc<dyn AgentApi>>,
        cycle: SharedCycle,
        start: (Phase, Step),
        cancel: &CancellationToken,
    ) -> CycleRecord {
        let (phase, mut next) = start;
        self.enter(&cycle, phase);
        let deadline = crate::after(self.config.max_quiesce);
        let mut status_wait = Backoff::new(
            self.config.first_poll,
            WAIT_GROWTH,
            self.config.status_poll_interval,
        );
        // Set when the outcome wait after an early resume begins.
        let mut outcome_wait: Option<(Backoff, Instant)> = None;
        // Set at the first status poll while the stacks are down.
        let mut polling_since: Option<Instant> = None;
        loop {
            let down = cycle.lock().phase.stacks_may_be_down();
            let event = match (next, &agent) {
                (Step::Finish, _) => return self.finish(&cycle),
                (Step::Resume, _) => {
                    let stranded = self.resume(&cycle, cancel).await;
                    if !stranded.is_empty() {
                        let record = cycle.lock().record.clone();
                        let message =
                            format!("could not be started again: {}", stranded.join(", "));
                        self.parts.observer.notice(&Notice::about(
                            NoticeKind::Stranded,
                            &record,
                            message,
                        ));
                    }
                    Event::Resumed
                }
                (Step::Stop, _) => {
                    let task =
                        down::stop_all(self.parts.clone(), cycle.clone(), self.config.parallelism);
                    self.bounded_step(&cycle, deadline, cancel, task).await
                }
                (Step::StartBackup | Step::Poll, None) => {
                    // Unreachable through `run_cycle` (it requires an agent); resumes.
                    cycle
                        .lock()
                        .note(Level::Error, "no agent to back up with".into());
                    Event::BackupRefused
                }
                (Step::StartBackup, Some(agent)) => {
                    let task = down::start_backup(agent.clone(), self.parts.clone(), cycle.clone());
                    self.bounded_step(&cycle, deadline, cancel, task).await
                }
                (Step::Poll, Some(agent)) if down => {
                    let since = *polling_since.get_or_insert_with(Instant::now);
                    let pause = status_wait.delay().min(lateness_cap(since.elapsed()));
                    let task = down::poll_after(agent.clone(), cycle.clone(), pause);
                    let event = self.bounded_step(&cycle, deadline, cancel, task).await;
                    pace(&mut status_wait, event);
                    event
                }
                (Step::Poll, Some(agent)) => {
                    // After an early resume the stacks run: only the record waits, bounded by
                    // `max_quiesce` again and by cancellation.
                    let (wait, until) = outcome_wait.get_or_insert_with(|| {
                        let first = self
                            .config
                            .status_poll_interval
                            .min(Duration::from_millis(500));
                        let wait = Backoff::new(first, 2.0, self.config.status_poll_interval);
                        (wait, crate::after(self.config.max_quiesce))
                    });
                    let event = tokio::select! {
                        event = down::poll_after(agent.clone(), cycle.clone(), wait.delay()) => event,
                        () = sleep_until(*until) => {
                            cycle.lock().note(Level::Warn,
                                "the backup's outcome did not arrive within max_quiesce after the early resume".into());
                            Event::Bound
                        }
                        () = cancel.cancelled() => Event::Cancelled,
                    };
                    pace(wait, event);
                    event
                }
            };
            next = self.advance(&cycle, event);
        }
    }

    /// Runs one step of the down half in its own task, raced against the deadline, the
    /// cancellation and the task's panic; whichever ends first is the event.
    async fn bounded_step(
        &self,
        cycle: &SharedCycle,
        deadline: Instant,
        cancel: &CancellationToken,
        step: impl Future<Output = Event> + Send + 'static,
    ) -> Event {
        let mut task = tokio::spawn(step.in_current_span());
        let (event, why) = tokio::select! {
            joined = &mut task => match joined {
                Ok(event) => return event,
                Err(e) => (Event::Panicked, format!("the cycle's task failed: {e}")),
            },
            () = sleep_until(deadline) => (
                Event::Bound,
                format!("max_quiesce ({}) reached: resuming", humanize(self.config.max_quiesce)),
            ),
            () = cancel.cancelled() => (Event::Cancelled, "cancelled: resuming".to_owned()),
        };
        if !task.is_finished() {
            task.abort();
            // Let the aborted task unwind, but never wait for it long: the resume matters more.
            let _ = timeout(UNWIND, &mut task).await;
        }
        cycle.lock().note(Level::Warn, why);
        event
    }

    /// The one place the phase moves: [`machine::step`] decides, and the cycle's phase, the
    /// marker's phase and the live status follow together.
    fn advance(&self, cycle: &SharedCycle, event: Event) -> Step {
        let phase = cycle.lock().phase;
        let (next_phase, next) = step(phase, event, self.config.resume_on_snapshot);
        self.enter(cycle, next_phase);
        next
    }

    /// Puts the cycle in `phase` (the start of the loop, or what [`machine::step`] said):
    /// the marker on disk follows when its phase changes, then the live status.
    fn enter(&self, cycle: &SharedCycle, phase: Phase) {
        {
            let mut cycle = cycle.lock();
            cycle.phase = phase;
            if let Some(marked) = phase.marker_phase() {
                if cycle.marker.phase != marked {
                    cycle.marker.phase = marked;
                    cycle.save_marker(&*self.parts.marker);
                }
            }
        }
        self.set_live(|l| l.phase = Some(phase));
    }

    /// Records the finished cycle; tells the observer.
    fn finish(&self, cycle: &SharedCycle) -> CycleRecord {
        let (record, recovering) = {
            let mut cycle = cycle.lock();
            cycle.record.finished_at = Utc::now();
            cycle.record.outcome = match cycle.phase {
                Phase::Finished(outcome) => outcome,
                // The table finishes only from `Finished`; anything else would be recorded
                // as a failure rather than hidden.
                _ => Outcome::Failed,
            };
            (cycle.record.clone(), cycle.recovering)
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
            max_downtime_ms = max_downtime_ms(&record),
            "cycle finished"
        );
        let notice = if recovering {
            let message = format!(
                "recovered an interrupted cycle: {} stack(s) started again",
                record.stacks.len() - record.stranded.len()
            );
            Notice::about(NoticeKind::Recovered, &record, message)
        } else {
            Notice::end_of_cycle(&record)
        };
        self.parts.observer.notice(&notice);
        record
    }
}

/// How much the pause between two status polls grows while the stacks are down. Every poll
/// pause is idle downtime for the apps: on average a snapshot is noticed half a pause late.
/// Growing by half (rather than doubling) keeps that lateness near a quarter of the time
/// waited so far, for a few more requests: about 12 in the first 10 s from a 50 ms start,
/// against 8 when doubling from 100 ms; `status_poll_interval` still caps the pause.
const WAIT_GROWTH: f64 = 1.5;

/// While the stacks are down, a status poll's pause is also at most the larger of
/// [`LATENESS_FLOOR`] and a tenth of the time waited so far: a snapshot of a few seconds
/// (a real guest's) is then noticed at most 0.7 s late, not up to `status_poll_interval`
/// late, for about 18 requests in the first 10 s (issue 11 allows about 20). After 20 s of
/// waiting `status_poll_interval` caps the pause again, as before.
const LATENESS_FLOOR: Duration = Duration::from_millis(700);

fn lateness_cap(waited: Duration) -> Duration {
    LATENESS_FLOOR.max(waited / 10)
}

/// The next poll's pause after `event`: longer after an answer, backed off after an error.
fn pace(wait: &mut Backoff, event: Event) {
    match event {
        Event::StatusError => wait.grow_after_error(),
        _ => wait.grow(),
    }
}

#[cfg(test)]
mod tests;
