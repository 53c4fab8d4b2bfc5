//! The up half: bring every stack left in the marker back, with retries. It runs beside the
//! driver (never in a task the driver could abort) and tells it each stack's fate as
//! [`Progress`]; the driver keeps the marker. Each stacks call has its own bound and its own
//! task (aborted at the bound, its child processes killed with it), so a hung or panicking
//! call is a failed attempt, not a stuck resume.
//!
//! Every stack is launched at once: the cycle's [`Slots`] bound the engine's work (each
//! dependency level's start calls hold one), and a stack's wait for its containers to run,
//! become healthy and outlive `stacks.settle` holds none, so no stack waits for another's
//! health check. Where the agent reported the snapshot, a stack's start follows the engine's
//! check of it (the verdict's evidence), chained per stack so that one stack's check never
//! holds up another's start.
//!
//! An engine that cannot be reached is not a failed attempt (SPEC §2 rule 6): the start waits
//! for it (see `engine`), and a stack still waiting when that wait ends stays in the marker.
//!
//! `felhom.stop-order` (issue 23) groups the stacks: the highest order's starts first, and a
//! group's starts begin only when the previous group's have ended (each stack runs, is
//! stranded or waits for the engine). The `post-resume` hooks run beside the starts: a
//! stopped service's once its stack runs again, every other's once every start of the
//! resume has been issued; one at a time within a stack, never holding up a start.
//!
//! Containers removed outside the controller are recreated only where the plan says so (the
//! cycle's own resume: it just stopped them, and a removal then is an accident that would
//! leave the app down); elsewhere (a recovery) such a stack is stranded at once and given
//! up (`back`): what an operator removed stays removed.

mod back;

pub(crate) use back::given_up;
use back::{bring_back, How, Restart};

use crate::controller::Shared;
use crate::cycle::marked;
use crate::engine::Waiting;
use crate::hooks::{post_resume, Launch, PostRun};
use crate::policy::groups;
use crate::progress::{Progress, Reporter};
use crate::{error_chain, humanize, LANDING};
use chrono::{DateTime, Utc};
use felhom_marker::{MarkedStack, StrandedStack};
use felhom_stacks::{ContainerRef, DownCheck, Slots, StacksError, StartReport, StartRequest};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The bound of the check of a stack at the snapshot: a few inspects. Past it the verdict is
/// `unknown`, and the start goes ahead.
const CHECK_BOUND: Duration = Duration::from_secs(60);

/// What to start of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Exactly these containers. `in_flight`: their stop may still be under way (cut short,
    /// failed, or a crash), so a running one is waited for until it exits, never signalled
    /// again.
    Containers {
        containers: Vec<ContainerRef>,
        in_flight: bool,
    },
    /// The containers of these services as the engine has them now: a marker or stranded
    /// list written before container ids. Their stop may be in flight.
    Services(Vec<String>),
}

/// How one stack is brought back.
#[derive(Debug, Clone)]
pub(crate) struct StackPlan {
    /// The stack as the marker names it (with its `felhom.stop-order`: the highest group
    /// starts first).
    pub(crate) stack: MarkedStack,
    /// What to start; `None`: its stop never began, it is left as it is.
    pub(crate) start: Option<Wanted>,
    /// The check before its start, once the snapshot was reported: the containers its stop
    /// stopped, and since when the engine says they are down.
    pub(crate) check: Option<(Vec<ContainerRef>, DateTime<Utc>)>,
    /// Its `post-resume` hooks that are due.
    pub(crate) post_resume: Vec<PostRun>,
}

/// What a resume brings back.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) cycle_id: String,
    /// The marker's stacks, in the order their starts are launched.
    pub(crate) stacks: Vec<StackPlan>,
    /// The cycle's slots for engine work.
    pub(crate) slots: Slots,
    /// Containers removed meanwhile may be recreated (see
    /// [`StartRequest::recreate_vanished`]): true for the cycle's own resume only.
    pub(crate) recreate_vanished: bool,
}

/// How one bounded stacks call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The stack's own failure (or the bound): an attempt is spent.
    Failed(String),
    /// The engine cannot be reached: nothing is known of the stack, no attempt is spent.
    EngineAway(String),
    /// Containers to start were removed outside the controller and may not be recreated:
    /// another attempt would fail the same way.
    Vanished(String),
}

