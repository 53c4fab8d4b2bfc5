//! The fake's model of the engine: each container, running or not and since when, and what a
//! stop or a start does to it, scripted [`Fact`]s included.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{locked, Fact, FakeStacks};
use crate::{ContainerRef, StacksError, StartReport, StartRequest, StopReport, StoppedContainer};

/// One container of the model.
#[derive(Debug, Clone)]
pub(super) struct Model {
    pub(super) container: ContainerRef,
    pub(super) running: bool,
    pub(super) started_at: DateTime<Utc>,
    pub(super) finished_at: Option<DateTime<Utc>>,
    pub(super) exit_code: Option<i64>,
    /// A stop of it was left in flight.
    pub(super) stopping: bool,
}

impl Model {
    /// A container that runs since `started_at`.
    pub(super) fn running(container: ContainerRef, started_at: DateTime<Utc>) -> Self {
        Model {
            container,
            running: true,
            started_at,
            finished_at: None,
            exit_code: None,
            stopping: false,
        }
    }

    /// It ends at `at` with `code`.
    pub(super) fn exits(&mut self, at: DateTime<Utc>, code: i64) {
        self.running = false;
        self.finished_at = Some(at);
        self.exit_code = Some(code);
    }
}

pub(super) fn container(stack: &str, service: &str) -> ContainerRef {
    ContainerRef {
        id: format!("{stack}-{service}-id"),
        name: format!("{stack}-{service}-1"),
        service: service.to_owned(),
    }
}

impl FakeStacks {
    /// Takes the first `fact` scripted for `service` of `stack`, if any.
    pub(super) fn take_fact(&self, stack: &str, service: &str, fact: Fact) -> bool {
        let mut facts = locked(&self.facts);
        let Some(list) = facts.get_mut(&(stack.to_owned(), service.to_owned())) else {
            return false;
        };
        match list.iter().position(|f| *f == fact) {
            Some(at) => {
                list.remove(at);
                true
            }
            None => false,
        }
    }

    /// Stops `containers` of `stack` in the model at `requested`; whether a stop was left in
    /// flight.
    pub(super) fn stop_models(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        requested: DateTime<Utc>,
    ) -> (StopReport, bool) {
        let mut report = StopReport::default();
        let mut in_flight = false;
        let mut world = locked(&self.world);
        let models = world.entry(stack.to_owned()).or_default();
        for c in containers {
            let Some(m) = models.iter_mut().find(|m| m.container.id == c.id) else {
                report.vanished.push(c.clone());
                continue;
            };
            if !m.running || m.stopping {
                report.containers.push(StoppedContainer {
                    container: m.container.clone(),
                    was_running: false,
                    stop_requested_at: requested,
                    exited_at: m.finished_at,
                    exit_code: m.exit_code,
                    killed: false,
                });
                continue;
            }
            match self.stop_model(stack, m, requested) {
                Ok(stopped) => report.containers.push(stopped),
                Err(()) => in_flight = true,
            }
        }
        let services: BTreeSet<String> = containers.iter().map(|c| c.service.clone()).collect();
        for service in services {
            if self.take_fact(stack, &service, Fact::AppearsAfterStop) {
                let n = models.len();
                let mut new = container(stack, &service);
                new.id = format!("{stack}-{service}-new{n}");
                new.name = format!("{stack}-{service}-{}", n + 1);
                models.push(Model::running(new, Utc::now().max(requested)));
            }
        }
        (report, in_flight)
    }

    /// Stops one running container of the model; `Err` when its stop is left in flight.
    fn stop_model(
        &self,
        stack: &str,
        m: &mut Model,
        requested: DateTime<Utc>,
    ) -> Result<StoppedContainer, ()> {
        if self.take_fact(stack, &m.container.service, Fact::StopInFlight) {
            m.stopping = true;
            return Err(());
        }
        let killed = self.take_fact(stack, &m.container.service, Fact::Killed);
        let exited = Utc::now().max(requested);
        m.exits(exited, if killed { 137 } else { 0 });
        let stopped = StoppedContainer {
            container: m.container.clone(),
            was_running: true,
            stop_requested_at: requested,
            exited_at: Some(exited),
            exit_code: m.exit_code,
            killed,
        };
        if self.take_fact(stack, &m.container.service, Fact::RestartedAfterStop) {
            m.running = true;
            // Started again the moment it exited: a `StartedAt` later than this stop's request
            // and never later than what happens next (a later stop's request), as on an
            // engine.
            m.started_at = exited;
        }
        Ok(stopped)
    }

    /// [`StacksError::Vanished`] when a container of the request is no longer in the model,
    /// as the engine's start says where it may not recreate it.
    pub(super) fn none_vanished(
        &self,
        stack: &str,
        request: &StartRequest,
    ) -> Result<(), StacksError> {
        let world = locked(&self.world);
        let models = world.get(stack).map(Vec::as_slice).unwrap_or_default();
        let gone: Vec<String> = request
            .containers
            .iter()
            .filter(|c| !models.iter().any(|m| m.container.id == c.id))
            .map(|c| c.name.clone())
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        Err(StacksError::Vanished {
            stack: stack.to_owned(),
            containers: gone,
        })
    }

    /// Starts the request's containers of `stack` in the model now; what the start noticed,
    /// and the containers it started.
    pub(super) fn start_models(
        &self,
        stack: &str,
        request: &StartRequest,
    ) -> (StartReport, Vec<ContainerRef>) {
        let mut report = StartReport::default();
        let mut started = Vec::new();
        let now = Utc::now();
        let mut world = locked(&self.world);
        let models = world.entry(stack.to_owned()).or_default();
        for c in &request.containers {
            let Some(m) = models.iter_mut().find(|m| m.container.id == c.id) else {
                // Vanished: compose makes a new one for its service.
                let n = models.len();
                let mut new = container(stack, &c.service);
                new.id = format!("{stack}-{}-made{n}", c.service);
                models.push(Model::running(new.clone(), now));
                report.recreated.push(c.service.clone());
                started.push(new);
                continue;
            };
            if m.stopping && request.stop_may_be_in_flight {
                // Waited for until its stop ended, then started.
                report.waited_for_stop.push(m.container.clone());
                m.stopping = false;
                m.started_at = now;
                m.running = true;
                started.push(m.container.clone());
            } else if m.running {
                report.already_running.push(m.container.clone());
                if m.stopping {
                    // Counted as started; then the stop in flight ends, and it is down.
                    m.stopping = false;
                    m.exits(now, 0);
                }
            } else {
                m.running = true;
                m.started_at = now;
                started.push(m.container.clone());
            }
        }
        report.recreated.sort();
        report.recreated.dedup();
        (report, started)
    }

    /// The first of `started` scripted to die within the settle window dies: a failed start.
    pub(super) fn deaths_after_start(
        &self,
        stack: &str,
        started: &[ContainerRef],
    ) -> Result<(), StacksError> {
        let Some(c) = started
            .iter()
            .find(|c| self.take_fact(stack, &c.service, Fact::DiesAfterStart))
        else {
            return Ok(());
        };
        let now = Utc::now();
        let mut world = locked(&self.world);
        if let Some(m) = world
            .get_mut(stack)
            .and_then(|models| models.iter_mut().find(|m| m.container.id == c.id))
        {
            m.exits(now, 2);
        }
        Err(StacksError::StartFailed {
            stack: stack.to_owned(),
            command: format!("start of container {}", c.name),
            service: c.service.clone(),
            status: "Exited (2)".to_owned(),
            logs: "fake: died within the settle window".to_owned(),
        })
    }
}
