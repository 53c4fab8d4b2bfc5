//! The start of a stack: exactly the containers asked for, each as soon as the condition its
//! dependents wait for is met, watched on the engine's event stream until every one runs (and
//! is healthy where it was before the stop) and none died within `settle` of its start. A
//! container whose stop may still be in flight is waited for until it has exited, never
//! signalled again. Vanished containers are handed to the compose fallback, and the start
//! resumes with what it made.
//!
//! Slots: each batch of start calls (the containers that became startable together: a
//! dependency level) holds one slot while its calls run; every wait holds none.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use futures::future::{join_all, BoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::listing::{dependencies, namespace_targets, Prepared};
use super::progress::{pending, settled, Live, Phase};
use super::stop::Grace;
use super::{container_error, engine_error, EngineStacks};
use crate::engine::{EngineError, Health, Inspected, State};
use crate::name::check_stack_name;
use crate::order::{self, Condition};
use crate::{ContainerRef, Slots, StacksError, StartReport};

/// Log lines of a failed container carried in the error.
const LOG_TAIL: usize = 20;
/// What a container whose stop may be in flight gets beyond its grace, per link of the chain
/// of containers that stop before it: the engine kills it at the end of its grace, and its exit
/// is then a matter of moments.
const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(5);
/// How often the containers still on their way (stopping, not yet healthy) are inspected, in
/// case the engine's event stream missed something.
const RECHECK: Duration = Duration::from_secs(2);
/// A pause before an event stream that was cut is opened again, so that an engine that keeps
/// cutting it is not asked in a busy loop.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// What to start.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    /// Exactly these containers.
    pub(super) containers: Vec<ContainerRef>,
    /// A stop of these containers may still be in flight.
    pub(super) in_flight: bool,
    pub(super) slots: &'a Slots,
}

/// One engine call of a start that has come back.
enum Step {
    /// The start calls of one batch.
    Batch(Vec<(usize, Result<(), EngineError>)>),
    /// The inspect right after a start.
    Seen(usize, Result<Inspected, EngineError>),
    /// An inspect of a container on its way, in case an event was missed.
    Checked(usize, Result<Inspected, EngineError>),
}

/// How a start through the engine ended without success.
enum Interrupted {
    /// These containers are gone: the compose fallback brings their services back.
    Vanished(Vec<ContainerRef>),
    Failed(StacksError),
}

impl From<StacksError> for Interrupted {
    fn from(e: StacksError) -> Self {
        Self::Failed(e)
    }
}

/// What a start noticed on the way.
#[derive(Debug, Default)]
struct Noticed {
    already_running: Vec<ContainerRef>,
    waited_for_stop: Vec<ContainerRef>,
    /// When every container was last seen ready (the settle watch then begins).
    ready_at: Option<chrono::DateTime<Utc>>,
}

/// What stays the same through one start.
struct Ctx<'a> {
    in_flight: bool,
    /// Containers an inspect of this start found running before any start call.
    found_up: &'a HashSet<String>,
    slots: &'a Slots,
}