/// Brings every stack of `plan` back — in groups of their stop order, the highest first,
/// each group's stacks launched at once (the slots bound the engine's work) — runs the due
/// `post-resume` hooks beside the starts, and reports the stranded stacks (in the plan's
/// order) at the end.
pub(crate) async fn resume(
    shared: &Shared,
    plan: Plan,
    report: &Reporter,
    cancel: &CancellationToken,
) {
    tracing::info!(cycle = %plan.cycle_id, stacks = plan.stacks.len(), "resuming stacks");
    let down = Mutex::new(Waiting {
        cycle_id: Some(plan.cycle_id.clone()),
        stacks: plan
            .stacks
            .iter()
            .filter(|s| s.start.is_some())
            .map(|s| s.stack.name.clone())
            .collect(),
    });
    let slots = &plan.slots;
    // How many stacks have issued their start (or have none): the hooks of the services
    // kept running wait for all of them.
    let (issued, _) = watch::channel(0usize);
    let total = plan.stacks.len();
    // Each stack's fate, for its stopped services' hooks: `Some(true)` once it runs.
    let fates: Vec<watch::Sender<Option<bool>>> =
        plan.stacks.iter().map(|_| watch::channel(None).0).collect();
    let indexed: Vec<(usize, StackPlan)> = plan.stacks.iter().cloned().enumerate().collect();
    let starts = async {
        let mut ended: Vec<(usize, Restart)> = Vec::new();
        for group in groups(indexed, |(_, s)| s.stack.stop_order, false) {
            // Every stack of the group at once, in the plan's order: the slots (first come,
            // first served) bound the engine's work, and no stack's wait holds up another's
            // start. The next group begins when this one's starts have ended.
            let (issued, fates, down) = (&issued, &fates, &down);
            let group_ended =
                futures::future::join_all(group.into_iter().map(|(i, stack)| async move {
                    let on = Launch {
                        issued,
                        fate: &fates[i],
                    };
                    let ended = bring_back(
                        shared,
                        &stack,
                        How {
                            slots,
                            recreate_vanished: plan.recreate_vanished,
                        },
                        report,
                        down,
                        cancel,
                        &on,
                    )
                    .await;
                    on.fate.send_replace(Some(matches!(ended, Restart::Runs)));
                    (i, ended)
                }))
                .await;
            ended.extend(group_ended);
        }
        ended.sort_by_key(|(i, _)| *i);
        ended.into_iter().map(|(_, e)| e).collect::<Vec<Restart>>()
    };
    let hooks = futures::future::join_all(plan.stacks.iter().enumerate().map(|(i, stack)| {
        let (issued, fate) = (issued.subscribe(), fates[i].subscribe());
        post_resume(shared, stack, issued, total, fate, report)
    }));
    let (ended, _) = futures::future::join(starts, hooks).await;
    strand_the_rest(plan.stacks, ended, &plan.cycle_id, report);
}

/// Each stack whose starts ended stranded goes to the stranded list, with the containers
/// it was to start (so that the slow retries start exactly those).
fn strand_the_rest(stacks: Vec<StackPlan>, ended: Vec<Restart>, cycle_id: &str, report: &Reporter) {
    for (plan_of, ended) in stacks.into_iter().zip(ended) {
        let Restart::Stranded {
            attempts,
            last_error,
            given_up,
        } = ended
        else {
            continue;
        };
        let stack = plan_of.stack;
        let containers = match plan_of.start {
            Some(Wanted::Containers { containers, .. }) => containers.iter().map(marked).collect(),
            _ => stack.containers,
        };
        report.send(Progress::Stranded(StrandedStack {
            name: stack.name,
            services: stack.services,
            containers,
            cycle_id: cycle_id.to_owned(),
            since: Utc::now(),
            attempts,
            last_error: first_line(&last_error),
            given_up,
        }));
    }
}

