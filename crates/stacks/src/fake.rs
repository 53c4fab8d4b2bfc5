//! A recording fake of [`Stacks`] for other crates' tests and examples (feature `mock`).
//!
//! A fixed list of running stacks, one container per service (id `<stack>-<service>-id`,
//! name `<stack>-<service>-1`); every stop and start logged (`stop NAME`, `start NAME
//! svc1,svc2`); per-stack trouble — a call that fails, hangs, panics or finds the engine away —
//! to drive the failure paths; and, for the v2 calls, a model of each container (running or
//! not, since when) with scripted [`Fact`]s, so that a test can produce every piece of
//! evidence the engine gives: a container killed at the end of its grace, one restarted by
//! someone else after its stop, a new container that appears, a start that dies in the settle
//! window, a stop left in flight.
//!
//! `running_app_stacks` and `is_running` answer with the configured stacks whatever happened
//! since; the other calls answer from the model.
//!
//! This file holds the fake and its calls; `model` is the model of the containers and what a
//! stop or a start does to them, `script` what a test can script.

mod model;
mod script;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    ContainerRef, DownCheck, HookCommand, HookError, HookRun, RunningStack, Slots, StackPolicy,
    Stacks, StacksError, StartReport, StartRequest, StopReport,
};

use model::{container, Model};
pub use script::{Fact, HookScript, Timing, Trouble};

/// A log shared between fakes, so a test sees the order of everything that happened.
pub type CallLog = Arc<Mutex<Vec<String>>>;

/// Stacks that exist only in memory; see the module docs.
#[derive(Debug, Default)]
pub struct FakeStacks {
    running: Vec<RunningStack>,
    stop_trouble: Mutex<HashMap<String, Trouble>>,
    start_trouble: Mutex<HashMap<String, Trouble>>,
    check_trouble: Mutex<HashMap<String, Trouble>>,
    log: CallLog,
    world: Mutex<HashMap<String, Vec<Model>>>,
    facts: Mutex<HashMap<(String, String), Vec<Fact>>>,
    timing: Timing,
    hooks: Mutex<HashMap<(String, String), VecDeque<HookScript>>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked mid-call must not hide its own failure behind a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeStacks {
    /// Stacks `(name, services)` that run, one container per service; every call on them
    /// succeeds.
    pub fn running<'a>(stacks: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Self {
        let booted = Utc::now() - chrono::Duration::hours(1);
        let running: Vec<RunningStack> = stacks
            .into_iter()
            .map(|(name, services)| RunningStack {
                name: name.to_owned(),
                services: services.iter().map(|s| (*s).to_owned()).collect(),
                containers: services.iter().map(|s| container(name, s)).collect(),
                policy: StackPolicy::without_labels(name, services),
            })
            .collect();
        let world = running
            .iter()
            .map(|s| {
                let models = s
                    .containers
                    .iter()
                    .map(|c| Model::running(c.clone(), booted))
                    .collect();
                (s.name.clone(), models)
            })
            .collect();
        FakeStacks {
            running,
            world: Mutex::new(world),
            ..FakeStacks::default()
        }
    }

    /// Logs into `log` (shared with other fakes) instead of a log of its own.
    pub fn log_into(mut self, log: CallLog) -> Self {
        self.log = log;
        self
    }

    /// The stop of `stack` goes wrong (`stop_containers`).
    pub fn stop_trouble(self, stack: &str, trouble: Trouble) -> Self {
        locked(&self.stop_trouble).insert(stack.to_owned(), trouble);
        self
    }

    /// The start of `stack` goes wrong (`start_containers`).
    pub fn start_trouble(self, stack: &str, trouble: Trouble) -> Self {
        locked(&self.start_trouble).insert(stack.to_owned(), trouble);
        self
    }

    /// `check_down` of `stack` goes wrong (e.g. [`Trouble::EngineAway`] at the snapshot).
    pub fn check_trouble(self, stack: &str, trouble: Trouble) -> Self {
        locked(&self.check_trouble).insert(stack.to_owned(), trouble);
        self
    }

    /// `fact` will happen to the container of `service` of `stack` (see [`Fact`]).
    pub fn fact(self, stack: &str, service: &str, fact: Fact) -> Self {
        locked(&self.facts)
            .entry((stack.to_owned(), service.to_owned()))
            .or_default()
            .push(fact);
        self
    }

    /// How long the v2 stops and starts take (see [`Timing`]).
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The containers of `service` of `stack` carry `labels`: its policy in
    /// `running_app_stacks` is read from them by the real reader, label errors included.
    pub fn labels(mut self, stack: &str, service: &str, labels: &[(&str, &str)]) -> Self {
        if let Some(s) = self.running.iter_mut().find(|s| s.name == stack) {
            s.policy
                .read_service(stack, service, labels.iter().copied());
        }
        self
    }

    /// The next hook run in the container of `service` of `stack` does `script` (see
    /// [`HookScript`]).
    pub fn hook(self, stack: &str, service: &str, script: HookScript) -> Self {
        locked(&self.hooks)
            .entry((stack.to_owned(), service.to_owned()))
            .or_default()
            .push_back(script);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        locked(&self.log).clone()
    }

