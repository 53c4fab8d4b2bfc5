//! One attempt of a start through the engine: the containers started in dependency order, each
//! as soon as the condition its dependents wait for is met, and watched on the engine's event
//! stream until every one runs (and is healthy where it waits for health) and none died within
//! `settle` of its start. A container whose stop may still be in flight is waited for until it
//! exits, never signalled again. A container that vanished ends the attempt
//! ([`Interrupted::Vanished`]): the compose fallback brings its service back, and another
//! attempt follows.
//!
//! Everything the attempt knows is in [`Attempt`]; its loop ([`Attempt::run`]) starts what may
//! start, then waits for the first of: an engine call of its own coming back ([`Step`]), an
//! event of the project, or the time to look again.

mod heard;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use futures::future::{join_all, BoxFuture};
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::graph::{in_flight_bounds, stuck_in_a_cycle};
use super::{Ctx, Interrupted, Noticed};
use crate::engine::{EngineError, Event, Inspected};
use crate::engine_stacks::listing::{dependencies, namespace_targets, Prepared};
use crate::engine_stacks::progress::{pending, settled, Live, Phase};
use crate::engine_stacks::{engine_error, EngineStacks};
use crate::order::{self, Condition};
use crate::StacksError;

/// How often the containers still on their way (stopping, not yet healthy) are inspected, in
/// case the engine's event stream missed something.
const RECHECK: Duration = Duration::from_secs(2);

type Events = BoxStream<'static, Result<Event, EngineError>>;

/// One engine call of a start that has come back.
pub(super) enum Step {
    /// The start calls of one batch.
    Batch(Vec<(usize, Result<(), EngineError>)>),
    /// The inspect right after a start.
    Seen(usize, Result<Inspected, EngineError>),
    /// An inspect of a container on its way, in case an event was missed.
    Checked(usize, Result<Inspected, EngineError>),
}

/// The state of one attempt; containers are named by their index in `containers`.
pub(super) struct Attempt<'a> {
    stacks: &'a EngineStacks,
    stack: &'a str,
    containers: &'a [Prepared],
    ctx: Ctx<'a>,
    /// When the start times out; pushed back while a stop in flight is waited for.
    pub(super) deadline: Instant,
    deps: Vec<Vec<(usize, Condition)>>,
    namespaces: Vec<Option<usize>>,
    /// A dependency some dependent waits on to complete: its exit is no failure.
    one_shot: Vec<bool>,
    index: HashMap<&'a str, usize>,
    live: Vec<Live>,
    noticed: Noticed,
    /// The engine calls under way.
    flights: FuturesUnordered<BoxFuture<'a, Step>>,
    /// Dependencies left out to break a cycle: (dependent, dependency).
    ignored: HashSet<(usize, usize)>,
    /// When the containers on their way are inspected next.
    next_check: Instant,
    /// Where a cut event stream resumes: the last event seen, or just before the subscription.
    resume_from: i64,
}

impl<'a> Attempt<'a> {
    pub(super) fn new(
        stacks: &'a EngineStacks,
        stack: &'a str,
        containers: &'a [Prepared],
        ctx: Ctx<'a>,
        deadline: Instant,
    ) -> Self {
        let deps = dependencies(containers);
        let mut one_shot = vec![false; containers.len()];
        for mine in &deps {
            for (dep, condition) in mine {
                if *condition == Condition::Completed {
                    one_shot[*dep] = true;
                }
            }
        }
        Attempt {
            stacks,
            stack,
            containers,
            ctx,
            deadline,
            namespaces: namespace_targets(containers),
            deps,
            one_shot,
            index: containers
                .iter()
                .enumerate()
                .map(|(i, p)| (p.container.id.as_str(), i))
                .collect(),
            live: vec![Live::default(); containers.len()],
            noticed: Noticed::default(),
            flights: FuturesUnordered::new(),
            ignored: HashSet::new(),
            next_check: Instant::now(),
            resume_from: now_ns().saturating_sub(1_000_000_000),
        }
    }

