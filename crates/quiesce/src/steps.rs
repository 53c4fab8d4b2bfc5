//! The down half's steps: stop the stacks (after the `pre-snapshot` hooks of `hooks.rs`),
//! start the backup, poll it. Each runs in its own
//! task, which the driver aborts when the bound, a cancellation or a panic ends the wait, so
//! it may stop at any await point. Each sends what it does to the driver as it happens
//! ([`Progress`]) and returns the [`Event`] it saw; it holds nothing of the cycle's.

use crate::cycle::Recheck;
use crate::error_chain;
use crate::machine::{Event, Observed};
use crate::progress::{Level, Progress, Reporter};
use chrono::{DateTime, Utc};
use felhom_agentapi::{AgentApi, BackupPhase, BackupStatus};
use felhom_stacks::{ContainerRef, Slots, Stacks};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How many times one stack is stopped in a row when containers started meanwhile (someone
/// else's start, a restart policy): after that the verdict tells what ran.
const STOP_ROUNDS: usize = 3;

/// Stops the stacks of `groups` (each with the services its stop leaves running), a group
/// after the previous one's stops ended (`felhom.stop-order`, the lowest first); within a
/// group `parallelism` stacks at once (each one's stop calls also hold one of `slots`), the
/// next stop beginning as soon as any one ends.
pub(crate) async fn stop_all(
    stacks: Arc<dyn Stacks>,
    groups: Vec<Vec<(String, BTreeSet<String>)>>,
    parallelism: usize,
    slots: Slots,
    report: Reporter,
) -> Event {
    for group in groups {
        futures::stream::iter(group)
            .map(|(stack, keep)| stop_one(&*stacks, stack, keep, &slots, &report))
            .buffer_unordered(parallelism.max(1))
            .collect::<Vec<()>>()
            .await;
    }
    Event::Stopped
}

/// Stops one stack: what runs of it now is recorded in the marker (and its stop as begun)
/// before the first stop call; a container that started meanwhile is recorded, then
/// stopped too. A stop failure does not end the cycle: the backup goes on (that stack is
/// captured crash-consistent, which is no worse than without the controller; its verdict says
/// so) and the stack is started again with the others. See docs/decisions.md. The containers
/// of the services in `keep` (kept running by their labels) are not the stop's.
async fn stop_one(
    stacks: &dyn Stacks,
    stack: String,
    keep: BTreeSet<String>,
    slots: &Slots,
    report: &Reporter,
) {
    let mut recorded: Vec<ContainerRef> = Vec::new();
    let mut began = false;
    for round in 0..STOP_ROUNDS {
        let running = match stacks.running_containers(&stack).await {
            Ok(mut running) => {
                running.retain(|c| !keep.contains(&c.service));
                running
            }
            Err(e) => {
                let error = format!("listing its running containers: {}", error_chain(&e));
                return stop_failed(report, stack, error, began);
            }
        };
        if running.is_empty() {
            if round == 0 {
                already_down(report, stack);
            }
            return;
        }
        if round > 0 {
            let ran: Vec<(ContainerRef, Option<DateTime<Utc>>)> =
                running.iter().map(|c| (c.clone(), None)).collect();
            report.send(Progress::CameBack {
                stack: stack.clone(),
                containers: ran,
            });
        }
        let new: Vec<ContainerRef> = running
            .iter()
            .filter(|c| !recorded.iter().any(|r| r.id == c.id))
            .cloned()
            .collect();
        if !new.is_empty() {
            if !report.record(&stack, new.clone()).await {
                let error = "its containers could not be recorded in the marker".to_owned();
                return stop_failed(report, stack, error, began);
            }
            recorded.extend(new);
        }
        began = true;
        if !stop_round(stacks, &stack, &running, slots, report).await {
            return;
        }
    }
    let message = format!(
        "stack {stack}: containers kept starting again after {STOP_ROUNDS} stops: going on"
    );
    report.note(Level::Warn, message);
}

/// Nothing of `stack` runs any more: nothing to stop, and nothing to start; it is down from
/// now on.
fn already_down(report: &Reporter, stack: String) {
    report.send(Progress::StopBegan {
        stack: stack.clone(),
        at: Utc::now(),
    });
    report.send(Progress::Stopped {
        stack,
        report: Default::default(),
        at: Utc::now(),
    });
}

/// One stop of `containers` of `stack`: its beginning, then its end or its failure,
/// reported. Whether it ended.
async fn stop_round(
    stacks: &dyn Stacks,
    stack: &str,
    containers: &[ContainerRef],
    slots: &Slots,
    report: &Reporter,
) -> bool {
    report.send(Progress::StopBegan {
        stack: stack.to_owned(),
        at: Utc::now(),
    });
    match stacks.stop_containers(stack, containers, slots).await {
        Ok(stopped) => {
            report.send(Progress::Stopped {
                stack: stack.to_owned(),
                report: stopped,
                at: Utc::now(),
            });
            true
        }
        Err(e) => {
            stop_failed(report, stack.to_owned(), error_chain(&e), true);
            false
        }
    }
}

/// `stack`'s stop failed; `began`: whether a stop call of it had begun.
fn stop_failed(report: &Reporter, stack: String, error: String, began: bool) {
    report.send(Progress::StopFailed {
        stack,
        error,
        began,
    });
}

/// Looks at each stopped stack again before the backup begins: a container that ran since
/// its stop, or a new container of the project, is recorded and stopped again (its stack's
/// verdict then counts from that stop). Errors are noted: the verdict will tell.
pub(crate) async fn recheck(
    stacks: &dyn Stacks,
    stopped: Vec<Recheck>,
    slots: &Slots,
    report: &Reporter,
) {
    let checks = stopped.iter().map(|r| async move {
        let (stack, keep) = (&r.stack, &r.keep);
        match stacks.check_down(stack, &r.containers, r.since).await {
            Ok(mut check) => {
                // The containers of services kept running are not the stop's: they run.
                check.leave_out(|c| keep.contains(&c.service));
                if check.stayed_down() {
                    return;
                }
                let mut again: Vec<ContainerRef> =
                    check.ran.iter().map(|(c, _)| c.clone()).collect();
                again.extend(check.appeared.iter().cloned());
                let mut ran: Vec<(ContainerRef, Option<DateTime<Utc>>)> = check
                    .ran
                    .into_iter()
                    .map(|(c, at)| (c, Some(at)))
                    .collect();
                ran.extend(check.appeared.iter().map(|c| (c.clone(), None)));
                report.send(Progress::CameBack {
                    stack: stack.clone(),
                    containers: ran,
                });
                if !check.appeared.is_empty() && !report.record(stack, check.appeared).await {
                    let error = "the containers that appeared could not be recorded in the marker: not stopped".to_owned();
                    return stop_failed(report, stack.clone(), error, true);
                }
                stop_round(stacks, stack, &again, slots, report).await;
            }
            Err(e) => report.note(
                Level::Warn,
                format!(
                    "stack {stack}: whether it stayed down before the backup cannot be told: {}",
                    error_chain(&e)
                ),
            ),
        }
    });
    futures::future::join_all(checks).await;
}

/// The re-check of the stopped stacks ([`recheck`]), then `POST /backup` for `cycle_id`.
pub(crate) async fn start_backup(
    agent: Arc<dyn AgentApi>,
    stacks: Arc<dyn Stacks>,
    cycle_id: String,
    stopped: Vec<Recheck>,
    slots: Slots,
    report: Reporter,
) -> Event {
    recheck(&*stacks, stopped, &slots, &report).await;
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

/// Waits `delay`, then one `GET /backup/status` about backup `ours`, reduced to an event. With
/// a `wait`, the long-poll of SPEC §3: an agent with the extension holds the answer until its
/// phase differs from `last` or `wait` has passed; one without it answers at once. Whether the
/// answer was held — it came with another phase, or only after half the wait — goes with it,
/// so that the driver asks again at once, or falls back to its interval.
pub(crate) async fn poll_after(
    agent: Arc<dyn AgentApi>,
    ours: Option<String>,
    delay: Duration,
    last: BackupPhase,
    wait: Duration,
    report: Reporter,
) -> Event {
    tokio::time::sleep(delay).await;
    let asked = tokio::time::Instant::now();
    match agent.backup_status_wait(&last, wait).await {
        Ok(answered) => {
            let status = answered.answer;
            let held = status.phase != last || (!wait.is_zero() && asked.elapsed() >= wait / 2);
            let observed = observe(ours.as_deref(), &status);
            report.send(Progress::StatusSeen {
                observed,
                status,
                ignored: answered.ignored,
                held,
            });
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
