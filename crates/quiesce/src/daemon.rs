//! The daemon's loop: when a cycle may run (SPEC §2 rules 3, 7, 9).

use crate::observer::TICK;
use crate::recovery::Recovery;
use crate::{after, error_chain, Controller, CycleError};
use chrono::{DateTime, Utc};
use felhom_agentapi::{AgentApi, IgnoredField};
use felhom_marker::CycleRecord;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// The longest time between two recoveries of the daemon's loop (a marker that no live
/// process holds, the stranded stacks' retries), whatever `due_poll_interval` is.
pub const RECOVER_EVERY: Duration = Duration::from_secs(30);

/// The least time between the end of a cycle and the start of the next, whatever
/// `min_cycle_interval` and `failure_cooldown` say: an agent that answers "due" on every poll
/// must not make the apps go down once a minute (docs/decisions.md).
pub const MIN_CYCLE_GAP: Duration = Duration::from_secs(5 * 60);

/// The daemon's loop, its start-up recovery done ([`Controller::start_daemon`]).
#[derive(Debug)]
pub struct Daemon {
    controller: Controller,
    /// The optional fields of the due answers that did not parse, as last warned about: an
    /// agent that keeps sending a malformed field is warned about once per change, not at
    /// every due poll.
    due_ignored: Vec<IgnoredField>,
}

impl Controller {
    /// The daemon: [`Controller::start_daemon`], then [`Daemon::run`]. Returns when `cancel`
    /// fires, after any running cycle has resumed its stacks.
    pub async fn run(&self, cancel: &CancellationToken) {
        self.start_daemon(cancel).await.run(cancel).await;
    }

    /// The daemon's start: crash recovery, once — a marker no live process holds is brought
    /// back, and every stranded stack is tried — before anything else. While it runs the
    /// overview says so ([`crate::Overview::recovering`]): it is the loop's first work, and it
    /// waits as long as the engine is away, so an embedder tells its service manager it is
    /// ready before, not after it.
    pub async fn start_daemon(&self, cancel: &CancellationToken) -> Daemon {
        let mut daemon = Daemon {
            controller: self.clone(),
            due_ignored: Vec::new(),
        };
        let shown = &self.shared.shown;
        shown.set(|o| o.recovering = true);
        if let Some(recovery) = daemon.recover(cancel).await {
            if !recovery.stranded.is_empty() {
                tracing::warn!(stranded = ?recovery.stranded, "stacks are still stranded: tried again with a slow backoff");
            }
        }
        shown.set(|o| o.recovering = false);
        tracing::info!("the start-up recovery is done");
        daemon
    }
}

impl Daemon {
    /// The loop: cycles whenever the agent says a backup is due, never more often than
    /// `min_cycle_interval` (or `failure_cooldown` after a failure). At most
    /// `due_poll_interval` and at most [`RECOVER_EVERY`] apart, whatever the agent says, also
    /// with no agent or `enabled = false`, it runs [`Controller::recover`]. Returns when
    /// `cancel` fires, after any running cycle has resumed its stacks. Ticks the observer at
    /// least every [`TICK`] throughout.
    pub async fn run(mut self, cancel: &CancellationToken) {
        let config = self.controller.shared.config.clone();
        let agent = self.backup_agent();
        let mut not_before = self.first_allowed().await;
        let every = config.due_poll_interval.min(RECOVER_EVERY);
        let mut next_recovery = Instant::now() + every;
        loop {
            let wake = match &agent {
                Some(_) => {
                    let wait = not_before.saturating_duration_since(Instant::now());
                    let at = wall_clock_in(wait);
                    self.controller
                        .shared
                        .shown
                        .set(|o| o.next_check_at = Some(at));
                    not_before.min(next_recovery)
                }
                None => next_recovery,
            };
            let woke = self.ticking(async {
                tokio::select! {
                    () = sleep_until(wake) => true,
                    () = cancel.cancelled() => false,
                }
            });
            if !woke.await {
                return;
            }
            if Instant::now() >= next_recovery {
                // SPEC §2 rules 6 and 9: whatever the agent says.
                self.recover(cancel).await;
                next_recovery = Instant::now() + every;
            }
            if cancel.is_cancelled() {
                return;
            }
            let Some(agent) = &agent else {
                continue;
            };
            if Instant::now() < not_before {
                continue;
            }
            not_before = match self.cycle_if_due(agent, cancel).await {
                // The cycle just ended: its whole gap is ahead.
                Some(record) => after(self.gap_after(&record)),
                None => after(config.due_poll_interval),
            };
            if cancel.is_cancelled() {
                return;
            }
        }
    }

