//! The daemon's loop and the one-shot cycle: when a cycle may run (SPEC §2 rules 3, 7, 9).

use crate::observer::TICK;
use crate::{Controller, CycleError};
use chrono::{DateTime, Utc};
use felhom_agentapi::Due;
use felhom_marker::{CycleRecord, Outcome};
use std::future::Future;
use std::time::Duration;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// The longest time between two looks for a marker that no live process holds (and at the
/// stranded stacks), whatever `due_poll_interval` is.
pub const TEND_EVERY: Duration = Duration::from_secs(30);

/// The least time between the end of a cycle and the start of the next, whatever
/// `min_cycle_interval` and `failure_cooldown` say: an agent that answers "due" on every poll
/// must not make the apps go down once a minute (docs/decisions.md).
pub const MIN_CYCLE_GAP: Duration = Duration::from_secs(5 * 60);

/// What [`Controller::run_once`] did.
#[derive(Debug, Clone)]
pub enum Once {
    /// The agent says no backup is due (and `force` was not given): nothing was stopped.
    NotDue(Due),
    /// A cycle ran; its record.
    Ran(CycleRecord),
}

/// Whether `record` is a failed cycle: another outcome than `done`, or a stranded stack.
pub(crate) fn failed(record: &CycleRecord) -> bool {
    record.outcome != Outcome::Done || !record.stranded.is_empty()
}

impl Controller {
    /// The daemon's loop: recovery first, then cycles whenever the agent says a backup is due,
    /// never more often than `min_cycle_interval` (or `failure_cooldown` after a failure).
    /// On every tick of the loop — at most `due_poll_interval` and at most [`TEND_EVERY`]
    /// apart, whatever the agent says, also with no agent or `enabled = false` — it recovers
    /// a marker that no live process holds and tries the stranded stacks whose time has come.
    /// Returns when `cancel` fires, after any running cycle has resumed its stacks. Ticks the
    /// observer at least every [`TICK`] throughout.
    pub async fn run(&self, cancel: &CancellationToken) {
        self.ticking(self.tend(cancel)).await;
        match self.ticking(self.retry_stranded(cancel)).await {
            Ok(still) if !still.is_empty() => {
                tracing::warn!(stranded = ?still, "stacks are still stranded: tried again with a slow backoff")
            }
            Ok(_) | Err(CycleError::Busy(_)) => {}
            Err(e) => tracing::error!("the stranded stacks: {e}"),
        }
        let agent = match (&self.parts.agent, self.config.enabled) {
            (Some(agent), true) => Some(agent.clone()),
            (agent, _) => {
                let why = if agent.is_none() {
                    "[agent] is not configured (the guest is not provisioned)"
                } else {
                    "quiesce.enabled = false"
                };
                tracing::info!("the backup loop is off: {why}; markers and stranded stacks are still looked after");
                None
            }
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
        let tend_every = self.config.due_poll_interval.min(TEND_EVERY);
        let mut next_tend = Instant::now() + tend_every;
        loop {
            let wake = match &agent {
                Some(_) => {
                    let wait = not_before.saturating_duration_since(Instant::now());
                    self.set_live(|l| l.next_check_at = Some(wall_clock_in(wait)));
                    not_before.min(next_tend)
                }
                None => next_tend,
            };
            let woke = self
                .ticking(async {
                    tokio::select! {
                        () = sleep_until(wake) => true,
                        () = cancel.cancelled() => false,
                    }
                })
                .await;
            if !woke {
                return;
            }
            if Instant::now() >= next_tend {
                // SPEC §2 rules 6 and 9: whatever the agent says.
                self.ticking(self.tend(cancel)).await;
                next_tend = Instant::now() + tend_every;
                if cancel.is_cancelled() {
                    return;
                }
            }
            let Some(agent) = &agent else {
                continue;
            };
            if Instant::now() < not_before {
                continue;
            }
            let due = self
                .ticking(async {
                    tokio::select! {
                        due = agent.backup_due() => Some(due),
                        () = cancel.cancelled() => None,
                    }
                })
                .await;
            let Some(due) = due else {
                return;
            };
            not_before = crate::after(self.config.due_poll_interval);
            match due {
                Ok(due) if due.due => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!("{e}");
                    continue;
                }
            }
            tracing::info!("the agent says a backup is due");
            match self.ticking(self.run_cycle(cancel)).await {
                Ok(record) => not_before = self.next_allowed(&record),
                Err(CycleError::MarkerPresent { .. }) => {
                    // SPEC §2 rule 9: left by another process that died; it holds no lock
                    // any more.
                    self.ticking(self.tend(cancel)).await;
                }
                Err(e) => tracing::warn!("cycle not started: {e}"),
            }
            if cancel.is_cancelled() {
                return;
            }
        }
    }

    /// `once`: asks the agent whether a backup is due — even with `force`, whose answer is
    /// then ignored, so that a wrong pin, token or url fails here, before anything is
    /// stopped, not at `POST /backup` with the stacks down — and runs one cycle if it is.
    pub async fn run_once(
        &self,
        force: bool,
        cancel: &CancellationToken,
    ) -> Result<Once, CycleError> {
        let agent = self.parts.agent.clone().ok_or(CycleError::NoAgent)?;
        let due = agent.backup_due().await?;
        if !force && !due.due {
            return Ok(Once::NotDue(due));
        }
        Ok(Once::Ran(self.run_cycle(cancel).await?))
    }

    /// Crash recovery whose failure is logged, not returned: the daemon goes on. [`run`]
    /// begins with the same look (a marker no live process holds, the stranded stacks); an
    /// embedder that must know when it is done (systemd's `READY=1`) calls this first.
    ///
    /// [`run`]: Controller::run
    pub async fn recover_logged(&self, cancel: &CancellationToken) {
        self.ticking(self.tend(cancel)).await;
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
                _ = ticks.tick() => self.parts.observer.tick(),
            }
        }
    }

    /// When the next cycle may start after `record` (SPEC §2 rule 7).
    fn next_allowed(&self, record: &CycleRecord) -> Instant {
        let gap = if failed(record) {
            self.config
                .failure_cooldown
                .max(self.config.min_cycle_interval)
        } else {
            self.config.min_cycle_interval
        }
        .max(MIN_CYCLE_GAP);
        let since = (Utc::now() - record.finished_at)
            .to_std()
            .unwrap_or_default();
        crate::after(gap.saturating_sub(since))
    }
}

fn wall_clock_in(wait: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
}
