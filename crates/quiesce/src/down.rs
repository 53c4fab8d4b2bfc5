//! The down half's steps: stop the stacks, start the backup, poll it. Each runs in its own
//! task that the driver aborts when the bound, a cancellation or a panic ends the wait, so it
//! may stop at any await point; each returns the [`Event`] it saw.

use crate::cycle::{Level, SharedCycle};
use crate::machine::{Event, Observed};
use crate::Parts;
use chrono::Utc;
use felhom_agentapi::{AgentApi, BackupPhase, BackupStatus};
use felhom_marker::MarkedStack;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Stops every stack of the marker, `parallelism` at once; the next stop begins as soon as any
/// one ends.
pub(crate) async fn stop_all(parts: Parts, cycle: SharedCycle, parallelism: usize) -> Event {
    let stacks = cycle.lock().marker.stacks.clone();
    futures::stream::iter(stacks)
        .map(|stack| stop_one(&parts, &cycle, stack))
        .buffer_unordered(parallelism.max(1))
        .collect::<Vec<()>>()
        .await;
    Event::Stopped
}

/// Stops one stack, records its times and keeps the marker's service list true.
/// A stop failure does not end the cycle: the backup goes on (that stack is captured
/// crash-consistent, which is no worse than without the controller) and the stack is started
/// again with the others. See docs/decisions.md.
async fn stop_one(parts: &Parts, cycle: &SharedCycle, stack: MarkedStack) {
    if let Some(rec) = cycle.lock().stack_record(&stack.name) {
        rec.stop_started_at = Some(Utc::now());
    }
    let result = parts.stacks.stop(&stack.name).await;
    let mut cycle = cycle.lock();
    let services = match result {
        Ok(services) => services,
        Err(e) => {
            cycle.note(Level::Error, format!("stopping {}: {e}", stack.name));
            return;
        }
    };
    if let Some(rec) = cycle.stack_record(&stack.name) {
        rec.stopped_at = Some(Utc::now());
        if !services.is_empty() {
            rec.services = services.clone();
        }
    }
    // The services that really ran are the ones to start again; a service that started
    // between the listing and the stop is added to the marker.
    let marked = cycle
        .marker
        .stacks
        .iter_mut()
        .find(|s| s.name == stack.name);
    if let Some(marked) = marked.filter(|m| !services.is_empty() && m.services != services) {
        marked.services = services;
        cycle.save_marker(&*parts.marker);
    }
    tracing::info!(stack = %stack.name, "stack stopped");
}

/// `POST /backup`; the id goes into the marker at once, for a crash recovery to ask about.
pub(crate) async fn start_backup(
    agent: Arc<dyn AgentApi>,
    parts: Parts,
    cycle: SharedCycle,
) -> Event {
    let cycle_id = cycle.lock().record.cycle_id.clone();
    match agent.start_backup(&cycle_id).await {
        Ok(start) => {
            let mut cycle = cycle.lock();
            cycle.record.backup_id = Some(start.id.clone());
            cycle.marker.backup_id = Some(start.id.clone());
            cycle.save_marker(&*parts.marker);
            // Said once the id is on disk: whoever reads this line (an operator, a test that
            // kills the process on it) can count on a recovery being able to ask about it.
            tracing::info!(cycle = %cycle_id, backup = %start.id, adopted = start.adopted, "backup started");
            Event::BackupStarted
        }
        Err(e) => {
            cycle.lock().note(Level::Error, e.to_string());
            Event::BackupRefused
        }
    }
}

/// Waits `delay`, then one `GET /backup/status`, reduced to an event.
pub(crate) async fn poll_after(
    agent: Arc<dyn AgentApi>,
    cycle: SharedCycle,
    delay: Duration,
) -> Event {
    tokio::time::sleep(delay).await;
    match agent.backup_status().await {
        Ok(status) => Event::Status(observe(&cycle, &status)),
        Err(e) => {
            cycle.lock().note(Level::Warn, e.to_string());
            Event::StatusError
        }
    }
}

/// What an agent status means for our backup.
fn observe(cycle: &SharedCycle, status: &BackupStatus) -> Observed {
    let mut cycle = cycle.lock();
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
            let why = status.error.as_deref().unwrap_or("no reason given");
            cycle.note(
                Level::Warn,
                format!("the agent reports the backup failed: {why}"),
            );
            Observed::Failed
        }
        BackupPhase::Unknown(name) => {
            if !cycle.warned_unknown {
                cycle.warned_unknown = true;
                tracing::warn!("the agent reports an unknown phase {name:?}: treated as running");
            }
            Observed::Running
        }
    }
}