    /// The agent to back up with, or `None` when the loop only recovers (logged).
    fn backup_agent(&self) -> Option<Arc<dyn AgentApi>> {
        let shared = &self.controller.shared;
        let why = match (&shared.parts.agent, shared.config.enabled) {
            (Some(agent), true) => return Some(agent.clone()),
            (None, _) => "[agent] is not configured (the guest is not provisioned)",
            (Some(_), false) => "quiesce.enabled = false",
        };
        tracing::info!(
            "the backup loop is off: {why}; markers and stranded stacks are still looked after"
        );
        None
    }

    /// Asks the agent whether a backup is due and runs a cycle if it is; its record.
    async fn cycle_if_due(
        &mut self,
        agent: &Arc<dyn AgentApi>,
        cancel: &CancellationToken,
    ) -> Option<CycleRecord> {
        let due = self.ticking(async {
            tokio::select! {
                due = agent.backup_due_checked() => Some(due),
                () = cancel.cancelled() => None,
            }
        });
        match due.await? {
            Ok(answered) => {
                self.ignored(answered.ignored);
                if !answered.answer.due {
                    return None;
                }
            }
            Err(e) => {
                tracing::warn!("{}", error_chain(&e));
                return None;
            }
        }
        tracing::info!("the agent says a backup is due");
        let controller = self.controller.clone();
        match self.ticking(controller.run_cycle(cancel)).await {
            Ok(record) => return Some(record),
            Err(CycleError::MarkerPresent { .. }) => {
                // SPEC §2 rule 9: left by another process that died; it holds no lock
                // any more.
                self.recover(cancel).await;
            }
            // Logged once when the verdict changed, and shown; the loop goes on recovering.
            Err(CycleError::StateDirUnfit(_) | CycleError::Cancelled) => {}
            Err(e) => tracing::warn!("cycle not started: {}", error_chain(&e)),
        }
        None
    }

    /// One recovery ([`Controller::recover`]), quiet while another process holds the lock; a
    /// lasting problem (the lock cannot be taken, the marker cannot be read or removed) is
    /// logged once and shown ([`crate::Overview::state_problem`]).
    async fn recover(&mut self, cancel: &CancellationToken) -> Option<Recovery> {
        let controller = self.controller.clone();
        let shown = &self.controller.shared.shown;
        let recovery = match self.ticking(controller.recover(cancel)).await {
            Ok(recovery) => recovery,
            Err(CycleError::Busy(_)) => return None,
            Err(e) => {
                crate::health::recovery_problem(shown, Some(error_chain(&e)));
                return None;
            }
        };
        if let Some(record) = &recovery.record {
            tracing::warn!(cycle = %record.cycle_id, stranded = ?record.stranded, "recovered the marker of a process that died");
        }
        let problems: Vec<String> = recovery.problems.iter().map(|e| error_chain(e)).collect();
        crate::health::recovery_problem(shown, (!problems.is_empty()).then(|| problems.join("; ")));
        Some(recovery)
    }

    /// The due answer's optional fields that did not parse (only `due` decides): warned
    /// about when they change.
    fn ignored(&mut self, ignored: Vec<IgnoredField>) {
        if ignored == self.due_ignored {
            return;
        }
        if !ignored.is_empty() {
            let fields: Vec<String> = ignored.iter().map(ToString::to_string).collect();
            tracing::warn!(
                "the agent's due answers hold optional fields that do not parse; ignored: {}",
                fields.join("; ")
            );
        }
        self.due_ignored = ignored;
    }

    /// Runs `work`, ticking the observer every [`TICK`] while it waits. The ticks come from
    /// this task: a loop stuck in a call that never yields stops them.
    async fn ticking<F: Future>(&self, work: F) -> F::Output {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                _ = ticks.tick() => self.controller.shared.shown.tick(),
            }
        }
    }

    /// When the first cycle may start: after the last one in the history, by the wall clock
    /// (SPEC §2 rule 7, also across restarts).
    async fn first_allowed(&self) -> Instant {
        let history = self.controller.shared.parts.history.clone();
        match crate::io::off_runtime(move || history.recent(1)).await {
            Ok(records) => match records.last() {
                Some(last) => {
                    let since = (Utc::now() - last.finished_at).to_std().unwrap_or_default();
                    after(self.gap_after(last).saturating_sub(since))
                }
                None => Instant::now(),
            },
            Err(e) => {
                tracing::warn!("reading the history: {}", error_chain(&e));
                Instant::now()
            }
        }
    }

    /// The least time from the end of `record`'s cycle to the start of the next (SPEC §2
    /// rule 7).
    fn gap_after(&self, record: &CycleRecord) -> Duration {
        let config = &self.controller.shared.config;
        if record.succeeded() {
            config.min_cycle_interval
        } else {
            config.failure_cooldown.max(config.min_cycle_interval)
        }
        .max(MIN_CYCLE_GAP)
    }
}

fn wall_clock_in(wait: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
}
