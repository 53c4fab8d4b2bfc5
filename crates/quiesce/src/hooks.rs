//! The hooks of a cycle (issue 23, `docs/labels.md`): every `pre-snapshot` hook before
//! anything is stopped — the stacks in their stop order's groups, up to `parallelism` stacks
//! of a group at once, one hook at a time within a stack, a scaled service's containers one
//! after another — and each `post-resume` hook when the cycle resumes (`resume.rs` says
//! when).
//!
//! A hook about to run is told to the driver first, and a `pre-snapshot` hook runs only once
//! the marker on disk says so ([`Reporter::hook_about`]): a recovery after a crash then runs
//! the `post-resume` hook of that service. Every hook call is bounded twice: by its timeout,
//! which the stacks manager enforces (it kills the hook), and by that timeout plus a margin
//! here, in a task of its own that is aborted at that bound (dropped, the engine's call kills
//! what it ran).
//!
//! The `post-resume` hooks run beside the resume's starts (`resume.rs`): a stopped service's
//! once its stack runs again, every other's once every start of the resume has been issued;
//! one at a time within a stack, never holding up a start.

use crate::controller::Shared;
use crate::machine::Event;
use crate::policy::StackPre;
use crate::progress::{Level, Progress, Reporter};
use crate::resume::StackPlan;
use crate::{error_chain, humanize};
use chrono::Utc;
use felhom_marker::{HookKind, HookRecord};
use felhom_stacks::{ContainerRef, HookCommand, OnHookError, Stacks};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tracing::Instrument;

/// How much longer than its timeout one hook call may take before it is abandoned: the
/// engine kills a hook at its timeout, then waits up to 10 s for the end it records, each of
/// its calls bounded by 30 s.
const HOOK_MARGIN: Duration = Duration::from_secs(60);

/// One hook to run in one container.
#[derive(Debug, Clone)]
pub(crate) struct HookCall {
    pub(crate) stack: String,
    pub(crate) service: String,
    pub(crate) hook: HookKind,
    pub(crate) container: ContainerRef,
    pub(crate) command: HookCommand,
    pub(crate) timeout: Duration,
}

impl HookCall {
    /// Runs the hook, bounded (see the module docs), and tells the driver its end. What
    /// kept it from running is a failed run with the reason as its error.
    pub(crate) async fn run(self, stacks: Arc<dyn Stacks>, report: &Reporter) -> HookRecord {
        let started_at = Utc::now();
        let begun = Instant::now();
        let limit = self.timeout.saturating_add(HOOK_MARGIN);
        let (stack, container, command, bound) = (
            self.stack.clone(),
            self.container.clone(),
            self.command.clone(),
            self.timeout,
        );
        // Aborted when this call is dropped (the driver aborts the step at the cycle's bound):
        // the engine's call, dropped in turn, kills the hook.
        let mut task = AbortOnDrop(tokio::spawn(
            async move { stacks.run_hook(&stack, &container, &command, bound).await }
                .in_current_span(),
        ));
        let mut run = self.record(started_at);
        match timeout(limit, &mut task.0).await {
            Ok(Ok(Ok(ran))) => {
                run.succeeded = ran.succeeded();
                run.exit_code = ran.exit_code;
                run.timed_out = ran.timed_out;
                run.output = ran.output;
                run.duration_ms = millis(ran.duration);
            }
            Ok(Ok(Err(e))) => run.error = Some(error_chain(&e)),
            Ok(Err(join)) => run.error = Some(format!("the hook's task failed: {join}")),
            Err(_) => {
                task.0.abort();
                let _ = timeout(crate::LANDING, &mut task.0).await;
                run.error = Some(format!(
                    "the engine's call did not return within {}",
                    humanize(limit)
                ));
            }
        }
        if run.duration_ms == 0 {
            run.duration_ms = millis(begun.elapsed());
        }
        self.ended(run, report)
    }

    /// A record of this run, started at `started_at`, nothing known of its end yet.
    fn record(&self, started_at: chrono::DateTime<Utc>) -> HookRecord {
        HookRecord::new(
            self.hook,
            self.container.name.clone(),
            self.command.program(),
            started_at,
        )
    }

    /// Tells the driver that the run ended as `run` says; returns it.
    fn ended(self, run: HookRecord, report: &Reporter) -> HookRecord {
        report.send(Progress::HookEnded {
            stack: self.stack,
            service: self.service,
            container: self.container,
            run: run.clone(),
        });
        run
    }
}

/// A task aborted when this is dropped (a dropped `JoinHandle` would let it run on).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs every `pre-snapshot` hook of the cycle: `groups` in their order, one after another;
/// up to `parallelism` stacks of a group at once; within a stack one hook at a time. A hook
/// that fails with `felhom.on-hook-error: skip-backup` gives the cycle up: no further hook
/// begins, and the event says so ([`Event::BackupSkipped`]); otherwise [`Event::Hooked`]
/// (the driver's cycle decides what each failure means for the stops).
pub(crate) async fn pre_snapshot(
    stacks: Arc<dyn Stacks>,
    groups: Vec<Vec<StackPre>>,
    parallelism: usize,
    report: Reporter,
) -> Event {
    let given_up = AtomicBool::new(false);
    for group in groups {
        if given_up.load(Ordering::SeqCst) {
            break;
        }
        futures::stream::iter(group)
            .map(|stack| one_stack(&stacks, stack, &report, &given_up))
            .buffer_unordered(parallelism.max(1))
            .collect::<Vec<()>>()
            .await;
    }
    if given_up.load(Ordering::SeqCst) {
        Event::BackupSkipped
    } else {
        Event::Hooked
    }
}

