//! The start of a stack: exactly the containers asked for, each as soon as the condition its
//! dependents wait for is met, watched on the engine's event stream until every one runs (and
//! is healthy where it was before the stop) and none died within `settle` of its start. A
//! container whose stop may still be in flight is waited for until it has exited, never
//! signalled again. Vanished containers are handed to the compose fallback, and the start
//! resumes with what it made — where the request allows it; else the start ends with
//! [`StacksError::Vanished`], before any call where it knows so first.
//!
//! This file decides what a start knows before its first call and puts the attempts together;
//! `attempt` is one attempt through the engine, `graph` what the dependencies alone tell.
//!
//! Slots: each batch of start calls (the containers that became startable together: a
//! dependency level) holds one slot while its calls run; every wait holds none.

mod attempt;
mod graph;

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::Utc;
use tokio::time::Instant;

use super::listing::Prepared;
use super::EngineStacks;
use crate::engine::Health;
use crate::name::check_stack_name;
use crate::{ContainerRef, Slots, StacksError, StartReport};

use attempt::Attempt;

/// What to start.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    /// Exactly these containers.
    pub(super) containers: Vec<ContainerRef>,
    /// A stop of these containers may still be in flight.
    pub(super) in_flight: bool,
    /// Vanished containers may be recreated by compose (see
    /// [`crate::StartRequest::recreate_vanished`]).
    pub(super) recreate_vanished: bool,
    pub(super) slots: &'a Slots,
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
#[derive(Clone, Copy)]
struct Ctx<'a> {
    in_flight: bool,
    /// Containers an inspect of this start found running before any start call.
    found_up: &'a HashSet<String>,
    slots: &'a Slots,
}

/// What a start knows of its containers before its first call.
struct Known {
    /// The containers that still exist, in the request's order.
    containers: Vec<Prepared>,
    /// What the stop recorded of each one's health, by id.
    health_before: HashMap<String, Option<Health>>,
    /// See [`Ctx::found_up`].
    found_up: HashSet<String>,
    /// The containers that no longer exist (their services are the compose fallback's).
    missing: Vec<ContainerRef>,
}

/// A start's report before its first call (the health checks it will not wait for), and
/// its beginning logged.
fn first_report(
    stack: &str,
    requested: &[ContainerRef],
    containers: &[Prepared],
    in_flight: bool,
) -> StartReport {
    let report = StartReport {
        not_waited_for_health: not_waited_for_health(containers),
        ..StartReport::default()
    };
    if !report.not_waited_for_health.is_empty() {
        tracing::warn!(stack, services = ?report.not_waited_for_health, "health checks that did not pass before the stop: waiting for these only until they run");
    }
    let names: Vec<&str> = requested.iter().map(|c| c.name.as_str()).collect();
    tracing::info!(stack, containers = ?names, in_flight, "starting");
    report
}