/// One start of `wanted` of `name`, bounded by `start_call_timeout` — and, where a stop may
/// be in flight, also by `max_quiesce`, which is the only bound of ours on a shutdown that
/// may take as long as it takes (a negative `StopTimeout`, a long grace).
pub(crate) async fn start_call(
    shared: &Shared,
    name: &str,
    wanted: &Wanted,
    recreate_vanished: bool,
    slots: &Slots,
) -> Result<StartReport, CallError> {
    let stacks = shared.parts.stacks.clone();
    let config = &shared.config;
    let in_flight = !matches!(
        wanted,
        Wanted::Containers {
            in_flight: false,
            ..
        }
    );
    let limit = if in_flight {
        config.start_call_timeout.saturating_add(config.max_quiesce)
    } else {
        config.start_call_timeout
    };
    let (name, wanted, slots) = (name.to_owned(), wanted.clone(), slots.clone());
    let call = async move {
        let request = match wanted {
            Wanted::Containers {
                containers,
                in_flight,
            } => StartRequest {
                containers,
                stop_may_be_in_flight: in_flight,
                recreate_vanished,
            },
            Wanted::Services(services) => StartRequest {
                containers: of_services(&*stacks, &name, &services).await?,
                stop_may_be_in_flight: true,
                recreate_vanished,
            },
        };
        stacks.start_containers(&name, &request, &slots).await
    };
    bounded(limit, "start", call).await
}

/// The containers of `services` of `stack` that the engine has now, running or not (one-offs
/// left out): every container of the project is "appeared" since the epoch. For a marker or
/// stranded list of a build before container ids, which named services only. A service with
/// no container left gets a stand-in that no container can match (a colon is in no container
/// name nor id), so that the start brings it back by compose, as that build did.
async fn of_services(
    stacks: &dyn felhom_stacks::Stacks,
    stack: &str,
    services: &[String],
) -> Result<Vec<ContainerRef>, StacksError> {
    let all = stacks
        .check_down(stack, &[], DateTime::<Utc>::UNIX_EPOCH)
        .await?;
    let mut found: Vec<ContainerRef> = all
        .appeared
        .into_iter()
        .filter(|c| services.contains(&c.service))
        .collect();
    for service in services {
        if !found.iter().any(|c| &c.service == service) {
            tracing::warn!(stack, service = %service, "no container of this service is left: compose brings it back where the start may recreate it");
            found.push(ContainerRef {
                id: format!("felhom:gone:{service}"),
                name: format!("{stack}-{service} (gone)"),
                service: service.clone(),
            });
        }
    }
    Ok(found)
}

/// What the engine says of stopped `name` now, bounded by [`CHECK_BOUND`]; an error as text.
pub(super) async fn check_call(
    shared: &Shared,
    name: &str,
    containers: &[ContainerRef],
    since: DateTime<Utc>,
) -> Result<DownCheck, String> {
    let stacks = shared.parts.stacks.clone();
    let (name, containers) = (name.to_owned(), containers.to_vec());
    let call = async move { stacks.check_down(&name, &containers, since).await };
    bounded(CHECK_BOUND, "check", call).await.map_err(
        |(CallError::Failed(why) | CallError::EngineAway(why) | CallError::Vanished(why))| why,
    )
}

/// The first line of an error, for the stranded list (compose's stderr tail stays in the log).
pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Runs one stacks call in its own task, bounded by `limit`: a call that hangs or panics is a
/// failed call, never a stuck or dead resume. A call past its bound is aborted — its future
/// dropped, and with it the child process it waits on (`kill_on_drop`) — not left running
/// beside the next attempt.
async fn bounded<T: Send + 'static>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, StacksError>> + Send + 'static,
) -> Result<T, CallError> {
    let mut task = tokio::spawn(call.in_current_span());
    match timeout(limit, &mut task).await {
        Ok(Ok(Ok(out))) => Ok(out),
        Ok(Ok(Err(e))) if e.is_engine_unreachable() => Err(CallError::EngineAway(error_chain(&e))),
        Ok(Ok(Err(e))) if e.is_vanished() => Err(CallError::Vanished(error_chain(&e))),
        Ok(Ok(Err(e))) => Err(CallError::Failed(error_chain(&e))),
        Ok(Err(join)) => Err(CallError::Failed(format!("the {what} task failed: {join}"))),
        Err(_) => {
            task.abort();
            // Let the abort land (the call's future dropped, its child killed) before the
            // next attempt begins; never long.
            let _ = timeout(LANDING, &mut task).await;
            Err(CallError::Failed(format!(
                "{what} did not return within {}",
                humanize(limit)
            )))
        }
    }
}