    /// The containers of `stack` that run now, in the model.
    pub fn running_now(&self, stack: &str) -> Vec<ContainerRef> {
        locked(&self.world)
            .get(stack)
            .map(|models| {
                models
                    .iter()
                    .filter(|m| m.running)
                    .map(|m| m.container.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every container of `stack` is removed, as `docker compose down` (or `docker rm`) of an
    /// operator does: a later start finds them gone.
    pub fn remove_stack(&self, stack: &str) {
        locked(&self.world).remove(stack);
    }

    /// `stack` is brought up from its compose file by someone else (an operator's
    /// `docker compose up`): new containers of `services`, running now, replace any it had.
    pub fn compose_up(&self, stack: &str, services: &[&str]) {
        let models = services
            .iter()
            .map(|service| {
                let mut made = container(stack, service);
                made.id.push_str("-new");
                Model::running(made, Utc::now())
            })
            .collect();
        locked(&self.world).insert(stack.to_owned(), models);
    }

    /// Every stop left in flight ends now: those containers are down.
    pub fn finish_stops(&self) {
        let now = Utc::now();
        for m in locked(&self.world).values_mut().flatten() {
            if m.stopping {
                m.stopping = false;
                m.exits(now, 0);
            }
        }
    }

    /// Logs `entry`, then goes wrong as `trouble` says for `stack`, if it does.
    async fn call(
        &self,
        entry: Option<String>,
        trouble: &Mutex<HashMap<String, Trouble>>,
        stack: &str,
    ) -> Result<(), StacksError> {
        if let Some(entry) = entry {
            locked(&self.log).push(entry);
        }
        let now = {
            let mut all = locked(trouble);
            match all.get_mut(stack) {
                Some(Trouble::FailTimes(0)) => None,
                Some(Trouble::FailTimes(n)) => {
                    *n -= 1;
                    Some(Trouble::Fail(format!("{stack}: not yet")))
                }
                other => other.cloned(),
            }
        };
        match now {
            None | Some(Trouble::FailTimes(_)) => Ok(()),
            Some(Trouble::Fail(message)) => Err(StacksError::Other(message)),
            Some(Trouble::EngineAway) => Err(StacksError::EngineUnreachable {
                detail: format!("stack {stack:?}: the fake engine is away"),
            }),
            Some(Trouble::Hang) => std::future::pending().await,
            Some(Trouble::Panic) => panic!("FakeStacks: {stack} panics, as told"),
        }
    }
}

#[async_trait]
impl Stacks for FakeStacks {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        Ok(self.running.clone())
    }

    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        Ok(self.running.iter().any(|s| s.name == stack))
    }

    async fn running_containers(&self, stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
        Ok(self.running_now(stack))
    }

    async fn stop_containers(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        slots: &Slots,
    ) -> Result<StopReport, StacksError> {
        self.call(Some(format!("stop {stack}")), &self.stop_trouble, stack)
            .await?;
        let slot = slots.take().await;
        tokio::time::sleep(self.timing.stop).await;
        let (report, in_flight) = self.stop_models(stack, containers, Utc::now());
        if in_flight {
            // The engine goes on stopping; the call never answers (the caller gives up).
            let _held = slot;
            return std::future::pending().await;
        }
        Ok(report)
    }

    async fn check_down(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        down_since: DateTime<Utc>,
    ) -> Result<DownCheck, StacksError> {
        self.call(None, &self.check_trouble, stack).await?;
        let world = locked(&self.world);
        let mut check = DownCheck::default();
        for m in world.get(stack).into_iter().flatten() {
            let ran = m.running || m.started_at > down_since;
            if containers.iter().any(|c| c.id == m.container.id) {
                if ran {
                    check.ran.push((m.container.clone(), m.started_at));
                }
            } else if ran {
                check.appeared.push(m.container.clone());
            }
        }
        Ok(check)
    }

    async fn start_containers(
        &self,
        stack: &str,
        request: &StartRequest,
        slots: &Slots,
    ) -> Result<StartReport, StacksError> {
        let services: BTreeSet<&str> = request
            .containers
            .iter()
            .map(|c| c.service.as_str())
            .collect();
        let entry = format!(
            "start {stack} {}",
            services.into_iter().collect::<Vec<_>>().join(",")
        );
        self.call(Some(entry), &self.start_trouble, stack).await?;
        if !request.recreate_vanished {
            self.none_vanished(stack, request)?;
        }
        let slot = slots.take().await;
        tokio::time::sleep(self.timing.start).await;
        let (mut report, started) = self.start_models(stack, request);
        drop(slot);
        tokio::time::sleep(self.timing.ready).await;
        report.ready_at = Some(Utc::now());
        self.deaths_after_start(stack, &started)?;
        Ok(report)
    }

    async fn run_hook(
        &self,
        stack: &str,
        container: &ContainerRef,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookRun, HookError> {
        locked(&self.log).push(format!(
            "hook {stack} {} {}",
            container.service,
            command.line()
        ));
        let status = locked(&self.world)
            .get(stack)
            .and_then(|models| models.iter().find(|m| m.container.id == container.id))
            .map(|m| if m.running { "running" } else { "exited" });
        if status != Some("running") {
            return Err(HookError::NotRunning {
                stack: stack.to_owned(),
                service: container.service.clone(),
                container: container.name.clone(),
                program: command.program().to_owned(),
                status: status.unwrap_or("gone").to_owned(),
            });
        }
        let script = locked(&self.hooks)
            .get_mut(&(stack.to_owned(), container.service.clone()))
            .and_then(VecDeque::pop_front)
            .unwrap_or(HookScript::exit(0, ""));
        let (code, output, after) = match script {
            HookScript::Exit {
                code,
                output,
                after,
            } => (code, output, after),
            HookScript::Hang => (0, String::new(), Duration::MAX),
            HookScript::Fail(e) => return Err(e),
            HookScript::Stuck => return std::future::pending().await,
        };
        if after > timeout {
            tokio::time::sleep(timeout).await;
            return Ok(HookRun {
                exit_code: Some(137),
                output,
                duration: timeout,
                timed_out: true,
            });
        }
        tokio::time::sleep(after).await;
        Ok(HookRun {
            exit_code: Some(code),
            output,
            duration: after,
            timed_out: false,
        })
    }
}

#[cfg(test)]
mod tests;