/// One stack's `pre-snapshot` hooks, one at a time; a service's hook that fails is not run in
/// its other containers (its fate is decided).
async fn one_stack(
    stacks: &Arc<dyn Stacks>,
    pre: StackPre,
    report: &Reporter,
    given_up: &AtomicBool,
) {
    for hook in pre.hooks {
        for container in hook.containers {
            if given_up.load(Ordering::SeqCst) {
                return;
            }
            let call = HookCall {
                stack: pre.stack.clone(),
                service: hook.service.clone(),
                hook: HookKind::PreSnapshot,
                container,
                command: hook.command.clone(),
                timeout: hook.timeout,
            };
            // On disk before it runs: a crash from here on runs its post-resume hook.
            let run = if report.hook_about(&call).await {
                call.run(stacks.clone(), report).await
            } else {
                let why = "it could not be recorded in the marker first";
                call.not_run(why, report)
            };
            if !run.succeeded {
                if hook.on_error == OnHookError::SkipBackup {
                    given_up.store(true, Ordering::SeqCst);
                }
                break;
            }
        }
    }
}

impl HookCall {
    /// The hook is not run, for `why`: told to the driver as a failed run.
    pub(crate) fn not_run(self, why: &str, report: &Reporter) -> HookRecord {
        let run = HookRecord {
            error: Some(why.to_owned()),
            ..self.record(Utc::now())
        };
        self.ended(run, report)
    }
}

/// One `post-resume` hook to run in one container.
#[derive(Debug, Clone)]
pub(crate) struct PostRun {
    pub(crate) service: String,
    pub(crate) container: ContainerRef,
    /// The command; `Err`: its line in the marker does not parse (it is then not run), why.
    pub(crate) command: Result<HookCommand, String>,
    pub(crate) timeout: Duration,
    /// After the stack's start (a service it stopped); else once every start is issued.
    pub(crate) after_start: bool,
}

/// What a stack's start tells the hooks waiting for it.
pub(crate) struct Launch<'a> {
    /// How many stacks issued their start.
    pub(crate) issued: &'a watch::Sender<usize>,
    /// Whether this stack runs again (`None` until known).
    pub(crate) fate: &'a watch::Sender<Option<bool>>,
}

impl Launch<'_> {
    pub(crate) fn issued(&self) {
        self.issued.send_modify(|n| *n += 1);
    }
}

/// The due `post-resume` hooks of one stack, one at a time: those of the services kept
/// running once every stack's start is issued (`total`), those of its stopped services once
/// it runs again (never in a container that does not run: a stack that stays down runs
/// none). Each bounded by its timeout.
pub(crate) async fn post_resume(
    shared: &Shared,
    plan: &StackPlan,
    mut issued: watch::Receiver<usize>,
    total: usize,
    mut fate: watch::Receiver<Option<bool>>,
    report: &Reporter,
) {
    let (after, kept): (Vec<&PostRun>, Vec<&PostRun>) =
        plan.post_resume.iter().partition(|p| p.after_start);
    if !kept.is_empty() {
        let _ = issued.wait_for(|n| *n >= total).await;
        run_posts(shared, &plan.stack.name, &kept, report).await;
    }
    if !after.is_empty() {
        let runs = matches!(
            fate.wait_for(Option::is_some).await.map(|f| *f),
            Ok(Some(true))
        );
        if runs {
            run_posts(shared, &plan.stack.name, &after, report).await;
        } else {
            let services: Vec<&str> = after.iter().map(|p| p.service.as_str()).collect();
            let message = format!(
                "stack {}: the post-resume hooks of {} were not run: it does not run",
                plan.stack.name,
                services.join(", ")
            );
            report.note(Level::Warn, message);
        }
    }
}

async fn run_posts(shared: &Shared, stack: &str, posts: &[&PostRun], report: &Reporter) {
    for post in posts {
        let command = match &post.command {
            Ok(command) => command,
            Err(why) => {
                // A marker changed by hand, or damaged: a failed run, not due any more.
                report.send(Progress::HookEnded {
                    stack: stack.to_owned(),
                    service: post.service.clone(),
                    container: post.container.clone(),
                    run: felhom_marker::HookRecord {
                        error: Some(format!(
                            "its command line in the marker does not parse: {why}"
                        )),
                        ..felhom_marker::HookRecord::new(
                            HookKind::PostResume,
                            post.container.name.clone(),
                            "",
                            Utc::now(),
                        )
                    },
                });
                continue;
            }
        };
        let call = HookCall {
            stack: stack.to_owned(),
            service: post.service.clone(),
            hook: HookKind::PostResume,
            container: post.container.clone(),
            command: command.clone(),
            timeout: post.timeout,
        };
        report.hook_about(&call).await;
        call.run(shared.parts.stacks.clone(), report).await;
    }
}
