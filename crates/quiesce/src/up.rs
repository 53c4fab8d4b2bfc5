//! The up half: start every stack left in the marker again, with retries, and clear the
//! marker. It runs in the driver itself and is never aborted; each stacks call has its own
//! bound and its own task (aborted at the bound), so a hung or panicking call is a failed
//! attempt, not a stuck resume.

use crate::backoff::Backoff;
use crate::cycle::{Level, SharedCycle};
use crate::{humanize, CycleConfig, Parts};
use felhom_marker::MarkedStack;
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;
use tokio::time::{sleep, timeout};
use tracing::Instrument;

/// The longest pause between two start attempts of one stack.
const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Starts every stack of the marker again, `parallelism` at once; records the stranded ones
/// (in the marker's order) and clears the marker. Returns the stranded stacks.
pub(crate) async fn resume(
    parts: &Parts,
    config: &CycleConfig,
    cycle: &SharedCycle,
) -> Vec<String> {
    let (cycle_id, stacks, settle) = {
        let cycle = cycle.lock();
        let id = cycle.record.cycle_id.clone();
        (id, cycle.marker.stacks.clone(), cycle.to_settle())
    };
    tracing::info!(cycle = %cycle_id, stacks = stacks.len(), "resuming stacks");
    // Unordered: a slot is given to the next stack (in name order) as soon as any start
    // ends, not when the oldest one does; with parallelism 1 this is the strict order.
    let mut results: Vec<(usize, String, bool)> =
        futures::stream::iter(stacks.into_iter().enumerate())
            .map(|(index, stack)| {
                let settle = settle.contains(&stack.name);
                async move {
                    let name = stack.name.clone();
                    let runs = restart_one(parts, config, cycle, stack, settle).await;
                    (index, name, runs)
                }
            })
            .buffer_unordered(config.parallelism.max(1))
            .collect()
            .await;
    // The record lists stranded stacks in the marker's order, whatever order they ended in.
    results.sort_unstable_by_key(|(index, _, _)| *index);
    let mut cycle = cycle.lock();
    for (_, name, runs) in results {
        if !runs {
            cycle.note(
                Level::Error,
                format!("stack {name} STRANDED: it could not be started again"),
            );
            cycle.record.stranded.push(name);
        }
    }
    // SPEC §2 rule 6: stranded stacks are reported, and the marker is released so that later
    // backups are not blocked.
    match parts.marker.clear() {
        Ok(()) => cycle.cleared = true,
        Err(e) => cycle.note(Level::Error, format!("clearing the marker: {e}")),
    }
    cycle.record.stranded.clone()
}

/// Starts one stack, retrying with backoff; keeps the marker right after each attempt.
/// Whether the stack runs.
async fn restart_one(
    parts: &Parts,
    config: &CycleConfig,
    cycle: &SharedCycle,
    stack: MarkedStack,
    settle: bool,
) -> bool {
    if settle {
        settle_stack(parts, config, cycle, &stack.name).await;
    }
    let mut backoff = Backoff::new(config.restart_backoff, 2.0, RESTART_BACKOFF_CAP);
    let attempts = config.restart_attempts.max(1);
    for attempt in 1..=attempts {
        let stacks = parts.stacks.clone();
        let (name, services) = (stack.name.clone(), stack.services.clone());
        let call = async move { stacks.start(&name, &services).await };
        let result = bounded(config, "start", call).await;
        if note_start(parts, cycle, &stack.name, attempt, attempts, result) {
            return true;
        }
        if attempt < attempts {
            sleep(backoff.delay()).await;
            backoff.grow();
        }
    }
    false
}

/// Keeps the result of one start attempt in the marker and the record; whether the stack runs.
fn note_start(
    parts: &Parts,
    cycle: &SharedCycle,
    name: &str,
    attempt: u32,
    attempts: u32,
    result: Result<(), String>,
) -> bool {
    let mut cycle = cycle.lock();
    match result {
        Ok(()) => {
            cycle.started(name, &*parts.marker);
            tracing::info!(stack = %name, attempt, "stack runs again");
            true
        }
        Err(e) => {
            let message = format!("starting {name} (attempt {attempt}/{attempts}): {e}");
            cycle.note(Level::Warn, message);
            if let Some(s) = cycle.marker.stacks.iter_mut().find(|s| s.name == name) {
                s.restart_attempts += 1;
            }
            cycle.save_marker(&*parts.marker);
            false
        }
    }
}

/// Stops `name` again and waits for it, bounded. The engine goes on shutting a container down
/// once it has sent SIGTERM, whatever became of the command that asked, and such a container
/// still shows as running: a `start` would do nothing, the wait would see it running, and a
/// moment later it would exit — stranded, with the marker cleared. A stop waits for that
/// shutdown to end, so the start that follows really starts the stack.
async fn settle_stack(parts: &Parts, config: &CycleConfig, cycle: &SharedCycle, name: &str) {
    tracing::info!(stack = %name, "its stop may still be under way: stopping it again before the start");
    let stacks = parts.stacks.clone();
    let owned = name.to_owned();
    let call = async move { stacks.stop(&owned).await.map(drop) };
    if let Err(problem) = bounded(config, "stop", call).await {
        // Not a reason to keep the stack down: its start follows all the same.
        let message = format!("settling {name} before its start: {problem}");
        cycle.lock().note(Level::Warn, message);
    }
}

/// Runs one stacks call in its own task, bounded by `start_call_timeout`: a call that hangs or
/// panics is a failed call, never a stuck or dead resume. A call past its bound is aborted,
/// not left running beside the next attempt.
async fn bounded(
    config: &CycleConfig,
    what: &str,
    call: impl Future<Output = Result<(), felhom_stacks::StacksError>> + Send + 'static,
) -> Result<(), String> {
    let mut task = tokio::spawn(call.in_current_span());
    match timeout(config.start_call_timeout, &mut task).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(join)) => Err(format!("the {what} task failed: {join}")),
        Err(_) => {
            task.abort();
            Err(format!(
                "{what} did not return within {}",
                humanize(config.start_call_timeout)
            ))
        }
    }
}
