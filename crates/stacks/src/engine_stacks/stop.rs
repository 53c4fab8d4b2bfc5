//! The stop of a stack: exactly the containers asked for that still run, each as soon as
//! everything that depends on it has stopped, with its own grace period and signal; and the
//! engine's account of each stop (when it exited, how, whether its grace ran out). Kept apart
//! from the start, which shares only the listing and the records with it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::Utc;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use super::listing::{dependencies, Prepared};
use super::{container_error, EngineStacks};
use crate::engine::{time_of, Inspected};
use crate::name::check_stack_name;
use crate::order;
use crate::{ContainerRef, Slots, StacksError, StopReport, StoppedContainer};

/// What a stop call gets beyond the container's grace period: the engine kills the container
/// at the end of the grace, and its answer must come before this bound gives up on it.
const STOP_MARGIN: Duration = Duration::from_secs(30);
/// The exit code of a process killed by SIGKILL, as the engine reports it (128 + 9).
const SIGKILL_EXIT: i64 = 137;
/// How much earlier than the end of its grace a SIGKILLed container may have finished and
/// still count as killed at the end of its grace: the stop call reaches the engine a little
/// after it was asked for, and the engine's clock is not this process's.
const KILL_TOLERANCE: Duration = Duration::from_secs(1);

/// How long a container is given to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grace {
    /// Its own `StopTimeout` (compose's `stop_grace_period`), in seconds: the engine applies
    /// it with the container's own signal.
    Own(u64),
    /// Its own `StopTimeout` is negative: the engine waits for it without a bound, and so do
    /// we.
    Forever,
    /// It declares none: `stacks.stop_timeout`, in whole seconds, passed with the call.
    Ours(u64),
}

impl Grace {
    /// The grace in seconds; `None` without a bound.
    pub(super) fn seconds(self) -> Option<u64> {
        match self {
            Self::Own(secs) | Self::Ours(secs) => Some(secs),
            Self::Forever => None,
        }
    }
}

/// What happened to one container of a stop.
enum Outcome {
    Stopped(StoppedContainer),
    /// Removed while its stop was under way.
    Vanished(ContainerRef),
}

impl EngineStacks {
    /// The checks before any stop: a valid name, not protected, deployed.
    pub(super) fn check_stoppable(&self, stack: &str) -> Result<(), StacksError> {
        check_stack_name(stack)?;
        if self.is_protected(stack) {
            return Err(StacksError::Protected(stack.to_owned()));
        }
        self.files(stack).map(drop)
    }

    /// Stops those of `containers` that still run, holding one of `slots` for the stop calls,
    /// and reports each with the engine's evidence.
    pub(super) async fn stop_refs(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        slots: &Slots,
    ) -> Result<StopReport, StacksError> {
        self.check_stoppable(stack)?;
        let mut ids: Vec<String> = Vec::new();
        for c in containers {
            if !ids.contains(&c.id) {
                ids.push(c.id.clone());
            }
        }
        if ids.is_empty() {
            return Ok(StopReport::default());
        }
        let prepared = self.prepare(stack, &ids, &HashMap::new()).await?;
        let (mut running, idle): (Vec<Prepared>, Vec<Prepared>) =
            prepared.into_iter().partition(|p| p.container.is_up());
        for p in &mut running {
            p.health_before = p.container.health;
        }
        let mut outcomes: HashMap<String, Outcome> = idle
            .iter()
            .map(|p| {
                (
                    p.container.id.clone(),
                    Outcome::Stopped(not_running(&p.container)),
                )
            })
            .collect();
        if !running.is_empty() {
            // Recorded before the first stop call: a stop abandoned half-way (the bound, a
            // cancellation) still leaves the health before the cycle to the start.
            self.records.stopping(stack, &running);
            let services: BTreeSet<&str> = running
                .iter()
                .map(|p| p.container.service.as_str())
                .collect();
            tracing::info!(stack, ?services, "stopping");
            let _slot = slots.take().await;
            for (id, outcome) in self.stop_in_order(stack, &running).await? {
                outcomes.insert(id, outcome);
            }
        }
        let mut report = StopReport::default();
        for c in containers {
            match outcomes.remove(&c.id) {
                Some(Outcome::Stopped(stopped)) => report.containers.push(stopped),
                Some(Outcome::Vanished(gone)) => report.vanished.push(gone),
                // Not found by the inspect before the stop (or a duplicate of the list).
                None if !report.vanished.iter().any(|v| v.id == c.id)
                    && !report.containers.iter().any(|s| s.container.id == c.id) =>
                {
                    report.vanished.push(c.clone());
                }
                None => {}
            }
        }
        if !report.vanished.is_empty() {
            tracing::warn!(stack, vanished = ?report.vanished, "containers to stop no longer exist");
        }
        Ok(report)
    }

