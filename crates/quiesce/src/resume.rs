//! The up half: start every stack left in the marker again, with retries. It runs beside the
//! driver (never in a task the driver could abort) and tells it each stack's fate as
//! [`Progress`]; the driver keeps the marker. Each stacks call has its own bound and its own
//! task (aborted at the bound, its child processes killed with it), so a hung or panicking
//! call is a failed attempt, not a stuck resume.
//!
//! An engine that cannot be reached is not a failed attempt (SPEC §2 rule 6): the start waits
//! for it (see `engine`), and a stack still waiting when that wait ends stays in the marker.

use crate::backoff::Backoff;
use crate::controller::Shared;
use crate::engine::{self, Waiting};
use crate::progress::{Level, Progress, Reporter};
use crate::{error_chain, humanize, CycleConfig, LANDING};
use chrono::Utc;
use felhom_marker::{MarkedStack, StrandedStack};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The longest pause between two start attempts of one stack.
const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(60);

/// What a resume brings back.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) cycle_id: String,
    /// The marker's stacks, in its order.
    pub(crate) stacks: Vec<MarkedStack>,
    /// Those whose stop may still be under way: stopped again (waited for) before the start.
    pub(crate) settle: BTreeSet<String>,
}

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

/// Starts every stack of `plan` again, `parallelism` at once, and reports the stranded ones
/// (in the marker's order) at the end.
pub(crate) async fn resume(
    shared: &Shared,
    plan: Plan,
    report: &Reporter,
    cancel: &CancellationToken,
) {
    tracing::info!(cycle = %plan.cycle_id, stacks = plan.stacks.len(), "resuming stacks");
    let down = Mutex::new(Waiting {
        cycle_id: Some(plan.cycle_id.clone()),
        stacks: plan.stacks.iter().map(|s| s.name.clone()).collect(),
    });
    // Unordered: a slot is given to the next stack (in the marker's order) as soon as any
    // start ends, not when the oldest one does; with parallelism 1 this is the strict order.
    let mut ended: Vec<(usize, MarkedStack, Restart)> =
        futures::stream::iter(plan.stacks.into_iter().enumerate())
            .map(|(index, stack)| {
                let settle = plan.settle.contains(&stack.name);
                let down = &down;
                async move {
                    let ended = restart(shared, &stack, settle, report, down, cancel).await;
                    (index, stack, ended)
                }
            })
            .buffer_unordered(shared.config.parallelism.max(1))
            .collect()
            .await;
    ended.sort_unstable_by_key(|(index, _, _)| *index);
    for (_, stack, ended) in ended {
        if let Restart::Stranded {
            attempts,
            last_error,
        } = ended
        {
            report.send(Progress::Stranded(StrandedStack {
                name: stack.name,
                services: stack.services,
                cycle_id: plan.cycle_id.clone(),
                since: Utc::now(),
                attempts,
                last_error: first_line(&last_error),
            }));
        }
    }
}

/// Starts one stack, retrying with backoff; each attempt's end is reported at once.
async fn restart(
    shared: &Shared,
    stack: &MarkedStack,
    settle: bool,
    report: &Reporter,
    down: &Mutex<Waiting>,
    cancel: &CancellationToken,
) -> Restart {
    let config = &shared.config;
    if settle {
        settle_stack(shared, &stack.name, report).await;
    }
    let mut backoff = Backoff::new(config.restart_backoff, 2.0, RESTART_BACKOFF_CAP);
    let mut looks = engine::looks();
    let attempts = config.restart_attempts.max(1);
    let mut attempt = 1;
    let mut last_error = String::new();
    while attempt <= attempts {
        match start_call(shared, &stack.name, &stack.services).await {
            Ok(()) => {
                shared.engine.answers(&shared.shown);
                report.send(Progress::StackBack {
                    stack: stack.name.clone(),
                    attempt,
                    at: Utc::now(),
                });
                lock(down).stacks.retain(|s| *s != stack.name);
                shared.stranded.runs(&shared.shown, &stack.name).await;
                return Restart::Runs;
            }
            Err(CallError::EngineAway(why)) => {
                // Not an attempt: nothing is known of the stack while the engine is away.
                let waiting = lock(down).clone();
                let engine = &shared.engine;
                if !engine
                    .wait(&shared.shown, &waiting, &why, &mut looks, cancel)
                    .await
                {
                    return Restart::Waiting;
                }
                continue;
            }
            Err(CallError::Failed(error)) => {
                shared.engine.answers(&shared.shown);
                report.send(Progress::StartFailed {
                    stack: stack.name.clone(),
                    attempt,
                    attempts,
                    error: error.clone(),
                });
                last_error = error;
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

fn lock(down: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    down.lock().unwrap_or_else(|p| p.into_inner())
}

/// One start of `name`'s `services`, bounded by `start_call_timeout`.
pub(crate) async fn start_call(
    shared: &Shared,
    name: &str,
    services: &[String],
) -> Result<(), CallError> {
    let stacks = shared.parts.stacks.clone();
    let (name, services) = (name.to_owned(), services.to_vec());
    let call = async move { stacks.start(&name, &services).await };
    bounded(&shared.config, "start", call).await
}

/// Stops `name` again and waits for it, bounded. The engine goes on shutting a container
/// down once it has sent SIGTERM, whatever became of the command that asked, and such a
/// container still shows as running: a `start` would do nothing, the wait would see it
/// running, and a moment later it would exit — stranded, with the marker cleared. A stop
/// waits for that shutdown to end, so the start that follows really starts the stack.
async fn settle_stack(shared: &Shared, name: &str, report: &Reporter) {
    tracing::info!(stack = %name, "its stop may still be under way: stopping it again before the start");
    let stacks = shared.parts.stacks.clone();
    let owned = name.to_owned();
    let call = async move { stacks.stop(&owned).await.map(drop) };
    if let Err(CallError::Failed(problem) | CallError::EngineAway(problem)) =
        bounded(&shared.config, "stop", call).await
    {
        // Not a reason to keep the stack down: its start follows all the same.
        let message = format!("settling {name} before its start: {problem}");
        report.note(Level::Warn, message);
    }
}

/// The first line of an error, for the stranded list (compose's stderr tail stays in the log).
pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Runs one stacks call in its own task, bounded by `start_call_timeout`: a call that hangs or
/// panics is a failed call, never a stuck or dead resume. A call past its bound is aborted —
/// its future dropped, and with it the child process it waits on (`kill_on_drop`) — not left
/// running beside the next attempt.
async fn bounded(
    config: &CycleConfig,
    what: &str,
    call: impl Future<Output = Result<(), felhom_stacks::StacksError>> + Send + 'static,
) -> Result<(), CallError> {
    let mut task = tokio::spawn(call.in_current_span());
    match timeout(config.start_call_timeout, &mut task).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) if e.is_engine_unreachable() => Err(CallError::EngineAway(error_chain(&e))),
        Ok(Ok(Err(e))) => Err(CallError::Failed(error_chain(&e))),
        Ok(Err(join)) => Err(CallError::Failed(format!("the {what} task failed: {join}"))),
        Err(_) => {
            task.abort();
            // Let the abort land (the call's future dropped, its child killed) before the
            // next attempt begins; never long.
            let _ = timeout(LANDING, &mut task).await;
            Err(CallError::Failed(format!(
                "{what} did not return within {}",
                humanize(config.start_call_timeout)
            )))
        }
    }
}
