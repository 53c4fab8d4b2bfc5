//! The cycle's side of the per-service policy (issue 23, `docs/labels.md`): each hook about
//! to run and each that ran into the marker and the record, what a failed `pre-snapshot`
//! hook means for its service, which services the stops leave running, which `post-resume`
//! hooks a resume runs, and when a stack may leave the marker.

use super::{container, Cycle};
use crate::hooks::PostRun;
use crate::policy::{groups, StackPre};
use crate::progress::{Applied, Level};
use chrono::{DateTime, Utc};
use felhom_marker::{
    Capture, HookKind, HookRecord, MarkedHooks, MarkedRun, MarkedStack, Marker, ServiceMode,
    ServiceRecord,
};
use felhom_stacks::{ContainerRef, HookCommand, OnHookError};
use std::collections::BTreeSet;
use std::time::Duration;

/// A hook that began and has not ended.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    stack: String,
    service: String,
    hook: HookKind,
    container: ContainerRef,
    program: String,
    at: DateTime<Utc>,
}

impl Cycle {
    /// A hook is about to run: the marker records it (a `pre-snapshot` hook also marks its
    /// service quiesced: its `post-resume` hook is due from now on, also after a crash).
    pub(super) fn hook_about(
        &mut self,
        stack: &str,
        service: &str,
        hook: HookKind,
        container: &ContainerRef,
        program: String,
    ) -> Applied {
        self.change_marker(|m| {
            let Some(h) = hooks_of(m, stack, service) else {
                return;
            };
            if hook == HookKind::PreSnapshot {
                h.quiesced = true;
            }
            h.runs.push(MarkedRun {
                hook,
                container: container.id.clone(),
                ended: false,
            });
        });
        self.running.push(Running {
            stack: stack.to_owned(),
            service: service.to_owned(),
            hook,
            container: container.clone(),
            program,
            at: Utc::now(),
        });
        self.on_disk_now()
    }

    /// A hook ended (or could not run): the marker says it is not to run again, the record
    /// keeps the run, and a failure is noted with what it leads to. A `pre-snapshot` hook of
    /// a service kept running that fails with `on-hook-error: stop` makes the stops stop it.
    pub(super) fn hook_ended(
        &mut self,
        stack: &str,
        service: &str,
        container: &ContainerRef,
        run: HookRecord,
    ) -> Applied {
        let hook = run.hook;
        self.change_marker(|m| {
            let Some(h) = hooks_of(m, stack, service) else {
                return;
            };
            match h
                .runs
                .iter_mut()
                .rev()
                .find(|r| r.hook == hook && r.container == container.id && !r.ended)
            {
                Some(r) => r.ended = true,
                None => h.runs.push(MarkedRun {
                    hook,
                    container: container.id.clone(),
                    ended: true,
                }),
            }
        });
        self.running
            .retain(|r| !(r.stack == stack && r.hook == hook && r.container.id == container.id));
        if !run.succeeded {
            let (level, then) = self.consequence(stack, service, hook);
            let message = format!(
                "stack {stack}, service {service}: {hook} hook {:?} (container {}): {}{then}",
                run.program,
                run.container,
                run.summary()
            );
            self.note(level, message);
        }
        self.record_run(stack, service, run);
        if hook == HookKind::PostResume {
            self.settle(stack);
        }
        self.on_disk_now()
    }

    /// What a failed hook of `service` leads to, in words for the record, and how loud.
    fn consequence(&mut self, stack: &str, service: &str, hook: HookKind) -> (Level, &'static str) {
        if hook == HookKind::PostResume {
            return (Level::Warn, ": not run again");
        }
        let kept_up = self.policies.kept_up(stack).contains(service);
        match (self.policies.on_hook_error(stack, service), kept_up) {
            (OnHookError::SkipBackup, _) => (
                Level::Error,
                ": felhom.on-hook-error is skip-backup: no backup is taken, the cycle fails",
            ),
            (OnHookError::Stop, true) => {
                self.fell_back
                    .insert((stack.to_owned(), service.to_owned()));
                (Level::Warn, ": stopped with its stack instead")
            }
            (OnHookError::Continue, true) => (
                Level::Warn,
                ": it stays up and its capture is hook-failed (felhom.on-hook-error: continue)",
            ),
            (_, false) => (Level::Warn, ": stopped as planned"),
        }
    }

    /// `run` into the record, under its service.
    fn record_run(&mut self, stack: &str, service: &str, run: HookRecord) {
        let Some(rec) = self.stack_record(stack) else {
            return;
        };
        match rec.by_service.iter_mut().find(|s| s.service == service) {
            Some(s) => s.hooks.push(run),
            None => rec.by_service.push(ServiceRecord {
                service: service.to_owned(),
                mode: ServiceMode::Stop,
                stopped: false,
                capture: Capture::Unknown,
                hooks: vec![run],
            }),
        }
    }

    /// The `pre-snapshot` hooks still running when the down half ended (the bound, a
    /// cancellation, a panic): their calls were dropped with it, which kills them. Each is a
    /// failed run in the record.
    pub(super) fn cut_short(&mut self) {
        let cut: Vec<Running> = std::mem::take(&mut self.running);
        for r in cut {
            let run = HookRecord {
                duration_ms: u64::try_from((Utc::now() - r.at).num_milliseconds().max(0))
                    .unwrap_or(0),
                error: Some("cut short: the cycle stopped waiting (max_quiesce, a cancellation or a failure) and it was killed".to_owned()),
                ..HookRecord::new(r.hook, r.container.name.clone(), r.program, r.at)
            };
            let message = format!(
                "stack {}, service {}: {} hook {:?} (container {}) was cut short with the cycle's wait",
                r.stack, r.service, r.hook, run.program, run.container
            );
            self.note(Level::Warn, message);
            self.record_run(&r.stack, &r.service, run);
        }
    }