    /// Starts the containers and waits until the start is over (see the module's comment),
    /// bounded by the deadline.
    pub(super) async fn run(&mut self) -> Result<Noticed, Interrupted> {
        // Subscribed before the first start, so that no event of it is missed.
        let mut events = self.subscribe(None)?;
        let begun = Instant::now();
        self.wait_for_stops_in_flight(begun);
        self.next_check = begun + RECHECK;
        loop {
            if self.start_the_startable() || self.break_a_cycle() {
                continue;
            }
            let now = Instant::now();
            self.end_overdue_stop_waits(now);
            let over = self.over_at(now);
            if over.is_some_and(|at| now >= at) {
                return Ok(std::mem::take(&mut self.noticed));
            }
            let stopping = self.stop_waits_end(now);
            if stopping.is_empty() && now >= self.deadline {
                return Err(self.timed_out());
            }
            self.recheck_the_containers_on_their_way(now);
            let wake = self.wake_at(over, &stopping);
            tokio::select! {
                Some(step) = self.flights.next(), if !self.flights.is_empty() => {
                    self.on_step(step).await?;
                }
                event = events.next() => match event {
                    Some(Ok(event)) => self.on_event(event).await?,
                    cut => events = self.resubscribe(cut).await?,
                },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The project's events from now on, or from `since` on (ns since the epoch).
    fn subscribe(&self, since: Option<i64>) -> Result<Events, Interrupted> {
        let stack = self.stack;
        Ok(self
            .stacks
            .engine
            .events(stack, since)
            .map_err(|e| engine_error(stack, "events", e))?)
    }

    /// The running containers of a start whose stops may be in flight: each waited for until
    /// it exits, at most until its bound.
    fn wait_for_stops_in_flight(&mut self, begun: Instant) {
        if !self.ctx.in_flight {
            return;
        }
        let (stack, stacks, containers) = (self.stack, self.stacks, self.containers);
        let bounds = in_flight_bounds(containers, &order::dependents(&self.deps), |c| {
            stacks.grace_of(c)
        });
        for (i, p) in containers.iter().enumerate() {
            if p.container.is_up() {
                tracing::info!(stack, container = %p.container.name, bound = ?bounds[i], "running, its stop may be in flight: waiting until it exits");
                self.live[i].phase = Phase::Stopping {
                    until: bounds[i].map(|b| begun + b),
                };
                self.live[i].run_started = Some(p.container.started_at);
                // It may have exited between the inspect and the subscription.
                self.flights.push(self.check(i));
            }
        }
    }

    /// Starts every waiting container whose dependencies are met, in one batch; whether there
    /// was one.
    fn start_the_startable(&mut self) -> bool {
        let (live, deps, containers) = (&self.live, &self.deps, self.containers);
        let startable: Vec<usize> = (0..containers.len())
            .filter(|&i| {
                live[i].phase == Phase::Waiting
                    && deps[i].iter().all(|(j, c)| {
                        self.ignored.contains(&(i, *j)) || live[*j].satisfies(*c, &containers[*j])
                    })
            })
            .collect();
        if startable.is_empty() {
            return false;
        }
        for &i in &startable {
            self.live[i].phase = Phase::Starting;
            let c = &containers[i].container;
            if !self.ctx.in_flight && self.ctx.found_up.contains(&c.id) {
                self.noticed.already_running.push(c.to_ref());
            }
        }
        self.flights.push(self.start_batch(startable));
        true
    }

    /// Leaves out one dependency of a cycle that keeps every waiting container waiting;
    /// whether there was one.
    fn break_a_cycle(&mut self) -> bool {
        let Some((i, j)) =
            stuck_in_a_cycle(&self.live, &self.deps, &self.namespaces, &self.ignored)
        else {
            return false;
        };
        tracing::warn!(
            stack = self.stack,
            container = %self.containers[i].container.name,
            not_waiting_for = %self.containers[j].container.name,
            "dependency cycle among the containers: starting one without waiting for the other"
        );
        self.ignored.insert((i, j));
        true
    }

    /// A container still running at the end of the wait for its stop in flight counts as
    /// started.
    fn end_overdue_stop_waits(&mut self, now: Instant) {
        let (stack, containers) = (self.stack, self.containers);
        for (i, p) in containers.iter().enumerate() {
            if let Phase::Stopping { until: Some(until) } = self.live[i].phase {
                if now >= until {
                    let c = &p.container;
                    tracing::warn!(stack, container = %c.name, "still running at the end of the wait for its stop in flight: counted as started");
                    self.live[i].phase = Phase::Started;
                    self.noticed.already_running.push(c.to_ref());
                    self.deadline = self.deadline.max(now + self.stacks.config.start_timeout);
                    self.flights.push(self.seen(i));
                }
            }
        }
    }

    /// When the start is over, if every container is ready; notes when they all became so.
    fn over_at(&mut self, now: Instant) -> Option<Instant> {
        let over = settled(&self.live, self.containers, self.stacks.config.settle, now);
        // The end of the stack's downtime: every container runs (healthy where waited
        // for); the watch for `settle` that follows is the cycle's time, not the app's.
        match (over, self.noticed.ready_at) {
            (Some(_), None) => self.noticed.ready_at = Some(Utc::now()),
            (None, Some(_)) => self.noticed.ready_at = None,
            _ => {}
        }
        over
    }

    /// When each wait for a stop in flight ends (an unbounded one: at the next look).
    fn stop_waits_end(&self, now: Instant) -> Vec<Instant> {
        self.live
            .iter()
            .filter_map(|l| match l.phase {
                Phase::Stopping { until } => Some(until.unwrap_or(now + RECHECK)),
                _ => None,
            })
            .collect()
    }

    fn timed_out(&self) -> Interrupted {
        StacksError::StartTimeout {
            stack: self.stack.to_owned(),
            command: "start".to_owned(),
            waited: self.stacks.config.start_timeout,
            pending: pending(&self.live, self.containers, &self.deps),
        }
        .into()
    }

    /// Inspects, every [`RECHECK`], the containers still stopping or not yet ready.
    fn recheck_the_containers_on_their_way(&mut self, now: Instant) {
        if now < self.next_check {
            return;
        }
        self.next_check = now + RECHECK;
        for i in 0..self.live.len() {
            let l = &self.live[i];
            let on_the_way = matches!(l.phase, Phase::Stopping { .. })
                || (l.phase == Phase::Up && !l.ready(&self.containers[i]));
            if on_the_way {
                self.flights.push(self.check(i));
            }
        }
    }

    /// The next time to look, unless an engine call or an event comes first.
    fn wake_at(&self, over: Option<Instant>, stopping: &[Instant]) -> Instant {
        let mut wake = self.next_check;
        if let Some(at) = over {
            wake = wake.min(at);
        }
        if stopping.is_empty() {
            wake = wake.min(self.deadline);
        }
        if let Some(first) = stopping.iter().min() {
            wake = wake.min(*first);
        }
        wake
    }
    /// The start calls of one batch, holding one slot while they run.
    fn start_batch(&self, batch: Vec<usize>) -> BoxFuture<'a, Step> {
        let (stacks, containers, slots) = (self.stacks, self.containers, self.ctx.slots);
        async move {
            let _slot = slots.take().await;
            let calls = batch.into_iter().map(|i| async move {
                (i, stacks.engine.start(&containers[i].container.id).await)
            });
            Step::Batch(join_all(calls).await)
        }
        .boxed()
    }

    /// The inspect right after a start.
    fn seen(&self, i: usize) -> BoxFuture<'a, Step> {
        let (stacks, id) = (self.stacks, self.id(i));
        async move { Step::Seen(i, stacks.engine.inspect(id).await) }.boxed()
    }

    /// An inspect of a container on its way.
    fn check(&self, i: usize) -> BoxFuture<'a, Step> {
        let (stacks, id) = (self.stacks, self.id(i));
        async move { Step::Checked(i, stacks.engine.inspect(id).await) }.boxed()
    }

    fn id(&self, i: usize) -> &'a str {
        let containers: &'a [Prepared] = self.containers;
        &containers[i].container.id
    }
}

fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(0)
}
