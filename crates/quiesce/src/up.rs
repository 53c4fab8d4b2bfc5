//! The up half: start every stack left in the marker again, with retries, and clear the
//! marker. It runs in the driver itself and is never aborted; each stacks call has its own
//! bound and its own task (aborted at the bound, its child processes killed with it), so a
//! hung or panicking call is a failed attempt, not a stuck resume.
//!
//! An engine that cannot be reached is not a failed attempt (SPEC §2 rule 6): the start waits
//! for it (see `engine`), and a stack still waiting when that wait ends stays in the marker.

use crate::backoff::Backoff;
use crate::cycle::{Level, SharedCycle};
use crate::{humanize, Controller, CycleConfig};
use chrono::Utc;
use felhom_marker::{MarkedStack, StrandedStack};
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The longest pause between two start attempts of one stack.
const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(60);

/// How long an aborted call may take to be dropped before the next one begins anyway.
const ABORT_LANDS: Duration = Duration::from_secs(5);

/// How one bounded stacks call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The stack's own failure (or the bound): an attempt is spent.
    Failed(String),
    /// The engine cannot be reached: nothing is known of the stack, no attempt is spent.
    EngineAway(String),
}

/// How the starts of one stack ended.
enum Restart {
    Runs,
    Stranded {
        attempts: u32,
        last_error: String,
    },
    /// The engine was still away when the wait for it ended (the bound of `once`/`recover`,
    /// or a cancellation): the stack stays in the marker.
    Waiting,
}

impl Controller {
    /// Starts every stack of the marker again, `parallelism` at once. Stranded stacks (in the
    /// marker's order) go to the stranded list and leave the marker; the marker is cleared
    /// unless stacks still wait for the engine. Returns the stacks stranded now.
    pub(crate) async fn resume(
        &self,
        cycle: &SharedCycle,
        cancel: &CancellationToken,
    ) -> Vec<String> {
        let (cycle_id, stacks, settle) = {
            let cycle = cycle.lock();
            let id = cycle.record.cycle_id.clone();
            (id, cycle.marker.stacks.clone(), cycle.to_settle())
        };
        tracing::info!(cycle = %cycle_id, stacks = stacks.len(), "resuming stacks");
        // Unordered: a slot is given to the next stack (in name order) as soon as any start
        // ends, not when the oldest one does; with parallelism 1 this is the strict order.
        let mut results: Vec<(usize, MarkedStack, Restart)> =
            futures::stream::iter(stacks.into_iter().enumerate())
                .map(|(index, stack)| {
                    let settle = settle.contains(&stack.name);
                    async move {
                        let runs = self.restart_one(cycle, &stack, settle, cancel).await;
                        (index, stack, runs)
                    }
                })
                .buffer_unordered(self.config.parallelism.max(1))
                .collect()
                .await;
        // The record lists stranded stacks in the marker's order, whatever order they ended in.
        results.sort_unstable_by_key(|(index, _, _)| *index);
        let mut newly = Vec::new();
        let mut waiting = Vec::new();
        {
            let mut cycle = cycle.lock();
            for (_, stack, runs) in results {
                match runs {
                    Restart::Runs => {}
                    Restart::Stranded {
                        attempts,
                        last_error,
                    } => {
                        cycle.note(
                            Level::Error,
                            format!(
                                "stack {} STRANDED: it could not be started again",
                                stack.name
                            ),
                        );
                        cycle.record.stranded.push(stack.name.clone());
                        cycle.marker.stacks.retain(|s| s.name != stack.name);
                        newly.push(StrandedStack {
                            name: stack.name,
                            services: stack.services,
                            cycle_id: cycle_id.clone(),
                            since: Utc::now(),
                            attempts,
                            last_error: first_line(&last_error),
                        });
                    }
                    Restart::Waiting => waiting.push(stack.name),
                }
            }
        }
        // SPEC §2 rule 6: a stranded stack is state, kept until it runs; the marker is
        // released so that later backups are not blocked — but not while stacks still wait
        // for the engine: the marker is how the daemon or the next start finds them.
        if !newly.is_empty() {
            self.keep_stranded(cycle, &newly);
        }
        let mut c = cycle.lock();
        if waiting.is_empty() {
            match self.parts.marker.clear() {
                Ok(()) => c.cleared = true,
                Err(e) => {
                    let message = format!("clearing the marker: {e}");
                    c.note(Level::Error, message.clone());
                    self.marker_stuck(&c.record.cycle_id, message);
                }
            }
        } else {
            c.save_marker(&*self.parts.marker);
            c.note(
                Level::Error,
                format!(
                    "the docker engine could not be reached: the marker is kept for {}",
                    waiting.join(", ")
                ),
            );
        }
        c.record.stranded.clone()
    }

    /// Adds `newly` to the stranded list (under the cycle's lock) and to the live status.
    fn keep_stranded(&self, cycle: &SharedCycle, newly: &[StrandedStack]) {
        match self.parts.stranded.strand(newly) {
            Ok(list) => self.show_stranded(list),
            Err(e) => {
                cycle
                    .lock()
                    .note(Level::Error, format!("keeping the stranded stacks: {e}"));
                self.set_live(|l| {
                    for s in newly {
                        l.stranded_stacks.retain(|k| k.name != s.name);
                        l.stranded_stacks.push(s.clone());
                    }
                });
            }
        }
    }