    /// Stops `containers`, each once every container that depends on it is stopped; the
    /// independent ones at once. Returns each one's outcome, by id.
    async fn stop_in_order(
        &self,
        stack: &str,
        containers: &[Prepared],
    ) -> Result<Vec<(String, Outcome)>, StacksError> {
        let deps = dependencies(containers);
        let mut waiting_for: Vec<usize> = order::dependents(&deps).iter().map(Vec::len).collect();
        let mut launched = vec![false; containers.len()];
        let mut flights = FuturesUnordered::new();
        let mut first_error = None;
        let mut outcomes = Vec::new();
        loop {
            for (i, c) in containers.iter().enumerate() {
                if !launched[i] && waiting_for[i] == 0 {
                    launched[i] = true;
                    flights.push(async move { (i, self.stop_one(stack, c).await) });
                }
            }
            match flights.next().await {
                Some((i, result)) => {
                    match result {
                        Ok(outcome) => outcomes.push((containers[i].container.id.clone(), outcome)),
                        Err(e) => {
                            tracing::error!(stack, "{e}");
                            first_error.get_or_insert(e);
                        }
                    }
                    for (dep, _) in &deps[i] {
                        waiting_for[*dep] = waiting_for[*dep].saturating_sub(1);
                    }
                }
                None if launched.iter().all(|l| *l) => break,
                None => {
                    // A dependency cycle (compose refuses them; a hand-made link may not):
                    // what is left stops at once.
                    tracing::warn!(
                        stack,
                        "dependency cycle among the containers: stopping the rest at once"
                    );
                    waiting_for.iter_mut().for_each(|w| *w = 0);
                }
            }
        }
        first_error.map_or(Ok(outcomes), Err)
    }

    /// The grace a container gets: its own where it declares one, else `stop_timeout`.
    pub(super) fn grace_of(&self, c: &Inspected) -> Grace {
        match c.stop_timeout {
            Some(secs) if secs < 0 => Grace::Forever,
            Some(secs) if secs > 0 => Grace::Own(secs.unsigned_abs()),
            _ => Grace::Ours(whole_seconds(self.config.stop_timeout)),
        }
    }

    async fn stop_one(&self, stack: &str, prepared: &Prepared) -> Result<Outcome, StacksError> {
        let c = &prepared.container;
        let grace = self.grace_of(c);
        // Its own grace where it declares one (the engine applies it, with its own signal);
        // `stop_timeout` only where it declares none.
        let (t, wait) = match grace {
            Grace::Own(secs) => (None, Some(Duration::from_secs(secs) + STOP_MARGIN)),
            Grace::Forever => (None, None),
            Grace::Ours(secs) => (Some(secs), Some(Duration::from_secs(secs) + STOP_MARGIN)),
        };
        tracing::debug!(stack, service = %c.service, container = %c.name, ?grace, "stopping");
        let requested = Utc::now();
        match self.engine.stop(&c.id, t, wait).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(Outcome::Vanished(c.to_ref())),
            Err(e) => return Err(container_error(stack, c, "stop", e)),
        }
        let after = match self.engine.inspect(&c.id).await {
            Ok(after) => after,
            Err(e) if e.is_not_found() => return Ok(Outcome::Vanished(c.to_ref())),
            Err(e) => return Err(container_error(stack, c, "inspect after the stop", e)),
        };
        let killed = killed_at_grace(&after, grace, requested.timestamp_nanos_opt().unwrap_or(0));
        if killed {
            tracing::warn!(stack, service = %c.service, container = %c.name, ?grace, exit_code = after.exit_code, oom = after.oom_killed, "killed: its grace ran out before it exited");
        }
        Ok(Outcome::Stopped(StoppedContainer {
            container: c.to_ref(),
            was_running: true,
            stop_requested_at: requested,
            exited_at: time_of(after.finished_at),
            exit_code: Some(after.exit_code),
            killed,
        }))
    }
}