    /// The services kept running without a `pre-snapshot` hook are quiesced once the cycle
    /// stopped anything or posted the backup: their `post-resume` hooks are due.
    pub(super) fn quiesce_the_kept_up(&mut self) {
        self.change_marker(|m| {
            for h in m.stacks.iter_mut().flat_map(|s| s.hooks.iter_mut()) {
                if h.kept_up && !h.pre_snapshot {
                    h.quiesced = true;
                }
            }
        });
    }

    /// `services` of `stack` are being stopped: recorded so, in the marker (their
    /// `post-resume` hooks come after their start) and in the record.
    pub(super) fn stopping(&mut self, stack: &str, services: &[String]) {
        self.change_marker(|m| {
            if let Some(s) = m.stack_mut(stack) {
                for h in s.hooks.iter_mut().filter(|h| services.contains(&h.service)) {
                    h.kept_up = false;
                    h.quiesced = true;
                }
            }
        });
        if let Some(rec) = self.stack_record(stack) {
            for s in rec
                .by_service
                .iter_mut()
                .filter(|s| services.contains(&s.service))
            {
                s.stopped = true;
            }
        }
        self.quiesce_the_kept_up();
    }

    /// The services of `stack` that stay up: kept running by their labels, and whose
    /// `pre-snapshot` hook did not fall back to a stop.
    pub(crate) fn keep(&self, stack: &str) -> BTreeSet<String> {
        let mut keep = self.policies.kept_up(stack);
        keep.retain(|s| !self.fell_back.contains(&(stack.to_owned(), s.clone())));
        keep
    }

    /// `stack` leaves the marker once its resume is over and none of its `post-resume`
    /// hooks is due.
    pub(super) fn settle(&mut self, stack: &str) {
        if !self.resumed.contains(stack) {
            return;
        }
        self.change_marker(|m| {
            m.stacks.retain(|s| {
                s.name != stack || s.hooks.iter().any(|h| !h.post_resume_due().is_empty())
            })
        });
    }

    /// Every stack's `pre-snapshot` hooks, in groups of the stacks' stop order, the lowest
    /// first.
    pub(crate) fn pre_snapshot_groups(&self) -> Vec<Vec<StackPre>> {
        let orders: Vec<(String, i32)> = self
            .marked()
            .into_iter()
            .map(|s| (s.name, s.stop_order))
            .collect();
        let pre: Vec<(StackPre, i32)> = orders
            .into_iter()
            .filter_map(|(name, order)| Some((self.policies.pre_snapshot(&name)?, order)))
            .collect();
        groups(pre, |(_, o)| *o, true)
            .into_iter()
            .map(|g| g.into_iter().map(|(p, _)| p).collect())
            .collect()
    }

    /// The stacks with anything to stop, each with the services its stop leaves running, in
    /// groups of their stop order, the lowest first.
    pub(crate) fn stop_groups(&self) -> Vec<Vec<(String, BTreeSet<String>)>> {
        let to_stop: Vec<(String, BTreeSet<String>, i32)> = self
            .marked()
            .into_iter()
            .filter(|s| {
                !s.containers.is_empty() || self.fell_back.iter().any(|(stack, _)| *stack == s.name)
            })
            .map(|s| (self.keep(&s.name), s))
            .map(|(keep, s)| (s.name, keep, s.stop_order))
            .collect();
        groups(to_stop, |(_, _, o)| *o, true)
            .into_iter()
            .map(|g| g.into_iter().map(|(name, keep, _)| (name, keep)).collect())
            .collect()
    }

    /// The `post-resume` hooks of `stack` that its resume runs: each still due, after the
    /// stack's start where the service was stopped and `started` (a start is planned), else
    /// once the starts of the stopped stacks are issued.
    pub(super) fn post_resume_plan(&self, stack: &MarkedStack, started: bool) -> Vec<PostRun> {
        let mut plan = Vec::new();
        for h in &stack.hooks {
            let Some(line) = &h.post_resume else {
                continue;
            };
            let command = HookCommand::parse(line).map_err(|e| e.to_string());
            for c in h.post_resume_due() {
                plan.push(PostRun {
                    service: h.service.clone(),
                    container: container(c),
                    command: command.clone(),
                    timeout: Duration::from_millis(h.timeout_ms),
                    after_start: started && !h.kept_up,
                });
            }
        }
        plan
    }
}

/// The marker's account of the hooks of `service` of `stack`, if it has any.
fn hooks_of<'a>(m: &'a mut Marker, stack: &str, service: &str) -> Option<&'a mut MarkedHooks> {
    m.stack_mut(stack)
        .and_then(|s| s.hooks.iter_mut().find(|h| h.service == service))
}

/// The verdict of a service the cycle kept running: `hook-failed` when a `pre-snapshot` hook
/// of it failed (or was cut short), else `skipped` (`skip`), `hooked` (`hook`, its hook
/// exited 0), or `unknown` (`hook`, its hook never ran: the cycle ended before).
pub(super) fn kept_up_verdict(service: &ServiceRecord) -> Capture {
    let mut pre = service
        .hooks
        .iter()
        .filter(|h| h.hook == HookKind::PreSnapshot)
        .peekable();
    let ran = pre.peek().is_some();
    if pre.any(|h| !h.succeeded) {
        Capture::HookFailed
    } else if service.mode == ServiceMode::Skip {
        Capture::Skipped
    } else if ran {
        Capture::Hooked
    } else {
        Capture::Unknown
    }
}
