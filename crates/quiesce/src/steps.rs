//! The down half's steps: stop the stacks, start the backup, poll it. Each runs in its own
//! task, which the driver aborts when the bound, a cancellation or a panic ends the wait, so
//! it may stop at any await point. Each sends what it does to the driver as it happens
//! ([`Progress`]) and returns the [`Event`] it saw; it holds nothing of the cycle's.

use crate::error_chain;
use crate::machine::{Event, Observed};
use crate::progress::{Level, Progress, Reporter};
use chrono::Utc;
use felhom_agentapi::{AgentApi, BackupPhase, BackupStatus};
use felhom_marker::MarkedStack;
use felhom_stacks::Stacks;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Stops every stack of the marker, `parallelism` at once; the next stop begins as soon as any
/// one ends.
pub(crate) async fn stop_all(
    stacks: Arc<dyn Stacks>,
    marked: Vec<MarkedStack>,
    parallelism: usize,
    report: Reporter,
) -> Event {
    futures::stream::iter(marked)
        .map(|stack| stop_one(&*stacks, stack.name, &report))
        .buffer_unordered(parallelism.max(1))
        .collect::<Vec<()>>()
        .await;
    Event::Stopped
}

/// Stops one stack. A stop failure does not end the cycle: the backup goes on (that stack is
/// captured crash-consistent, which is no worse than without the controller) and the stack is
/// started again with the others. See docs/decisions.md.
async fn stop_one(stacks: &dyn Stacks, stack: String, report: &Reporter) {
    let at = Utc::now();
    report.send(Progress::StopBegan {
        stack: stack.clone(),
        at,
    });
    match stacks.stop(&stack).await {
        Ok(services) => {
            tracing::info!(stack = %stack, "stack stopped");
            report.send(Progress::Stopped {
                stack,
                services,
                at: Utc::now(),
            });
        }
        Err(e) => report.send(Progress::StopFailed {
            stack,
            error: error_chain(&e),
        }),
    }
}

/// `POST /backup` for `cycle_id`.
pub(crate) async fn start_backup(
    agent: Arc<dyn AgentApi>,
    cycle_id: String,
    report: Reporter,
) -> Event {
    match agent.start_backup(&cycle_id).await {
        Ok(start) => {
            report.send(Progress::BackupStarted {
                id: start.id,
                adopted: start.adopted,
            });
            Event::BackupStarted
        }
        Err(e) => {
            report.note(Level::Error, error_chain(&e));
            Event::BackupRefused
        }
    }
}

/// Waits `delay`, then one `GET /backup/status` about backup `ours`, reduced to an event.
pub(crate) async fn poll_after(
    agent: Arc<dyn AgentApi>,
    ours: Option<String>,
    delay: Duration,
    report: Reporter,
) -> Event {
    tokio::time::sleep(delay).await;
    match agent.backup_status().await {
        Ok(status) => {
            let observed = observe(ours.as_deref(), &status);
            report.send(Progress::StatusSeen { observed, status });
            Event::Status(observed)
        }
        Err(e) => {
            report.note(Level::Warn, error_chain(&e));
            Event::StatusError
        }
    }
}

/// What an agent status means for our backup `ours`.
pub(crate) fn observe(ours: Option<&str>, status: &BackupStatus) -> Observed {
    if ours.is_none() || status.id.as_deref() != ours {
        return Observed::Lost;
    }
    match status.phase {
        BackupPhase::Idle => Observed::Lost,
        BackupPhase::Running | BackupPhase::Unknown(_) => Observed::Running,
        BackupPhase::Snapshotted => Observed::Snapshotted,
        BackupPhase::Done => Observed::Done,
        BackupPhase::Failed => Observed::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: Option<&str>, phase: BackupPhase) -> BackupStatus {
        BackupStatus {
            id: id.map(str::to_owned),
            phase,
            started_at: None,
            snapshot_at: None,
            finished_at: None,
            error: None,
        }
    }

    #[test]
    fn only_our_backup_counts_and_an_unknown_phase_is_running() {
        let ours = Some("b-1");
        for (phase, observed) in [
            (BackupPhase::Running, Observed::Running),
            (BackupPhase::Unknown("verifying".into()), Observed::Running),
            (BackupPhase::Snapshotted, Observed::Snapshotted),
            (BackupPhase::Done, Observed::Done),
            (BackupPhase::Failed, Observed::Failed),
            (BackupPhase::Idle, Observed::Lost),
        ] {
            assert_eq!(
                observe(ours, &status(ours, phase.clone())),
                observed,
                "{phase:?}"
            );
        }
        assert_eq!(
            observe(ours, &status(Some("b-other"), BackupPhase::Done)),
            Observed::Lost
        );
        assert_eq!(
            observe(None, &status(None, BackupPhase::Done)),
            Observed::Lost
        );
    }
}
