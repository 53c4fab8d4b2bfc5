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

use crate::{
    ContainerRef, DownCheck, HookCommand, HookError, HookRun, RunningStack, Slots, StackPolicy,
    Stacks, StacksError, StartReport, StartRequest, StopReport, StoppedContainer,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What goes wrong with one call of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The call returns [`StacksError::Other`] with this message.
    Fail(String),
    /// The call fails this many times, then succeeds.
    FailTimes(u32),
    /// The call never returns.
    Hang,
    /// The call panics (a bug in a collaborator).
    Panic,
    /// The call returns [`StacksError::EngineUnreachable`].
    EngineAway,
}

/// Something the engine will tell about one service's container in the v2 calls. Each fact
/// happens once; add it again to make it happen again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// Its next stop runs out of grace: reported `killed`, exit 137.
    Killed,
    /// Right after its next stop, someone starts it again: it runs, with a `StartedAt` after
    /// the stop, until it is stopped again.
    RestartedAfterStop,
    /// Right after the stack's next stop, a new container of this service appears and runs
    /// (id `<stack>-<service>-new<N>`).
    AppearsAfterStop,
    /// Its next start by `start_containers` dies within the settle window (exit 2): the call
    /// fails with [`StacksError::StartFailed`] and the container is down.
    DiesAfterStart,
    /// Its next stop is left in flight: the stop call signals it and never returns (the caller
    /// gives up on it), and the container goes on running until a start waits for that stop
    /// (`stop_may_be_in_flight`), the stop ends by [`FakeStacks::finish_stops`], or a start
    /// without the flag counts it as started — after which the stop ends and it is down.
    StopInFlight,
}

/// How long the fake's v2 calls take (all zero by default): `stop` and `start` inside a
/// slot, `ready` (until running, healthy and settled) after the start, outside any slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// A stack's stop calls, holding a slot.
    pub stop: Duration,
    /// A stack's start calls, holding a slot.
    pub start: Duration,
    /// The wait after the start calls, holding no slot.
    pub ready: Duration,
}

/// What one hook run by the fake's [`Stacks::run_hook`] does. Scripted per service
/// ([`FakeStacks::hook`]), each used once, in order; without one a hook exits 0 at once,
/// with no output. Every run is logged `hook STACK SERVICE COMMAND-LINE`; a container that
/// does not run in the model is [`HookError::NotRunning`] before any script is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookScript {
    /// Runs for `after` (tokio's clock), then exits `code` having printed `output`. One whose
    /// `after` is longer than its timeout is killed at the timeout: `timed_out`, exit 137.
    Exit {
        /// Its exit code.
        code: i64,
        /// What it printed.
        output: String,
        /// How long it runs.
        after: Duration,
    },
    /// Never ends by itself: killed at its timeout.
    Hang,
    /// The call fails with this error (e.g. [`HookError::NotKilled`]).
    Fail(HookError),
    /// The call never returns (an engine that hangs).
    Stuck,
}

impl HookScript {
    /// Exits `code` at once with `output`.
    pub fn exit(code: i64, output: &str) -> Self {
        Self::Exit {
            code,
            output: output.to_owned(),
            after: Duration::ZERO,
        }
    }
}

/// A log shared between fakes, so a test sees the order of everything that happened.
pub type CallLog = Arc<Mutex<Vec<String>>>;

/// One container of the model.
#[derive(Debug, Clone)]
struct Model {
    container: ContainerRef,
    running: bool,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    exit_code: Option<i64>,
    /// A stop of it was left in flight.
    stopping: bool,
}

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

/// The policy of services without labels.
fn no_labels(stack: &str, services: &[&str]) -> StackPolicy {
    let mut policy = StackPolicy::default();
    for service in services {
        policy.read_service(stack, service, std::iter::empty::<(&str, &str)>());
    }
    policy
}

