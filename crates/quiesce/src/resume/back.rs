//! One stack of a resume brought back: its check, if any, then its start, retried with
//! backoff — except where its containers were removed outside the controller and the plan
//! may not recreate them (a recovery): that stack is stranded at once and given up.

use super::{check_call, start_call, CallError, StackPlan, Wanted};
use crate::backoff::Backoff;
use crate::controller::Shared;
use crate::engine::{self, Waiting};
use crate::hooks::Launch;
use crate::progress::{Level, Progress, Reporter};
use chrono::Utc;
use felhom_stacks::{Slots, StartReport};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

/// The longest pause between two start attempts of one stack.
const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(60);

/// How the starts of a resume are made: the cycle's slots, and whether containers removed
/// meanwhile may be recreated (see [`super::Plan::recreate_vanished`]).
#[derive(Clone, Copy)]
pub(super) struct How<'a> {
    pub(super) slots: &'a Slots,
    pub(super) recreate_vanished: bool,
}

/// Why a stack whose containers were removed outside the controller is no longer retried,
/// and what the operator does about it.
pub(crate) fn given_up(stack: &str) -> String {
    format!(
        "its containers were removed outside the controller (docker compose down, docker rm) \
         and are not recreated; bring it up by hand if it should run (it then leaves the \
         stranded list), or `felhom-controller forget {stack}`"
    )
}

/// How the starts of one stack ended.
pub(super) enum Restart {
    Runs,
    /// Its stop never began: nothing to start.
    LeftAlone,
    Stranded {
        attempts: u32,
        last_error: String,
        /// Not retried any more, and why: its containers were removed outside the controller
        /// and the plan may not recreate them.
        given_up: Option<String>,
    },
    /// The engine was still away when the wait for it ended (the bound of `once`/`recover`,
    /// or a cancellation): the stack stays in the marker.
    Waiting,
}

/// One stack: its check, if any, then its start, retried with backoff; each attempt's end is
/// reported at once.
pub(super) async fn bring_back(
    shared: &Shared,
    plan: &StackPlan,
    how: How<'_>,
    report: &Reporter,
    down: &Mutex<Waiting>,
    cancel: &CancellationToken,
    on: &Launch<'_>,
) -> Restart {
    let name = &plan.stack.name;
    let Some(wanted) = checked(shared, plan, report).await else {
        on.issued();
        return Restart::LeftAlone;
    };
    on.issued();
    let config = &shared.config;
    let mut backoff = Backoff::new(config.restart_backoff, 2.0, RESTART_BACKOFF_CAP);
    let mut looks = engine::looks();
    let attempts = config.restart_attempts.max(1);
    let mut attempt = 1;
    let mut last_error = String::new();
    while attempt <= attempts {
        match start_call(shared, name, wanted, how.recreate_vanished, how.slots).await {
            Ok(started) => {
                runs(shared, name, &started, attempt, report, down).await;
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
            Err(CallError::Vanished(error)) => {
                failed(shared, name, (attempt, attempts), &error, report);
                // Another attempt would find them gone the same way; what an operator
                // removed is not ours to bring back.
                return Restart::Stranded {
                    attempts: attempt,
                    given_up: Some(given_up(name)),
                    last_error: error,
                };
            }
            Err(CallError::Failed(error)) => {
                failed(shared, name, (attempt, attempts), &error, report);
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
        given_up: None,
    }
}

/// The stack's check, where the plan has one (its verdict reported at once); then what to
/// start, or `None` — the stack is left alone (reported).
async fn checked<'p>(
    shared: &Shared,
    plan: &'p StackPlan,
    report: &Reporter,
) -> Option<&'p Wanted> {
    let name = &plan.stack.name;
    if let Some((containers, since)) = &plan.check {
        let check = check_call(shared, name, containers, *since).await;
        report.send(Progress::Checked {
            stack: name.clone(),
            check,
        });
    }
    if plan.start.is_none() {
        report.send(Progress::LeftAlone {
            stack: name.clone(),
        });
    }
    plan.start.as_ref()
}

/// The stack runs again: reported back at the moment its containers ran, off the list of
/// those the resume waits for and off the stranded list.
async fn runs(
    shared: &Shared,
    name: &str,
    started: &StartReport,
    attempt: u32,
    report: &Reporter,
    down: &Mutex<Waiting>,
) {
    shared.engine.answers(&shared.shown);
    noticed(name, started, report);
    // Back when its containers ran, not when the settle watch ended: that watch is the
    // cycle's time, not the app's downtime.
    report.send(Progress::StackBack {
        stack: name.to_owned(),
        attempt,
        at: started.ready_at.unwrap_or_else(Utc::now),
    });
    lock(down).stacks.retain(|s| s != name);
    shared.stranded.runs(&shared.shown, name).await;
}

/// One failed attempt (`attempt` of `attempts`), reported at once.
fn failed(
    shared: &Shared,
    name: &str,
    (attempt, attempts): (u32, u32),
    error: &str,
    report: &Reporter,
) {
    shared.engine.answers(&shared.shown);
    report.send(Progress::StartFailed {
        stack: name.to_owned(),
        attempt,
        attempts,
        error: error.to_owned(),
    });
}

/// What a successful start noticed that a person may want to know.
fn noticed(stack: &str, started: &StartReport, report: &Reporter) {
    if !started.recreated.is_empty() {
        let message = format!(
            "stack {stack}: containers of {} had vanished while it was down: recreated by compose",
            started.recreated.join(", ")
        );
        report.note(Level::Warn, message);
    }
    if !started.waited_for_stop.is_empty() {
        let names: Vec<&str> = started
            .waited_for_stop
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        tracing::info!(stack, containers = ?names, "waited for their stop in flight before the start");
    }
}

pub(super) fn lock(down: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    down.lock().unwrap_or_else(|p| p.into_inner())
}