    /// Starts one stack, retrying with backoff; keeps the marker right after each attempt.
    async fn restart_one(
        &self,
        cycle: &SharedCycle,
        stack: &MarkedStack,
        settle: bool,
        cancel: &CancellationToken,
    ) -> Restart {
        let config = &self.config;
        if settle {
            self.settle_stack(cycle, &stack.name).await;
        }
        let mut backoff = Backoff::new(config.restart_backoff, 2.0, RESTART_BACKOFF_CAP);
        let mut engine = crate::engine::backoff();
        let attempts = config.restart_attempts.max(1);
        let mut attempt = 1;
        let mut last_error = String::new();
        while attempt <= attempts {
            match self.start_call(&stack.name, &stack.services).await {
                Ok(()) => {
                    self.engine_answers();
                    cycle.lock().started(&stack.name, &*self.parts.marker);
                    tracing::info!(stack = %stack.name, attempt, "stack runs again");
                    self.no_longer_stranded(&stack.name);
                    return Restart::Runs;
                }
                Err(CallError::EngineAway(why)) => {
                    // Not an attempt: nothing is known of the stack while the engine is away.
                    if !self
                        .await_engine(Some(cycle), &why, &mut engine, cancel)
                        .await
                    {
                        return Restart::Waiting;
                    }
                    continue;
                }
                Err(CallError::Failed(e)) => {
                    self.engine_answers();
                    let message = format!(
                        "starting {} (attempt {attempt}/{attempts}): {e}",
                        stack.name
                    );
                    let mut cycle = cycle.lock();
                    cycle.note(Level::Warn, message);
                    if let Some(s) = cycle
                        .marker
                        .stacks
                        .iter_mut()
                        .find(|s| s.name == stack.name)
                    {
                        s.restart_attempts += 1;
                    }
                    cycle.save_marker(&*self.parts.marker);
                    last_error = e;
                }
            }
            if attempt < attempts {
                sleep(backoff.delay()).await;
                backoff.grow();
            }
            attempt += 1;
        }
        Restart::Stranded {
            attempts,
            last_error,
        }
    }

    /// One start of `name`'s `services`, bounded.
    pub(crate) async fn start_call(
        &self,
        name: &str,
        services: &[String],
    ) -> Result<(), CallError> {
        let stacks = self.parts.stacks.clone();
        let (name, services) = (name.to_owned(), services.to_vec());
        let call = async move { stacks.start(&name, &services).await };
        bounded(&self.config, "start", call).await
    }

    /// Stops `name` again and waits for it, bounded. The engine goes on shutting a container
    /// down once it has sent SIGTERM, whatever became of the command that asked, and such a
    /// container still shows as running: a `start` would do nothing, the wait would see it
    /// running, and a moment later it would exit — stranded, with the marker cleared. A stop
    /// waits for that shutdown to end, so the start that follows really starts the stack.
    async fn settle_stack(&self, cycle: &SharedCycle, name: &str) {
        tracing::info!(stack = %name, "its stop may still be under way: stopping it again before the start");
        let stacks = self.parts.stacks.clone();
        let owned = name.to_owned();
        let call = async move { stacks.stop(&owned).await.map(drop) };
        if let Err(CallError::Failed(problem) | CallError::EngineAway(problem)) =
            bounded(&self.config, "stop", call).await
        {
            // Not a reason to keep the stack down: its start follows all the same.
            let message = format!("settling {name} before its start: {problem}");
            cycle.lock().note(Level::Warn, message);
        }
    }
}

/// The first line of an error, for the stranded list (compose's stderr tail stays in the log).
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Runs one stacks call in its own task, bounded by `start_call_timeout`: a call that hangs or
/// panics is a failed call, never a stuck or dead resume. A call past its bound is aborted —
/// its future dropped, and with it the child process it waits on (`kill_on_drop`) — not left
/// running beside the next attempt.
pub(crate) async fn bounded(
    config: &CycleConfig,
    what: &str,
    call: impl Future<Output = Result<(), felhom_stacks::StacksError>> + Send + 'static,
) -> Result<(), CallError> {
    let mut task = tokio::spawn(call.in_current_span());
    match timeout(config.start_call_timeout, &mut task).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) if e.is_engine_unreachable() => Err(CallError::EngineAway(e.to_string())),
        Ok(Ok(Err(e))) => Err(CallError::Failed(e.to_string())),
        Ok(Err(join)) => Err(CallError::Failed(format!("the {what} task failed: {join}"))),
        Err(_) => {
            task.abort();
            // Wait for the abort to land (the call's future dropped, its child killed) before
            // the next attempt begins; never long.
            let _ = timeout(ABORT_LANDS, &mut task).await;
            Err(CallError::Failed(format!(
                "{what} did not return within {}",
                humanize(config.start_call_timeout)
            )))
        }
    }
}