impl EngineStacks {
    /// Starts exactly the plan's containers (see [`Plan`]).
    pub(super) async fn start_plan(
        &self,
        stack: &str,
        plan: Plan<'_>,
    ) -> Result<StartReport, StacksError> {
        check_stack_name(stack)?;
        let mut requested: Vec<ContainerRef> = Vec::new();
        for c in plan.containers {
            if !requested.iter().any(|r| r.id == c.id) {
                requested.push(c);
            }
        }
        if requested.is_empty() {
            return Ok(StartReport::default());
        }
        let mut deadline = Instant::now() + self.config.start_timeout;
        let ids: Vec<String> = requested.iter().map(|c| c.id.clone()).collect();

        // Right after this instance stopped these containers, what its stop saw is still true
        // unless a container was removed meanwhile, which its start then tells; without the
        // stop's record (after a crash), or where the stop may still be in flight, the engine
        // is asked.
        let recorded = self.records.recorded(stack, &ids);
        let health_before: HashMap<String, Option<Health>> = recorded
            .iter()
            .map(|p| (p.container.id.clone(), p.health_before))
            .collect();
        let (mut containers, to_inspect): (Vec<Prepared>, Vec<String>) = if plan.in_flight {
            (Vec::new(), ids.clone())
        } else {
            let unrecorded = ids
                .iter()
                .filter(|id| !health_before.contains_key(*id))
                .cloned()
                .collect();
            (recorded, unrecorded)
        };
        if !to_inspect.is_empty() {
            containers.extend(self.prepare(stack, &to_inspect, &health_before).await?);
        }
        containers.sort_by_key(|p| ids.iter().position(|id| *id == p.container.id));
        let found_up: HashSet<String> = containers
            .iter()
            .filter(|p| to_inspect.contains(&p.container.id) && p.container.is_up())
            .map(|p| p.container.id.clone())
            .collect();
        let mut report = StartReport {
            not_waited_for_health: containers
                .iter()
                .filter(|p| p.container.has_healthcheck && !p.waits_for_health())
                .map(|p| p.container.service.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            ..StartReport::default()
        };
        if !report.not_waited_for_health.is_empty() {
            tracing::warn!(stack, services = ?report.not_waited_for_health, "health checks that did not pass before the stop: waiting for these only until they run");
        }
        let names: Vec<&str> = requested.iter().map(|c| c.name.as_str()).collect();
        tracing::info!(stack, containers = ?names, in_flight = plan.in_flight, "starting");

        let mut missing: BTreeSet<String> = requested
            .iter()
            .filter(|r| !containers.iter().any(|p| p.container.id == r.id))
            .map(|r| r.service.clone())
            .collect();
        let ctx = Ctx {
            in_flight: plan.in_flight,
            found_up: &found_up,
            slots: plan.slots,
        };
        let mut recreated = false;
        loop {
            if !missing.is_empty() {
                recreated = true;
                let services: Vec<String> = std::mem::take(&mut missing).into_iter().collect();
                let (services, new_ids) = self
                    .recreate(stack, &services, &containers, deadline)
                    .await?;
                report.recreated = services;
                let mut all: Vec<String> =
                    containers.iter().map(|p| p.container.id.clone()).collect();
                all.extend(new_ids);
                containers = self.prepare(stack, &all, &health_before).await?;
            }
            match self
                .start_in_order(stack, &containers, &ctx, &mut deadline)
                .await
            {
                Ok(noticed) => {
                    report.already_running = noticed.already_running;
                    report.waited_for_stop = noticed.waited_for_stop;
                    report.ready_at = noticed.ready_at;
                    break;
                }
                Err(Interrupted::Failed(e)) => return Err(e),
                Err(Interrupted::Vanished(gone)) if recreated => {
                    let services: BTreeSet<String> = gone.into_iter().map(|c| c.service).collect();
                    return Err(StacksError::Command {
                        stack: stack.to_owned(),
                        command: "compose up".to_owned(),
                        detail: format!(
                            "containers of {} vanished again",
                            services.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                Err(Interrupted::Vanished(gone)) => {
                    missing = gone.into_iter().map(|c| c.service).collect();
                }
            }
        }
        self.records.started(stack, &ids, report.clone());
        Ok(report)
    }

    /// Starts `containers` in dependency order, honouring the conditions their dependents
    /// wait for, and waits until every one runs (and is healthy, where it waits for health),
    /// none having died within `settle` of its start, bounded by `deadline` (pushed back while
    /// a stop in flight is waited for).
    async fn start_in_order(
        &self,
        stack: &str,
        containers: &[Prepared],
        ctx: &Ctx<'_>,
        deadline: &mut Instant,
    ) -> Result<Noticed, Interrupted> {
        let deps = dependencies(containers);
        let namespaces = namespace_targets(containers);
        let n = containers.len();
        // A dependency some dependent waits on to complete: its exit is no failure.
        let mut one_shot = vec![false; n];
        for mine in &deps {
            for (dep, condition) in mine {
                if *condition == Condition::Completed {
                    one_shot[*dep] = true;
                }
            }
        }
        let index: HashMap<&str, usize> = containers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.container.id.as_str(), i))
            .collect();
        // Subscribed before the first start, so that no event of it is missed; a stream that
        // is cut is resumed from the last event seen (or from just before this subscription).
        let mut resume_from = now_ns().saturating_sub(1_000_000_000);
        let mut events = self
            .engine
            .events(stack, None)
            .map_err(|e| engine_error(stack, "events", e))?;
        let mut live: Vec<Live> = vec![Live::default(); n];
        let mut noticed = Noticed::default();
        let mut flights: FuturesUnordered<BoxFuture<'_, Step>> = FuturesUnordered::new();
        let begun = Instant::now();
        if ctx.in_flight {
            let bounds =
                in_flight_bounds(containers, &order::dependents(&deps), |c| self.grace_of(c));
            for (i, p) in containers.iter().enumerate() {
                if p.container.is_up() {
                    tracing::info!(stack, container = %p.container.name, bound = ?bounds[i], "running, its stop may be in flight: waiting until it exits");
                    live[i].phase = Phase::Stopping {
                        until: bounds[i].map(|b| begun + b),
                    };
                    live[i].run_started = Some(p.container.started_at);
                    // It may have exited between the inspect and the subscription.
                    flights.push(self.check(i, &p.container.id));
                }
            }
        }
        // Dependencies left out to break a cycle: (dependent, dependency).
        let mut ignored: HashSet<(usize, usize)> = HashSet::new();
        let mut next_check = begun + RECHECK;
        loop {
            let startable: Vec<usize> = (0..n)
                .filter(|&i| {
                    live[i].phase == Phase::Waiting
                        && deps[i].iter().all(|(j, c)| {
                            ignored.contains(&(i, *j)) || live[*j].satisfies(*c, &containers[*j])
                        })
                })
                .collect();
            if !startable.is_empty() {
                for &i in &startable {
                    live[i].phase = Phase::Starting;
                    if !ctx.in_flight && ctx.found_up.contains(&containers[i].container.id) {
                        noticed
                            .already_running
                            .push(containers[i].container.to_ref());
                    }
                }
                flights.push(self.start_batch(containers, startable, ctx.slots));
                continue;
            }
            if let Some((i, j)) = stuck_in_a_cycle(&live, &deps, &namespaces, &ignored) {
                tracing::warn!(
                    stack,
                    container = %containers[i].container.name,
                    not_waiting_for = %containers[j].container.name,
                    "dependency cycle among the containers: starting one without waiting for the other"
                );
                ignored.insert((i, j));
                continue;
            }
            let now = Instant::now();
            for i in 0..n {
                if let Phase::Stopping { until: Some(until) } = live[i].phase {
                    if now >= until {
                        let c = &containers[i].container;
                        tracing::warn!(stack, container = %c.name, "still running at the end of the wait for its stop in flight: counted as started");
                        live[i].phase = Phase::Started;
                        noticed.already_running.push(c.to_ref());
                        *deadline = (*deadline).max(now + self.config.start_timeout);
                        flights.push(self.seen(i, &c.id));
                    }
                }
            }
            let over = settled(&live, containers, self.config.settle, now);
            // The end of the stack's downtime: every container runs (healthy where waited
            // for); the watch for `settle` that follows is the cycle's time, not the app's.
            match (over, noticed.ready_at) {
                (Some(_), None) => noticed.ready_at = Some(Utc::now()),
                (None, Some(_)) => noticed.ready_at = None,
                _ => {}
            }
            if over.is_some_and(|at| now >= at) {
                return Ok(noticed);
            }
            let stopping: Vec<Instant> = live
                .iter()
                .filter_map(|l| match l.phase {
                    Phase::Stopping { until } => Some(until.unwrap_or(now + RECHECK)),
                    _ => None,
                })
                .collect();
            if stopping.is_empty() && now >= *deadline {
                return Err(StacksError::StartTimeout {
                    stack: stack.to_owned(),
                    command: "start".to_owned(),
                    waited: self.config.start_timeout,
                    pending: pending(&live, containers, &deps),
                }
                .into());
            }
            if now >= next_check {
                next_check = now + RECHECK;
                for (i, l) in live.iter().enumerate() {
                    let on_the_way = matches!(l.phase, Phase::Stopping { .. })
                        || (l.phase == Phase::Up && !l.ready(&containers[i]));
                    if on_the_way {
                        flights.push(self.check(i, &containers[i].container.id));
                    }
                }
            }
            let mut wake = next_check;
            if let Some(at) = over {
                wake = wake.min(at);
            }
            if stopping.is_empty() {
                wake = wake.min(*deadline);
            }
            if let Some(first) = stopping.iter().min() {
                wake = wake.min(*first);
            }
            tokio::select! {
                Some(step) = flights.next(), if !flights.is_empty() => {
                    match step {
                        Step::Batch(results) => {
                            for (i, result) in results {
                                let c = &containers[i].container;
                                match result {
                                    Ok(()) => {
                                        // What waits only for it to be started may start now;
                                        // the inspect tells its run and health.
                                        live[i].phase = Phase::Started;
                                        flights.push(self.seen(i, &c.id));
                                    }
                                    Err(e) if e.is_not_found() => {
                                        return Err(Interrupted::Vanished(vec![c.to_ref()]));
                                    }
                                    Err(e) => return Err(container_error(stack, c, "start", e).into()),
                                }
                            }
                        }
                        Step::Seen(i, seen) => {
                            let seen = self.found(stack, &containers[i], seen)?;
                            let l = &mut live[i];
                            l.phase = Phase::Up;
                            l.since = Some(Instant::now());
                            l.run_started = Some(seen.started_at);
                            // A change seen on the stream while the start was under way is
                            // at least as new as the inspect; later ones are still to come.
                            l.health = l
                                .early_health
                                .take()
                                .filter(|(at, _)| *at >= seen.started_at)
                                .map(|(_, h)| h)
                                .or(seen.health);
                            if one_shot[i] && seen.state == State::Exited && seen.exit_code == 0 {
                                l.phase = Phase::Completed;
                            } else if seen.state == State::Running && l.death().is_none() {
                                l.running = true;
                            } else {
                                return Err(self.start_failed(stack, &containers[i]).await.into());
                            }
                        }
                        Step::Checked(i, seen) => {
                            let seen = self.found(stack, &containers[i], seen)?;
                            let l = &mut live[i];
                            let same_run = l.run_started == Some(seen.started_at);
                            match l.phase {
                                Phase::Stopping { .. } if !seen.is_up() => {
                                    l.phase = Phase::Waiting;
                                    noticed.waited_for_stop.push(containers[i].container.to_ref());
                                    *deadline = (*deadline).max(Instant::now() + self.config.start_timeout);
                                }
                                Phase::Stopping { .. } if !same_run => {
                                    // Its stop ended and something started it again meanwhile.
                                    l.phase = Phase::Started;
                                    noticed.already_running.push(containers[i].container.to_ref());
                                    flights.push(async move { Step::Seen(i, Ok(seen)) }.boxed());
                                }
                                // An answer from before this run (asked while it was still
                                // stopping, answered late) says nothing of this run.
                                Phase::Up if l.run_started.is_some_and(|run| seen.started_at < run) => {}
                                Phase::Up if l.running => {
                                    if seen.state != State::Running || !same_run {
                                        if one_shot[i] && seen.state == State::Exited && seen.exit_code == 0 && same_run {
                                            l.phase = Phase::Completed;
                                            l.running = false;
                                        } else {
                                            return Err(self.start_failed(stack, &containers[i]).await.into());
                                        }
                                    } else if seen.health.is_some() {
                                        l.health = seen.health;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                event = events.next() => {
                    let event = match event {
                        Some(Ok(event)) => event,
                        cut => {
                            let why = match cut {
                                Some(Err(e)) => e.to_string(),
                                _ => "the engine ended its event stream".to_owned(),
                            };
                            if !self.engine.answers().await {
                                return Err(StacksError::EngineUnreachable {
                                    detail: format!("stack {stack:?}: events: {why} ({}), and the engine answers nothing", self.engine.host()),
                                }
                                .into());
                            }
                            tracing::warn!(stack, "the engine's event stream was cut ({why}) while the engine answers: resuming it from the last event, and looking at every container again");
                            tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                            events = self
                                .engine
                                .events(stack, Some(resume_from))
                                .map_err(|e| engine_error(stack, "events", e))?;
                            for (i, l) in live.iter().enumerate() {
                                if matches!(l.phase, Phase::Stopping { .. } | Phase::Up) {
                                    flights.push(self.check(i, &containers[i].container.id));
                                }
                            }
                            continue;
                        }
                    };
                    resume_from = resume_from.max(event.time);
                    let Some(&i) = index.get(event.id.as_str()) else { continue };
                    let l = &mut live[i];
                    // Events of the run before this start (the engine may deliver the stop's
                    // `die`, or a late health probe, after the subscription) are not this run's.
                    if l.phase == Phase::Waiting || l.run_started.is_some_and(|run| event.time < run) {
                        continue;
                    }
                    if let Phase::Stopping { .. } = l.phase {
                        if event.action == "die" {
                            tracing::info!(stack, container = %containers[i].container.name, "its stop in flight ended");
                            l.phase = Phase::Waiting;
                            noticed.waited_for_stop.push(containers[i].container.to_ref());
                            *deadline = (*deadline).max(Instant::now() + self.config.start_timeout);
                        }
                        continue;
                    }
                    if let Some(health) = Health::from_action(&event.action) {
                        if matches!(l.phase, Phase::Starting | Phase::Started) {
                            l.early_health = Some((event.time, health));
                        } else {
                            l.health = Some(health);
                        }
                    } else if event.action == "die" {
                        l.died = Some((event.time, event.exit_code.unwrap_or(-1)));
                        if l.phase == Phase::Up {
                            if one_shot[i] && event.exit_code == Some(0) {
                                l.phase = Phase::Completed;
                                l.running = false;
                            } else {
                                return Err(self.start_failed(stack, &containers[i]).await.into());
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The start calls of one batch, holding one slot while they run.
    fn start_batch<'a>(
        &'a self,
        containers: &'a [Prepared],
        batch: Vec<usize>,
        slots: &'a Slots,
    ) -> BoxFuture<'a, Step> {
        async move {
            let _slot = slots.take().await;
            let calls = batch
                .into_iter()
                .map(|i| async move { (i, self.engine.start(&containers[i].container.id).await) });
            Step::Batch(join_all(calls).await)
        }
        .boxed()
    }

    /// The inspect right after a start.
    fn seen<'a>(&'a self, i: usize, id: &'a str) -> BoxFuture<'a, Step> {
        async move { Step::Seen(i, self.engine.inspect(id).await) }.boxed()
    }

    /// An inspect of a container on its way.
    fn check<'a>(&'a self, i: usize, id: &'a str) -> BoxFuture<'a, Step> {
        async move { Step::Checked(i, self.engine.inspect(id).await) }.boxed()
    }

    /// An inspect's answer, or how it ends the start.
    fn found(
        &self,
        stack: &str,
        prepared: &Prepared,
        seen: Result<Inspected, EngineError>,
    ) -> Result<Inspected, Interrupted> {
        match seen {
            Ok(seen) => Ok(seen),
            Err(e) if e.is_not_found() => {
                Err(Interrupted::Vanished(vec![prepared.container.to_ref()]))
            }
            Err(e) => Err(container_error(stack, &prepared.container, "inspect", e).into()),
        }
    }

    async fn start_failed(&self, stack: &str, prepared: &Prepared) -> StacksError {
        let c = &prepared.container;
        let status = match self.engine.inspect(&c.id).await {
            Ok(now) => now.status(),
            Err(e) => format!("cannot inspect it: {e}"),
        };
        let logs = match self.engine.logs_tail(&c.id, LOG_TAIL).await {
            Ok(logs) => logs,
            Err(e) => format!("(cannot read them: {e})"),
        };
        StacksError::StartFailed {
            stack: stack.to_owned(),
            command: format!("start of container {}", c.name),
            service: c.service.clone(),
            status,
            logs,
        }
    }
}

fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// For each container, how long a stop of it that may be in flight can still take: its grace
/// plus a margin, after the longest such chain of the containers that stop before it (its
/// dependents). `None` where a grace on the way has no bound.
fn in_flight_bounds(
    containers: &[Prepared],
    dependents: &[Vec<usize>],
    grace: impl Fn(&Inspected) -> Grace,
) -> Vec<Option<Duration>> {
    /// Computed, being computed (a cycle: counts for nothing), or not yet.
    #[derive(Clone, Copy)]
    enum Memo {
        Done(Option<Duration>),
        Visiting,
        Todo,
    }
    fn bound(
        i: usize,
        containers: &[Prepared],
        dependents: &[Vec<usize>],
        grace: &dyn Fn(&Inspected) -> Grace,
        memo: &mut [Memo],
    ) -> Option<Duration> {
        match memo[i] {
            Memo::Done(b) => return b,
            Memo::Visiting => return Some(Duration::ZERO),
            Memo::Todo => {}
        }
        memo[i] = Memo::Visiting;
        let mut before = Some(Duration::ZERO);
        for &d in &dependents[i] {
            before = match (before, bound(d, containers, dependents, grace, memo)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let own = grace(&containers[i].container)
            .seconds()
            .map(|secs| Duration::from_secs(secs) + IN_FLIGHT_MARGIN);
        let b = before.zip(own).map(|(a, b)| a + b);
        memo[i] = Memo::Done(b);
        b
    }
    let mut memo = vec![Memo::Todo; containers.len()];
    (0..containers.len())
        .map(|i| bound(i, containers, dependents, &grace, &mut memo))
        .collect()
}

/// A dependency to leave out when the containers still waiting can never start: each of them
/// waits for another that waits, so there is a cycle (of links, namespaces or `depends_on`
/// labels, which compose refuses but hand-made containers may have). One edge of a cycle,
/// so that what only waits for a member of a cycle still waits for it; never a namespace
/// edge where the cycle has another (the engine cannot start a container before the one whose
/// namespace it joins). `None` while some container can start.
fn stuck_in_a_cycle(
    live: &[Live],
    deps: &[Vec<(usize, Condition)>],
    namespaces: &[Option<usize>],
    ignored: &HashSet<(usize, usize)>,
) -> Option<(usize, usize)> {
    let waiting = |j: usize| live[j].phase == Phase::Waiting;
    // The edges that still hold a waiting container back: dependent → dependency.
    let edges = |i: usize| {
        deps[i]
            .iter()
            .map(|(j, _)| *j)
            .filter(move |j| waiting(*j) && !ignored.contains(&(i, *j)))
    };
    let blocked: Vec<usize> = (0..live.len()).filter(|&i| waiting(i)).collect();
    if blocked.is_empty() || !blocked.iter().all(|&i| edges(i).next().is_some()) {
        return None;
    }
    // Whether `to` is reached from `from` along the edges.
    let reaches = |from: usize, to: usize| {
        let mut seen = vec![false; live.len()];
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            if x == to {
                return true;
            }
            if !std::mem::replace(&mut seen[x], true) {
                stack.extend(edges(x));
            }
        }
        false
    };
    let in_cycles: Vec<(usize, usize)> = blocked
        .iter()
        .flat_map(|&i| edges(i).map(move |j| (i, j)))
        .filter(|&(i, j)| reaches(j, i))
        .collect();
    in_cycles
        .iter()
        .find(|(i, j)| namespaces[*i] != Some(*j))
        .or(in_cycles.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::ServiceDeps;

    fn prepared(service: &str, stop_timeout: Option<i64>) -> Prepared {
        Prepared {
            container: Inspected {
                state: State::Running,
                stop_timeout,
                ..Inspected::sample(service)
            },
            deps: ServiceDeps::new(),
            health_before: None,
        }
    }

    fn grace(c: &Inspected) -> Grace {
        match c.stop_timeout {
            Some(s) if s < 0 => Grace::Forever,
            Some(s) => Grace::Own(s.unsigned_abs()),
            None => Grace::Ours(10),
        }
    }

    #[test]
    fn an_in_flight_stop_is_bounded_along_the_chain_that_stops_before() {
        // front → web → db (front stops first); side → db; cache alone, its grace unbounded.
        let containers = [
            prepared("db", Some(60)),
            prepared("web", Some(20)),
            prepared("front", None),
            prepared("side", Some(1)),
            prepared("cache", Some(-1)),
        ];
        let dependents = vec![vec![1, 3], vec![2], vec![], vec![], vec![]];
        let bounds = in_flight_bounds(&containers, &dependents, grace);
        let m = IN_FLIGHT_MARGIN;
        let s = Duration::from_secs;
        assert_eq!(bounds[2], Some(s(10) + m), "front: its own grace");
        assert_eq!(bounds[1], Some(s(10) + m + s(20) + m), "web: after front");
        assert_eq!(
            bounds[0],
            Some(s(10) + m + s(20) + m + s(60) + m),
            "db: after the longer of its chains"
        );
        assert_eq!(bounds[3], Some(s(1) + m));
        assert_eq!(bounds[4], None, "no bound of ours");
        // A chain through an unbounded grace is unbounded.
        let dependents = vec![vec![4], vec![], vec![], vec![], vec![]];
        assert_eq!(in_flight_bounds(&containers, &dependents, grace)[0], None);
        // A cycle does not recurse for ever.
        let dependents = vec![vec![1], vec![0], vec![], vec![], vec![]];
        let bounds = in_flight_bounds(&containers, &dependents, grace);
        assert!(bounds[0].is_some() && bounds[1].is_some(), "{bounds:?}");
    }

    #[test]
    fn a_cycle_among_the_waiting_is_broken_and_nothing_else() {
        let waiting = Live::default();
        let up = Live {
            phase: Phase::Up,
            running: true,
            ..Live::default()
        };
        let started = Condition::Started;
        // a ⇄ b, c waits for a: stuck; one edge of the cycle is left out, so c still waits
        // for a.
        let deps = vec![vec![(1, started)], vec![(0, started)], vec![(0, started)]];
        let live = [waiting.clone(), waiting.clone(), waiting.clone()];
        let none = [None, None, None];
        let edge = stuck_in_a_cycle(&live, &deps, &none, &HashSet::new()).expect("stuck");
        assert_eq!(edge, (0, 1));
        let ignored = HashSet::from([edge]);
        assert_eq!(stuck_in_a_cycle(&live, &deps, &none, &ignored), None);
        // a joins b's namespace: the edge left out is b's on a.
        let joins = [Some(1), None, None];
        let edge = stuck_in_a_cycle(&live, &deps, &joins, &HashSet::new()).expect("stuck");
        assert_eq!(edge, (1, 0));
        // A chain waiting for a container on its way is not a cycle.
        let deps = vec![vec![], vec![(0, started)], vec![(1, started)]];
        let live = [up, waiting.clone(), waiting];
        assert_eq!(stuck_in_a_cycle(&live, &deps, &none, &HashSet::new()), None);
    }
}