fn container(stack: &str, service: &str) -> ContainerRef {
    ContainerRef {
        id: format!("{stack}-{service}-id"),
        name: format!("{stack}-{service}-1"),
        service: service.to_owned(),
    }
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
                policy: no_labels(name, services),
            })
            .collect();
        let world = running
            .iter()
            .map(|s| {
                let models = s
                    .containers
                    .iter()
                    .map(|c| Model {
                        container: c.clone(),
                        running: true,
                        started_at: booted,
                        finished_at: None,
                        exit_code: None,
                        stopping: false,
                    })
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

    /// Every stop left in flight ends now: those containers are down.
    pub fn finish_stops(&self) {
        let now = Utc::now();
        for m in locked(&self.world).values_mut().flatten() {
            if m.stopping {
                m.stopping = false;
                m.running = false;
                m.finished_at = Some(now);
                m.exit_code = Some(0);
            }
        }
    }

    /// Takes the first `fact` scripted for `service` of `stack`, if any.
    fn take_fact(&self, stack: &str, service: &str, fact: Fact) -> bool {
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
        m.running = false;
        m.finished_at = Some(exited);
        m.exit_code = Some(if killed { 137 } else { 0 });
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
        let requested = Utc::now();
        let mut report = StopReport::default();
        let mut in_flight = false;
        {
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
                    models.push(Model {
                        container: new,
                        running: true,
                        started_at: Utc::now().max(requested),
                        finished_at: None,
                        exit_code: None,
                        stopping: false,
                    });
                }
            }
        }
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
        let slot = slots.take().await;
        tokio::time::sleep(self.timing.start).await;
        let mut report = StartReport::default();
        let mut started = Vec::new();
        {
            let now = Utc::now();
            let mut world = locked(&self.world);
            let models = world.entry(stack.to_owned()).or_default();
            for c in &request.containers {
                let Some(m) = models.iter_mut().find(|m| m.container.id == c.id) else {
                    // Vanished: compose makes a new one for its service.
                    let n = models.len();
                    let mut new = container(stack, &c.service);
                    new.id = format!("{stack}-{}-made{n}", c.service);
                    models.push(Model {
                        container: new.clone(),
                        running: true,
                        started_at: now,
                        finished_at: None,
                        exit_code: None,
                        stopping: false,
                    });
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
                        m.running = false;
                        m.finished_at = Some(now);
                        m.exit_code = Some(0);
                    }
                } else {
                    m.running = true;
                    m.started_at = now;
                    started.push(m.container.clone());
                }
            }
        }
        report.recreated.sort();
        report.recreated.dedup();
        drop(slot);
        tokio::time::sleep(self.timing.ready).await;
        report.ready_at = Some(Utc::now());
        for c in started {
            if self.take_fact(stack, &c.service, Fact::DiesAfterStart) {
                let now = Utc::now();
                let mut world = locked(&self.world);
                if let Some(m) = world
                    .get_mut(stack)
                    .and_then(|models| models.iter_mut().find(|m| m.container.id == c.id))
                {
                    m.running = false;
                    m.finished_at = Some(now);
                    m.exit_code = Some(2);
                }
                return Err(StacksError::StartFailed {
                    stack: stack.to_owned(),
                    command: format!("start of container {}", c.name),
                    service: c.service.clone(),
                    status: "Exited (2)".to_owned(),
                    logs: "fake: died within the settle window".to_owned(),
                });
            }
        }
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn logs_every_call_and_fails_as_told() {
        let fake = FakeStacks::running([("a", &["web"][..]), ("b", &["db"][..])])
            .start_trouble("b", Trouble::FailTimes(1));
        let slots = Slots::new(1);
        assert_eq!(
            fake.running_app_stacks().await.map(|s| s.len()).ok(),
            Some(2)
        );
        let stopped = fake
            .stop_containers("a", &one("a", "web"), &slots)
            .await
            .expect("stop");
        assert_eq!(stopped.containers.len(), 1);
        let request = StartRequest {
            containers: one("b", "db"),
            stop_may_be_in_flight: false,
        };
        assert!(fake.start_containers("b", &request, &slots).await.is_err());
        assert!(fake.start_containers("b", &request, &slots).await.is_ok());
        assert_eq!(fake.calls(), ["stop a", "start b db", "start b db"]);
    }

    fn one(stack: &str, service: &str) -> Vec<ContainerRef> {
        vec![container(stack, service)]
    }

    #[tokio::test]
    async fn a_clean_cycle_leaves_clean_evidence() {
        let fake = FakeStacks::running([("a", &["db", "web"][..])]);
        let slots = Slots::new(1);
        let listed = fake.running_app_stacks().await.expect("listed");
        assert_eq!(listed[0].containers.len(), 2);
        let containers = fake.running_containers("a").await.expect("running");
        assert_eq!(containers, listed[0].containers);
        let report = fake
            .stop_containers("a", &containers, &slots)
            .await
            .expect("stop");
        assert!(report.containers.iter().all(|s| s.was_running && !s.killed));
        let since = report.containers[0].stop_requested_at;
        let check = fake
            .check_down("a", &containers, since)
            .await
            .expect("check");
        assert!(check.stayed_down(), "{check:?}");
        assert!(fake.running_now("a").is_empty());
        let request = StartRequest {
            containers: containers.clone(),
            stop_may_be_in_flight: false,
        };
        let started = fake
            .start_containers("a", &request, &slots)
            .await
            .expect("start");
        assert!(started.ready_at.is_some());
        assert_eq!(
            started,
            StartReport {
                ready_at: started.ready_at,
                ..StartReport::default()
            }
        );
        assert_eq!(fake.running_now("a"), containers);
        assert_eq!(fake.calls(), ["stop a", "start a db,web"]);
    }

    #[tokio::test]
    async fn every_fact_shows_in_the_evidence() {
        let fake = FakeStacks::running([("a", &["db", "web"][..])])
            .fact("a", "db", Fact::Killed)
            .fact("a", "web", Fact::RestartedAfterStop)
            .fact("a", "web", Fact::AppearsAfterStop)
            .fact("a", "db", Fact::DiesAfterStart);
        let slots = Slots::new(2);
        let containers = fake.running_containers("a").await.expect("running");
        let report = fake
            .stop_containers("a", &containers, &slots)
            .await
            .expect("stop");
        let killed: Vec<&str> = report
            .containers
            .iter()
            .filter(|s| s.killed)
            .map(|s| s.container.service.as_str())
            .collect();
        assert_eq!(killed, ["db"]);
        assert_eq!(report.containers[0].exit_code, Some(137));
        let since = report.containers[0].stop_requested_at;
        let check = fake
            .check_down("a", &containers, since)
            .await
            .expect("check");
        assert_eq!(check.ran.len(), 1);
        assert_eq!(check.ran[0].0.service, "web");
        assert!(check.ran[0].1 > since);
        assert_eq!(check.appeared.len(), 1);
        assert_eq!(check.appeared[0].service, "web");
        // Stopped again, web stays down; the appeared one still runs.
        let again = fake
            .stop_containers("a", &one("a", "web"), &slots)
            .await
            .expect("stop again");
        assert!(again.containers[0].was_running);
        assert_eq!(fake.running_now("a"), check.appeared);
        // db dies in the settle window.
        let request = StartRequest {
            containers,
            stop_may_be_in_flight: false,
        };
        let err = fake
            .start_containers("a", &request, &slots)
            .await
            .expect_err("db dies");
        assert!(
            matches!(&err, StacksError::StartFailed { service, .. } if service == "db"),
            "{err}"
        );
        assert!(!fake.running_now("a").iter().any(|c| c.service == "db"));
        // Once: the retry works.
        fake.start_containers("a", &request, &slots)
            .await
            .expect("the retry");
        assert!(fake.running_now("a").iter().any(|c| c.service == "db"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_in_flight_is_waited_for_only_with_the_flag() {
        for flag in [true, false] {
            let fake =
                FakeStacks::running([("a", &["db"][..])]).fact("a", "db", Fact::StopInFlight);
            let slots = Slots::new(1);
            let containers = fake.running_containers("a").await.expect("running");
            let stop = fake.stop_containers("a", &containers, &slots);
            assert!(
                tokio::time::timeout(Duration::from_secs(60), stop)
                    .await
                    .is_err(),
                "the stop never answers"
            );
            assert_eq!(slots.available(), 1, "an abandoned stop frees its slot");
            assert_eq!(fake.running_now("a"), containers, "still running");
            let request = StartRequest {
                containers: containers.clone(),
                stop_may_be_in_flight: flag,
            };
            let report = fake
                .start_containers("a", &request, &slots)
                .await
                .expect("start");
            if flag {
                assert_eq!(report.waited_for_stop, containers);
                assert_eq!(fake.running_now("a"), containers, "runs after the start");
            } else {
                assert_eq!(report.already_running, containers);
                assert!(fake.running_now("a").is_empty(), "the stop ended after it");
            }
        }
        let fake = FakeStacks::running([("a", &["db"][..])]).fact("a", "db", Fact::StopInFlight);
        let containers = fake.running_containers("a").await.expect("running");
        let slots = Slots::new(1);
        let stop = fake.stop_containers("a", &containers, &slots);
        assert!(tokio::time::timeout(Duration::from_secs(1), stop)
            .await
            .is_err());
        fake.finish_stops();
        assert!(fake.running_now("a").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn v2_calls_take_their_time_inside_and_outside_the_slots() {
        let timing = Timing {
            stop: Duration::from_secs(2),
            start: Duration::from_secs(1),
            ready: Duration::from_secs(30),
        };
        let fake = Arc::new(
            FakeStacks::running([("a", &["web"][..]), ("b", &["web"][..])]).timing(timing),
        );
        let slots = Slots::new(1);
        let begun = tokio::time::Instant::now();
        for stack in ["a", "b"] {
            let containers = fake.running_containers(stack).await.expect("running");
            fake.stop_containers(stack, &containers, &slots)
                .await
                .expect("stop");
        }
        assert_eq!(begun.elapsed(), Duration::from_secs(4));
        let begun = tokio::time::Instant::now();
        let starts = ["a", "b"].map(|stack| {
            let (fake, slots) = (Arc::clone(&fake), slots.clone());
            tokio::spawn(async move {
                let request = StartRequest {
                    containers: vec![container(stack, "web")],
                    stop_may_be_in_flight: false,
                };
                fake.start_containers(stack, &request, &slots).await
            })
        });
        for start in starts {
            start.await.expect("task").expect("start");
        }
        // The two starts queue for the one slot; their 30 s waits do not.
        assert_eq!(begun.elapsed(), Duration::from_secs(32));
    }

    #[tokio::test]
    async fn trouble_reaches_the_v2_calls_too() {
        let fake = FakeStacks::running([("a", &["web"][..])])
            .check_trouble("a", Trouble::EngineAway)
            .stop_trouble("a", Trouble::Fail("no".into()));
        let containers = one("a", "web");
        let err = fake
            .check_down("a", &containers, Utc::now())
            .await
            .expect_err("away");
        assert!(err.is_engine_unreachable(), "{err}");
        let err = fake
            .stop_containers("a", &containers, &Slots::new(1))
            .await
            .expect_err("fails");
        assert!(matches!(err, StacksError::Other(_)), "{err}");
    }

    #[tokio::test]
    async fn labels_give_the_listed_policy_through_the_real_reader() {
        let fake = FakeStacks::running([("a", &["db", "web"][..])])
            .labels(
                "a",
                "db",
                &[("felhom.quiesce", "hook"), ("felhom.pre-snapshot", "dump")],
            )
            .labels("a", "web", &[("felhom.stop-order", "soon")]);
        let listed = fake.running_app_stacks().await.expect("listed");
        let policy = &listed[0].policy;
        assert_eq!(policy.service("db").quiesce, crate::QuiesceMode::Hook);
        assert_eq!(policy.services.len(), 2, "every service has one");
        assert_eq!(policy.errors.len(), 1);
        assert_eq!(policy.errors[0].label, "felhom.stop-order");
        let plain = FakeStacks::running([("b", &["x"][..])]);
        let listed = plain.running_app_stacks().await.expect("listed");
        assert!(listed[0].policy.stops_everything());
        assert_eq!(listed[0].policy.services.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn hooks_run_as_scripted_and_time_out_at_their_timeout() {
        let fake = FakeStacks::running([("a", &["db"][..])])
            .hook("a", "db", HookScript::exit(3, "no space"))
            .hook(
                "a",
                "db",
                HookScript::Exit {
                    code: 0,
                    output: "slow".into(),
                    after: Duration::from_secs(20),
                },
            )
            .hook("a", "db", HookScript::Hang);
        let db = container("a", "db");
        let dump = HookCommand::parse("dump --all").expect("parses");
        let limit = Duration::from_secs(10);
        let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
        assert_eq!((run.exit_code, run.output.as_str()), (Some(3), "no space"));
        assert!(!run.succeeded());
        let begun = tokio::time::Instant::now();
        let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
        assert!(run.timed_out && run.exit_code == Some(137), "{run:?}");
        assert_eq!(begun.elapsed(), limit);
        let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
        assert!(run.timed_out, "{run:?}");
        // Nothing scripted: exit 0 at once.
        let run = fake.run_hook("a", &db, &dump, limit).await.expect("ran");
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(fake.calls(), ["hook a db dump --all"; 4]);
        // A stopped container runs no hook.
        fake.stop_containers("a", std::slice::from_ref(&db), &Slots::new(1))
            .await
            .expect("stop");
        let err = fake
            .run_hook("a", &db, &dump, limit)
            .await
            .expect_err("down");
        assert!(
            matches!(&err, HookError::NotRunning { status, .. } if status == "exited"),
            "{err}"
        );
    }
}