/// A container of a stop that did not run when its stop came: its last exit, as it was.
fn not_running(c: &Inspected) -> StoppedContainer {
    StoppedContainer {
        container: c.to_ref(),
        was_running: false,
        stop_requested_at: Utc::now(),
        exited_at: time_of(c.finished_at),
        exit_code: (c.finished_at > 0).then_some(c.exit_code),
        killed: false,
    }
}

/// The rule of "killed" (the crate's docs, "Evidence"): the kernel killed it for memory, or it
/// ended by SIGKILL (exit 137) although its stop signal is not SIGKILL, no earlier than the end
/// of its grace counted from the stop request (less a small tolerance). A SIGKILL before the
/// end of the grace is someone else's kill, or the app's own exit code, not a grace that ran
/// out; a container without a bound on its grace is never killed by the engine.
pub(super) fn killed_at_grace(after: &Inspected, grace: Grace, requested_ns: i64) -> bool {
    if after.oom_killed {
        return true;
    }
    if after.exit_code != SIGKILL_EXIT || after.stop_signal.as_deref().is_some_and(is_sigkill) {
        return false;
    }
    let Some(secs) = grace.seconds() else {
        return false;
    };
    let grace = Duration::from_secs(secs);
    let tolerance = KILL_TOLERANCE.min(grace / 2);
    let earliest = requested_ns.saturating_add(nanos(grace.saturating_sub(tolerance)));
    after.finished_at >= earliest
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `SIGKILL`, `KILL` or `9`, as the engine accepts a stop signal.
fn is_sigkill(signal: &str) -> bool {
    let s = signal.trim().to_ascii_uppercase();
    matches!(s.as_str(), "SIGKILL" | "KILL" | "9")
}

/// The engine takes whole seconds; a fraction is rounded up so that an app never gets less
/// time to stop than configured.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_001)), 31);
    }

    const S: i64 = 1_000_000_000;

    fn exited(code: i64, finished_s: f64, signal: Option<&str>, oom: bool) -> Inspected {
        Inspected {
            stop_signal: signal.map(str::to_owned),
            oom_killed: oom,
            exit_code: code,
            // As a float of seconds after the request at 100 s.
            finished_at: 100 * S + (finished_s * 1e9) as i64,
            ..Inspected::sample("db")
        }
    }

    #[test]
    fn killed_means_sigkilled_at_the_end_of_its_grace() {
        let at = 100 * S;
        // Grace 2 s, SIGKILLed 2.05 s after the request: its grace ran out.
        assert!(killed_at_grace(
            &exited(137, 2.05, None, false),
            Grace::Own(2),
            at
        ));
        assert!(killed_at_grace(
            &exited(137, 30.1, Some("SIGINT"), false),
            Grace::Ours(30),
            at
        ));
        // Exited by itself within its grace.
        assert!(!killed_at_grace(
            &exited(0, 1.0, None, false),
            Grace::Own(2),
            at
        ));
        assert!(!killed_at_grace(
            &exited(143, 1.0, None, false),
            Grace::Own(2),
            at
        ));
        // 137 long before the end of its grace: not a grace that ran out.
        assert!(!killed_at_grace(
            &exited(137, 0.2, None, false),
            Grace::Own(10),
            at
        ));
        // Its stop signal is SIGKILL, however it is spelt.
        for signal in ["SIGKILL", "KILL", "9", "sigkill"] {
            assert!(
                !killed_at_grace(&exited(137, 0.1, Some(signal), false), Grace::Own(0), at),
                "{signal}"
            );
        }
        // Grace 0 (`-t 0`): killed at once, and that is a kill.
        assert!(killed_at_grace(
            &exited(137, 0.01, None, false),
            Grace::Ours(0),
            at
        ));
        // A grace without a bound: the engine never kills it.
        assert!(!killed_at_grace(
            &exited(137, 500.0, None, false),
            Grace::Forever,
            at
        ));
        // Out of memory: killed whatever the code and time.
        assert!(killed_at_grace(
            &exited(137, 0.1, None, true),
            Grace::Forever,
            at
        ));
        assert!(killed_at_grace(
            &exited(1, 0.1, Some("SIGKILL"), true),
            Grace::Own(5),
            at
        ));
    }
}