impl EngineStacks {
    /// Starts exactly the plan's containers (see [`Plan`]).
    pub(super) async fn start_plan(
        &self,
        stack: &str,
        plan: Plan<'_>,
    ) -> Result<StartReport, StacksError> {
        check_stack_name(stack)?;
        let requested = distinct(plan.containers);
        if requested.is_empty() {
            return Ok(StartReport::default());
        }
        let mut deadline = Instant::now() + self.config.start_timeout;
        let ids: Vec<String> = requested.iter().map(|c| c.id.clone()).collect();
        let Known {
            mut containers,
            health_before,
            found_up,
            mut missing,
        } = self
            .known(stack, &requested, plan.in_flight || !plan.recreate_vanished)
            .await?;
        let mut report = first_report(stack, &requested, &containers, plan.in_flight);

        let ctx = Ctx {
            in_flight: plan.in_flight,
            found_up: &found_up,
            slots: plan.slots,
        };
        if !missing.is_empty() && !plan.recreate_vanished {
            let names: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
            tracing::warn!(stack, containers = ?names, "containers to start were removed outside the controller: not recreating them, starting nothing");
            return Err(not_recreated(stack, missing));
        }
        let mut recreated = false;
        loop {
            if !missing.is_empty() {
                recreated = true;
                let services: BTreeSet<String> = std::mem::take(&mut missing)
                    .into_iter()
                    .map(|c| c.service)
                    .collect();
                let services: Vec<String> = services.into_iter().collect();
                let (services, new_ids) = self
                    .recreate(stack, &services, &containers, deadline)
                    .await?;
                report.recreated = services;
                let mut all: Vec<String> =
                    containers.iter().map(|p| p.container.id.clone()).collect();
                all.extend(new_ids);
                containers = self.prepare(stack, &all, &health_before).await?;
            }
            let mut attempt = Attempt::new(self, stack, &containers, ctx, deadline);
            let result = attempt.run().await;
            deadline = attempt.deadline;
            match result {
                Ok(noticed) => {
                    report.already_running = noticed.already_running;
                    report.waited_for_stop = noticed.waited_for_stop;
                    report.ready_at = noticed.ready_at;
                    break;
                }
                Err(Interrupted::Failed(e)) => return Err(e),
                Err(Interrupted::Vanished(gone)) if recreated => {
                    return Err(vanished_again(stack, gone))
                }
                Err(Interrupted::Vanished(gone)) if !plan.recreate_vanished => {
                    // Removed while the start was under way: what was started of the stack
                    // stays as it is (its other containers were the operator's to remove).
                    return Err(not_recreated(stack, gone));
                }
                Err(Interrupted::Vanished(gone)) => missing = gone,
            }
        }
        self.records.started(stack, &ids, report.clone());
        Ok(report)
    }

    /// What the start knows of the `requested` containers before its first call. Right after
    /// this instance stopped them, what its stop saw is still true unless a container was
    /// removed meanwhile, which its start then tells; without the stop's record (after a
    /// crash), or with `ask` (the stop may still be in flight; or a vanished container must
    /// be known before anything is started, as it may not be recreated), the engine is asked.
    async fn known(
        &self,
        stack: &str,
        requested: &[ContainerRef],
        ask: bool,
    ) -> Result<Known, StacksError> {
        let ids: Vec<String> = requested.iter().map(|c| c.id.clone()).collect();
        let recorded = self.records.recorded(stack, &ids);
        let health_before: HashMap<String, Option<Health>> = recorded
            .iter()
            .map(|p| (p.container.id.clone(), p.health_before))
            .collect();
        let (mut containers, to_inspect): (Vec<Prepared>, Vec<String>) = if ask {
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
        let found_up = containers
            .iter()
            .filter(|p| to_inspect.contains(&p.container.id) && p.container.is_up())
            .map(|p| p.container.id.clone())
            .collect();
        let missing = requested
            .iter()
            .filter(|r| !containers.iter().any(|p| p.container.id == r.id))
            .cloned()
            .collect();
        Ok(Known {
            containers,
            health_before,
            found_up,
            missing,
        })
    }
}

/// The containers without repeats, in their first order.
fn distinct(containers: Vec<ContainerRef>) -> Vec<ContainerRef> {
    let mut requested: Vec<ContainerRef> = Vec::new();
    for c in containers {
        if !requested.iter().any(|r| r.id == c.id) {
            requested.push(c);
        }
    }
    requested
}

/// The services with a health check that did not pass before the stop, sorted.
fn not_waited_for_health(containers: &[Prepared]) -> Vec<String> {
    containers
        .iter()
        .filter(|p| p.container.has_healthcheck && !p.waits_for_health())
        .map(|p| p.container.service.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The error of a start that may not recreate `gone`, removed outside the controller.
fn not_recreated(stack: &str, gone: Vec<ContainerRef>) -> StacksError {
    StacksError::Vanished {
        stack: stack.to_owned(),
        containers: gone.into_iter().map(|c| c.name).collect(),
    }
}

/// Containers that compose made for the start vanished too.
fn vanished_again(stack: &str, gone: Vec<ContainerRef>) -> StacksError {
    let services: BTreeSet<String> = gone.into_iter().map(|c| c.service).collect();
    StacksError::Command {
        stack: stack.to_owned(),
        command: "compose up".to_owned(),
        detail: format!(
            "containers of {} vanished again",
            services.into_iter().collect::<Vec<_>>().join(", ")
        ),
    }
}
