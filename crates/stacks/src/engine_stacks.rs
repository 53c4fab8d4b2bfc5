//! [`EngineStacks`]: the [`Stacks`] of a real guest, through the Docker Engine API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::command::{CommandLine, Runner};
use crate::compose::Flavor;
use crate::engine::{Engine, EngineError, Health, Inspected, State};
use crate::files::{self, ComposeFiles};
use crate::model;
use crate::name::{check_service_name, check_stack_name};
use crate::order::{self, Condition, Member, ServiceDeps};
use crate::orphans;
use crate::{protected_stacks, ComposeChoice, RunningStack, Stacks, StacksConfig, StacksError};

/// Bound for the compose commands that only read (`version`, `config`).
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// What a stop call gets beyond the container's grace period: the engine kills the container
/// at the end of the grace, and its answer must come before this bound gives up on it.
const STOP_MARGIN: Duration = Duration::from_secs(30);
/// The least time a compose `up` of the fallback gets, however little of `start_timeout` is
/// left: v1 alone needs about a second to load.
const MIN_COMPOSE_TIME: Duration = Duration::from_secs(10);
/// Log lines of a failed container carried in the error.
const LOG_TAIL: usize = 20;

/// The stacks of a guest, stopped and started through the Docker Engine API.
///
/// A stack is a directory under [`StacksConfig::root`] with a compose file; its name is the
/// compose project name, and its containers are those the engine labels with it (orphans
/// included, one-off runs not). The compose command line is used only to bring back
/// containers that vanished while the stack was down, and to read the dependencies of
/// containers deployed by compose v1 (which labels none).
#[derive(Debug)]
pub struct EngineStacks {
    config: StacksConfig,
    engine: Engine,
    runner: Runner,
    flavor: OnceCell<Flavor>,
    /// What each stop of this instance stopped, until the stack's next successful start:
    /// the start then needs no listing nor inspect on the way up, where every call is
    /// downtime, and knows each container's health before the stop.
    stopped: Mutex<HashMap<String, Vec<Prepared>>>,
    /// What the last start of each stack noticed (see [`EngineStacks::last_start`]).
    reports: Mutex<HashMap<String, StartReport>>,
}

/// The name [`EngineStacks`] had when it drove the compose command line.
pub type ComposeStacks = EngineStacks;

/// What the last successful start of a stack noticed without failing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartReport {
    /// Services with a health check that did not pass before the stop (unhealthy, or still
    /// starting): they were waited for only until they ran, not until healthy.
    pub not_waited_for_health: Vec<String>,
    /// Services whose containers had vanished while the stack was down (or that joined the
    /// network namespace of one that had), brought back with compose `up`.
    pub recreated: Vec<String>,
}

/// A container about to be stopped or started, and its dependencies.
#[derive(Debug, Clone)]
struct Prepared {
    container: Inspected,
    deps: ServiceDeps,
    /// Its health just before the stop; `None` when unknown (a start after a crash).
    health_before: Option<Health>,
}

impl Prepared {
    /// Whether its start waits until it is healthy: it has a health check, and it was not
    /// known to fail (or still be starting) before the stop.
    fn waits_for_health(&self) -> bool {
        self.container.has_healthcheck
            && !matches!(
                self.health_before,
                Some(Health::Starting | Health::Unhealthy)
            )
    }
}

/// One engine call of a start that has come back.
enum Step {
    /// The start call of container `.0`.
    Started(usize, Result<(), EngineError>),
    /// The inspect right after it.
    Seen(usize, Result<Inspected, EngineError>),
}

/// How a start through the engine ended without success.
enum Interrupted {
    /// Containers of these services are gone: the compose fallback brings them back.
    Vanished(Vec<String>),
    Failed(StacksError),
}

impl From<StacksError> for Interrupted {
    fn from(e: StacksError) -> Self {
        Self::Failed(e)
    }
}

impl EngineStacks {
    /// Checks the configuration (every protected name must be a valid stack name: a typo
    /// would otherwise silently protect nothing) and protects [`protected_stacks`]: the
    /// configured ones and [`DEFAULT_PROTECTED`](crate::DEFAULT_PROTECTED), whatever the
    /// configuration says. The engine is reached on first use
    /// (`DOCKER_HOST`, else the default socket), so an engine that is not up yet is an error
    /// of the calls, not of the construction.
    pub fn new(mut config: StacksConfig) -> Result<Self, StacksError> {
        for name in &config.protected {
            check_stack_name(name)?;
        }
        config.protected = protected_stacks(&config.protected);
        Ok(Self {
            config,
            engine: Engine::new(None),
            runner: Runner::default(),
            flavor: OnceCell::new(),
            stopped: Mutex::new(HashMap::new()),
            reports: Mutex::new(HashMap::new()),
        })
    }

    /// Points every engine call and compose command at another engine (`DOCKER_HOST`, e.g.
    /// `unix:///run/other.sock`).
    pub fn with_docker_host(mut self, host: impl Into<String>) -> Self {
        let host = host.into();
        self.engine = Engine::new(Some(host.clone()));
        self.runner.docker_host = Some(host);
        self
    }

    /// The configuration in use (its protected stacks include
    /// [`DEFAULT_PROTECTED`](crate::DEFAULT_PROTECTED)).
    pub fn config(&self) -> &StacksConfig {
        &self.config
    }

    /// The compose tool used for the fallback, [`ComposeChoice::V2`] or
    /// [`ComposeChoice::V1`] (never `Auto`): detected on the first call for `auto`, and for
    /// a configured one, checked to run.
    pub async fn compose_command(&self) -> Result<ComposeChoice, StacksError> {
        self.flavor().await.map(Flavor::choice)
    }

    /// The deployed stacks (directories under the root holding a compose file), sorted,
    /// protected ones included. Directories whose names compose would not accept are skipped
    /// with a warning.
    pub fn deployed(&self) -> Result<Vec<String>, StacksError> {
        files::deployed(&self.config.root)
    }

    /// What the last successful start of `stack` by this instance noticed, e.g. services
    /// that were unhealthy before the stop and so were waited for only until they ran.
    pub fn last_start(&self, stack: &str) -> Option<StartReport> {
        lock(&self.reports).get(stack).cloned()
    }

    /// A start of `stack` succeeded: what its stop recorded is spent.
    fn started(&self, stack: &str, report: StartReport) {
        lock(&self.stopped).remove(stack);
        lock(&self.reports).insert(stack.to_owned(), report);
    }

    fn is_protected(&self, stack: &str) -> bool {
        self.config.protected.iter().any(|p| p == stack)
    }

    async fn flavor(&self) -> Result<Flavor, StacksError> {
        self.flavor.get_or_try_init(|| self.detect()).await.copied()
    }

    async fn detect(&self) -> Result<Flavor, StacksError> {
        let candidates: &[Flavor] = match self.config.compose {
            ComposeChoice::Auto => &[Flavor::V2, Flavor::V1],
            ComposeChoice::V2 => &[Flavor::V2],
            ComposeChoice::V1 => &[Flavor::V1],
        };
        let mut answers = Vec::new();
        for &flavor in candidates {
            let line = flavor.version();
            match self.runner.stdout(&line, CLI_TIMEOUT).await {
                Ok(_) => {
                    tracing::info!(compose = %flavor.choice(), "compose tool found");
                    return Ok(flavor);
                }
                Err(failure) => answers.push(format!("{line}: {failure}")),
            }
        }
        Err(StacksError::NoCompose {
            detail: answers.join("; "),
        })
    }

    fn files(&self, stack: &str) -> Result<ComposeFiles, StacksError> {
        let dir = self.config.root.join(stack);
        ComposeFiles::find(&dir).ok_or(StacksError::NotDeployed {
            stack: stack.to_owned(),
            dir,
        })
    }

    /// Inspects the containers `ids` (those gone meanwhile are left out) and finds their
    /// dependencies: from their labels, or from the project's model for those without.
    async fn prepare(
        &self,
        stack: &str,
        ids: &[String],
        health_before: &HashMap<String, Option<Health>>,
    ) -> Result<Vec<Prepared>, StacksError> {
        let inspected = futures::future::join_all(ids.iter().map(|id| self.engine.inspect(id)))
            .await
            .into_iter()
            .zip(ids);
        let mut containers = Vec::new();
        for (result, id) in inspected {
            match result {
                Ok(c) => containers.push(c),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(engine_error(stack, &format!("inspect of {id}"), e)),
            }
        }
        let model = if containers.iter().any(|c| c.depends_on.is_none()) {
            self.model(stack).await
        } else {
            BTreeMap::new()
        };
        Ok(containers
            .into_iter()
            .map(|c| {
                let deps = match &c.depends_on {
                    Some(label) => order::parse_depends_on(label),
                    None => model.get(&c.service).cloned().unwrap_or_default(),
                };
                let before = match health_before.get(&c.service) {
                    Some(known) => *known,
                    None => None,
                };
                Prepared {
                    container: c,
                    deps,
                    health_before: before,
                }
            })
            .collect())
    }

    /// The services' dependencies as compose reads the project (for containers deployed by
    /// compose v1). Without it the stack is still stopped and started, in the order that
    /// namespaces and links give, so a failure here is a warning.
    async fn model(&self, stack: &str) -> BTreeMap<String, ServiceDeps> {
        let read = async {
            let files = self.files(stack)?;
            let line = self.flavor().await?.config(stack, &files);
            let text = self
                .runner
                .stdout(&line, CLI_TIMEOUT)
                .await
                .map_err(|failure| command_error(stack, &line, failure))?;
            model::parse(&text).map_err(|detail| StacksError::Command {
                stack: stack.to_owned(),
                command: line.to_string(),
                detail: format!("cannot read its output: {detail}"),
            })
        };
        match read.await {
            Ok(model) => model,
            Err(e) => {
                tracing::warn!(stack, "the containers carry no dependency labels and the project's model cannot be read ({e}): ordering by network namespaces and links only");
                BTreeMap::new()
            }
        }
    }

    /// Waits until no other process runs a compose `stop` of `stack` (one left behind by an
    /// older controller, or an operator's), bounded by what such a stop may take.
    async fn wait_for_other_stops(&self, stack: &str) {
        let bound = self
            .config
            .stop_timeout
            .saturating_mul(2)
            .saturating_add(STOP_MARGIN);
        let left = orphans::wait_for_stops(stack, bound).await;
        if !left.is_empty() {
            tracing::warn!(stack, still_running = ?left, "going ahead although another compose stop of the stack still runs");
        }
    }

    /// Stops `containers`, each once every container that depends on it is stopped; the
    /// independent ones at once.
    async fn stop_in_order(&self, stack: &str, containers: &[Prepared]) -> Result<(), StacksError> {
        let deps = dependencies(containers);
        let mut waiting_for: Vec<usize> = order::dependents(&deps).iter().map(Vec::len).collect();
        let mut launched = vec![false; containers.len()];
        let mut flights = FuturesUnordered::new();
        let mut first_error = None;
        loop {
            for (i, c) in containers.iter().enumerate() {
                if !launched[i] && waiting_for[i] == 0 {
                    launched[i] = true;
                    flights.push(async move { (i, self.stop_one(stack, c).await) });
                }
            }
            match flights.next().await {
                Some((i, result)) => {
                    if let Err(e) = result {
                        tracing::error!(stack, "{e}");
                        first_error.get_or_insert(e);
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
        first_error.map_or(Ok(()), Err)
    }

    async fn stop_one(&self, stack: &str, prepared: &Prepared) -> Result<(), StacksError> {
        let c = &prepared.container;
        // Its own grace where it declares one (the engine applies it, with its own signal);
        // `stop_timeout` only where it declares none.
        let (grace, own) = match c.stop_timeout {
            Some(secs) => (secs, true),
            None => (whole_seconds(self.config.stop_timeout), false),
        };
        let wait = Duration::from_secs(grace).saturating_add(STOP_MARGIN);
        tracing::debug!(stack, service = %c.service, container = %c.name, grace, own, "stopping");
        match self.engine.stop(&c.id, (!own).then_some(grace), wait).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(container_error(stack, c, "stop", e)),
        }
    }

    /// Starts `containers` in dependency order, honouring the conditions their dependents
    /// wait for, and waits until every one runs (and is healthy, where it waits for health),
    /// none having died within `start_settle` of its start, bounded by `deadline`.
    async fn start_in_order(
        &self,
        stack: &str,
        containers: &[Prepared],
        deadline: Instant,
    ) -> Result<(), Interrupted> {
        let deps = dependencies(containers);
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
        // Subscribed before the first start, so that no event of it is missed.
        let mut events = self
            .engine
            .events(stack)
            .map_err(|e| engine_error(stack, "events", e))?;
        let mut live: Vec<Live> = vec![Live::default(); n];
        let mut flights = FuturesUnordered::new();
        loop {
            for i in 0..n {
                if live[i].phase == Phase::Waiting
                    && deps[i]
                        .iter()
                        .all(|(j, c)| live[*j].satisfies(*c, &containers[*j]))
                {
                    live[i].phase = Phase::Starting;
                    let id = containers[i].container.id.as_str();
                    flights
                        .push(async move { Step::Started(i, self.engine.start(id).await) }.boxed());
                }
            }
            let now = Instant::now();
            if let Some(settled_at) = settled(&live, containers, self.config.start_settle, now) {
                if now >= settled_at {
                    return Ok(());
                }
            }
            if now >= deadline {
                return Err(StacksError::StartTimeout {
                    stack: stack.to_owned(),
                    command: "start".to_owned(),
                    waited: self.config.start_timeout,
                    pending: pending(&live, containers, &deps),
                }
                .into());
            }
            let wake = settled(&live, containers, self.config.start_settle, now)
                .map_or(deadline, |at| at.min(deadline))
                .max(now);
            tokio::select! {
                Some(step) = flights.next(), if !flights.is_empty() => {
                    let (i, seen) = match step {
                        Step::Started(i, Ok(())) => {
                            // What waits only for it to be started may start now; the inspect
                            // tells its run and health.
                            live[i].phase = Phase::Started;
                            let id = containers[i].container.id.as_str();
                            flights.push(
                                async move { Step::Seen(i, self.engine.inspect(id).await) }.boxed(),
                            );
                            continue;
                        }
                        Step::Started(i, Err(e)) => (i, Err(e)),
                        Step::Seen(i, seen) => (i, seen),
                    };
                    let c = &containers[i];
                    match seen {
                        Ok(now_seen) => {
                            let l = &mut live[i];
                            l.phase = Phase::Up;
                            l.since = Some(Instant::now());
                            l.run_started = Some(now_seen.started_at);
                            // A change seen on the stream while the start was under way is
                            // at least as new as the inspect; later ones are still to come.
                            l.health = l
                                .early_health
                                .take()
                                .filter(|(at, _)| *at >= now_seen.started_at)
                                .map(|(_, h)| h)
                                .or(now_seen.health);
                            let exited = now_seen.state == State::Exited;
                            if one_shot[i] && exited && now_seen.exit_code == 0 {
                                l.phase = Phase::Completed;
                            } else if now_seen.state == State::Running && l.death().is_none() {
                                l.running = true;
                            } else {
                                return Err(self.start_failed(stack, c).await.into());
                            }
                        }
                        Err(e) if e.is_not_found() => {
                            return Err(Interrupted::Vanished(vec![c.container.service.clone()]));
                        }
                        Err(e) => return Err(container_error(stack, &c.container, "start", e).into()),
                    }
                }
                event = events.next() => {
                    let event = match event {
                        Some(Ok(event)) => event,
                        Some(Err(e)) => return Err(engine_error(stack, "events", e).into()),
                        None => {
                            return Err(StacksError::EngineUnreachable {
                                detail: format!("stack {stack:?}: the engine ended its event stream ({})", self.engine.host()),
                            }
                            .into())
                        }
                    };
                    let Some(&i) = index.get(event.id.as_str()) else { continue };
                    let l = &mut live[i];
                    // Events of the run before this start (the engine may deliver the stop's
                    // `die`, or a late health probe, after the subscription) are not this run's.
                    if l.phase == Phase::Waiting || l.run_started.is_some_and(|run| event.time < run) {
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

    /// The compose fallback for containers that vanished while the stack was down:
    /// `up --no-recreate --no-deps` of the services (existing containers are started as they
    /// are, missing ones created), and `up --force-recreate --no-deps` of those whose
    /// network namespace was a container that is gone, so that they join the new one.
    async fn recreate(
        &self,
        stack: &str,
        wanted: &[String],
        missing: &[String],
        known: &[Prepared],
        deadline: Instant,
    ) -> Result<Vec<String>, StacksError> {
        let files = self.files(stack)?;
        let flavor = self.flavor().await?;
        let existing = self
            .engine
            .project(stack)
            .await
            .map_err(|e| engine_error(stack, "list of its containers", e))?;
        let exists = |target: &str| existing.iter().any(|l| l.id.starts_with(target));
        let stale: BTreeSet<String> = known
            .iter()
            .filter(|p| exists(&p.container.id))
            .filter(|p| {
                p.container
                    .network_mode
                    .strip_prefix("container:")
                    .is_some_and(|target| {
                        !exists(target)
                            && !known
                                .iter()
                                .any(|k| k.container.name == target && exists(&k.container.id))
                    })
            })
            .map(|p| p.container.service.clone())
            .collect();
        let plain: Vec<String> = wanted
            .iter()
            .filter(|s| !stale.contains(*s))
            .cloned()
            .collect();
        tracing::warn!(
            stack,
            ?missing,
            stale_namespace = ?stale,
            "containers vanished while the stack was down: bringing them back with compose up"
        );
        if !plain.is_empty() {
            self.run_compose(
                stack,
                &flavor.up_no_recreate(stack, &files, &plain),
                deadline,
            )
            .await?;
        }
        let stale: Vec<String> = stale.into_iter().collect();
        if !stale.is_empty() {
            self.run_compose(stack, &flavor.up_recreate(stack, &files, &stale), deadline)
                .await?;
        }
        let mut recreated: BTreeSet<String> = missing.iter().cloned().collect();
        recreated.extend(stale);
        Ok(recreated.into_iter().collect())
    }

    async fn run_compose(
        &self,
        stack: &str,
        line: &CommandLine,
        deadline: Instant,
    ) -> Result<(), StacksError> {
        tracing::info!(stack, command = %line, "running");
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_COMPOSE_TIME);
        self.runner
            .stdout(line, limit)
            .await
            .map(drop)
            .map_err(|failure| command_error(stack, line, failure))
    }

    /// The containers of `services` as the engine has them now, prepared for a start.
    async fn current(
        &self,
        stack: &str,
        services: &[String],
        health_before: &HashMap<String, Option<Health>>,
    ) -> Result<Vec<Prepared>, StacksError> {
        let ids: Vec<String> = self
            .engine
            .project(stack)
            .await
            .map_err(|e| engine_error(stack, "list of its containers", e))?
            .into_iter()
            .filter(|l| services.contains(&l.service))
            .map(|l| l.id)
            .collect();
        self.prepare(stack, &ids, health_before).await
    }
}

#[async_trait]
impl Stacks for EngineStacks {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        let candidates: Vec<String> = self
            .deployed()?
            .into_iter()
            .filter(|name| !self.is_protected(name))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut running = self.engine.running_services().await.map_err(|e| match e {
            EngineError::Unreachable(detail) => StacksError::EngineUnreachable { detail },
            other => StacksError::Engine {
                command: "list of the running containers".to_owned(),
                detail: other.to_string(),
            },
        })?;
        Ok(candidates
            .into_iter()
            .filter_map(|name| {
                let services = running.remove(&name)?;
                Some(RunningStack {
                    name,
                    services: services.into_iter().collect(),
                })
            })
            .collect())
    }

    async fn stop(&self, stack: &str) -> Result<Vec<String>, StacksError> {
        check_stack_name(stack)?;
        if self.is_protected(stack) {
            return Err(StacksError::Protected(stack.to_owned()));
        }
        self.files(stack)?;
        self.wait_for_other_stops(stack).await;
        let running: Vec<String> = self
            .engine
            .project(stack)
            .await
            .map_err(|e| engine_error(stack, "list of its containers", e))?
            .into_iter()
            .filter(|l| l.running)
            .map(|l| l.id)
            .collect();
        if running.is_empty() {
            // What an earlier stop recorded stays for the start that follows.
            tracing::debug!(stack, "nothing runs; nothing to stop");
            return Ok(Vec::new());
        }
        let mut prepared = self.prepare(stack, &running, &HashMap::new()).await?;
        prepared.retain(|p| p.container.state == State::Running);
        for p in &mut prepared {
            p.health_before = p.container.health;
        }
        let services: Vec<String> = prepared
            .iter()
            .map(|p| p.container.service.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tracing::info!(stack, ?services, "stopping");
        let result = self.stop_in_order(stack, &prepared).await;
        // A stop again before the start (one that did not end well is repeated) adds to what
        // the first one recorded: their health before the cycle is still known.
        let mut stopped = lock(&self.stopped);
        let mut record = prepared;
        for earlier in stopped.remove(stack).into_iter().flatten() {
            if !record
                .iter()
                .any(|p| p.container.id == earlier.container.id)
            {
                record.push(earlier);
            }
        }
        stopped.insert(stack.to_owned(), record);
        drop(stopped);
        result.map(|()| services)
    }

    async fn start(&self, stack: &str, services: &[String]) -> Result<(), StacksError> {
        check_stack_name(stack)?;
        for service in services {
            check_service_name(stack, service)?;
        }
        let mut wanted = services.to_vec();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        self.wait_for_other_stops(stack).await;
        let deadline = Instant::now() + self.config.start_timeout;

        // Right after this instance stopped these services, what its stop saw is still true
        // unless a container was removed meanwhile, which its start then tells.
        // Kept until a start succeeds: a retry then still knows the health before the stop.
        let recorded: Option<Vec<Prepared>> = lock(&self.stopped).get(stack).and_then(|r| {
            let mine: Vec<Prepared> = r
                .iter()
                .filter(|p| wanted.contains(&p.container.service))
                .cloned()
                .collect();
            (services_of(&mine) == wanted).then_some(mine)
        });
        let health_before: HashMap<String, Option<Health>> = recorded
            .iter()
            .flatten()
            .map(|p| (p.container.service.clone(), p.health_before))
            .collect();
        let containers = match recorded {
            Some(containers) => containers,
            None => self.current(stack, &wanted, &health_before).await?,
        };
        let mut report = StartReport {
            not_waited_for_health: containers
                .iter()
                .filter(|p| p.container.has_healthcheck && !p.waits_for_health())
                .map(|p| p.container.service.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            recreated: Vec::new(),
        };
        if !report.not_waited_for_health.is_empty() {
            tracing::warn!(stack, services = ?report.not_waited_for_health, "health checks that did not pass before the stop: waiting for these only until they run");
        }
        tracing::info!(stack, services = ?wanted, "starting");
        let missing: Vec<String> = wanted
            .iter()
            .filter(|s| !containers.iter().any(|p| &p.container.service == *s))
            .cloned()
            .collect();
        let vanished = if missing.is_empty() {
            match self.start_in_order(stack, &containers, deadline).await {
                Ok(()) => {
                    self.started(stack, report);
                    return Ok(());
                }
                Err(Interrupted::Vanished(services)) => services,
                Err(Interrupted::Failed(e)) => return Err(e),
            }
        } else {
            missing
        };
        report.recreated = self
            .recreate(stack, &wanted, &vanished, &containers, deadline)
            .await?;
        let containers = self.current(stack, &wanted, &health_before).await?;
        match self.start_in_order(stack, &containers, deadline).await {
            Ok(()) => {
                self.started(stack, report);
                Ok(())
            }
            Err(Interrupted::Failed(e)) => Err(e),
            Err(Interrupted::Vanished(services)) => Err(StacksError::Command {
                stack: stack.to_owned(),
                command: "compose up".to_owned(),
                detail: format!("containers of {} vanished again", services.join(", ")),
            }),
        }
    }

    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        check_stack_name(stack)?;
        Ok(self
            .engine
            .project(stack)
            .await
            .map_err(|e| engine_error(stack, "list of its containers", e))?
            .iter()
            .any(|l| l.running))
    }
}

/// Where a container is on its way up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Its dependencies are not ready yet.
    #[default]
    Waiting,
    /// Its start call is under way.
    Starting,
    /// The engine started it; what it is now is being asked.
    Started,
    /// The engine started it, and what it was right after is known.
    Up,
    /// A one-shot that a dependent waits for, exited 0.
    Completed,
}

#[derive(Debug, Clone, Default)]
struct Live {
    phase: Phase,
    running: bool,
    health: Option<Health>,
    /// When its current run began (the engine's `StartedAt`, in ns since the epoch), once
    /// the start is done.
    run_started: Option<i64>,
    /// The last `die` seen since its start was asked for: when (ns) and its exit code.
    died: Option<(i64, i64)>,
    /// The last health change seen while its start was under way: when (ns) and what.
    early_health: Option<(i64, Health)>,
    /// When it was seen up.
    since: Option<Instant>,
}

impl Live {
    /// The exit code of a death of the current run; `None` while it lives (or its run is
    /// not known yet).
    fn death(&self) -> Option<i64> {
        let run = self.run_started?;
        self.died.filter(|(at, _)| *at >= run).map(|(_, code)| code)
    }

    fn ready(&self, prepared: &Prepared) -> bool {
        match self.phase {
            Phase::Completed => true,
            Phase::Up => {
                self.running
                    && (!prepared.waits_for_health() || self.health == Some(Health::Healthy))
            }
            Phase::Waiting | Phase::Starting | Phase::Started => false,
        }
    }

    /// Whether a dependent waiting on `condition` of this container may start.
    fn satisfies(&self, condition: Condition, prepared: &Prepared) -> bool {
        match condition {
            Condition::Completed => self.phase == Phase::Completed,
            Condition::Healthy => self.ready(prepared),
            Condition::Started => {
                // As compose: started is enough, whatever it does next (a death is a failed
                // start all the same).
                matches!(self.phase, Phase::Completed | Phase::Started)
                    || (self.phase == Phase::Up && self.running)
            }
        }
    }
}

/// When the start is over: every container ready, and those without a health check to prove
/// them seen up for `settle` (an app that dies at once is a failed start). `None` while some
/// container is not ready.
fn settled(
    live: &[Live],
    containers: &[Prepared],
    settle: Duration,
    now: Instant,
) -> Option<Instant> {
    let mut at: Option<Instant> = None;
    for (l, p) in live.iter().zip(containers) {
        if !l.ready(p) {
            return None;
        }
        if l.phase == Phase::Up && !p.waits_for_health() {
            at = at.max(l.since.map(|since| since + settle));
        }
    }
    Some(at.unwrap_or(now))
}

/// The services not ready, each with why, e.g. `db (unhealthy)`.
fn pending(
    live: &[Live],
    containers: &[Prepared],
    deps: &[Vec<(usize, Condition)>],
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for (i, (l, p)) in live.iter().zip(containers).enumerate() {
        if l.ready(p) {
            continue;
        }
        let why = match l.phase {
            Phase::Waiting => {
                let on: BTreeSet<&str> = deps[i]
                    .iter()
                    .map(|(j, _)| containers[*j].container.service.as_str())
                    .collect();
                format!(
                    "waiting for {}",
                    on.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
            Phase::Starting | Phase::Started => "starting".to_owned(),
            _ if !l.running => "not running".to_owned(),
            _ => l.health.unwrap_or(Health::Starting).as_str().to_owned(),
        };
        out.insert(format!("{} ({why})", p.container.service));
    }
    out.into_iter().collect()
}

fn dependencies(containers: &[Prepared]) -> Vec<Vec<(usize, Condition)>> {
    let members: Vec<Member<'_>> = containers
        .iter()
        .map(|p| Member {
            id: &p.container.id,
            name: &p.container.name,
            service: &p.container.service,
            depends_on: &p.deps,
            network_mode: &p.container.network_mode,
            links: &p.container.links,
        })
        .collect();
    order::dependencies(&members)
}

fn services_of(containers: &[Prepared]) -> Vec<String> {
    containers
        .iter()
        .map(|p| p.container.service.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The engine takes whole seconds; a fraction is rounded up so that an app never gets less
/// time to stop than configured.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn engine_error(stack: &str, what: &str, e: EngineError) -> StacksError {
    match e {
        EngineError::Unreachable(detail) => StacksError::EngineUnreachable {
            detail: format!("stack {stack:?}: {what}: {detail}"),
        },
        other => StacksError::Command {
            stack: stack.to_owned(),
            command: what.to_owned(),
            detail: other.to_string(),
        },
    }
}

fn container_error(
    stack: &str,
    c: &Inspected,
    action: &'static str,
    e: EngineError,
) -> StacksError {
    match e {
        EngineError::Unreachable(detail) => StacksError::EngineUnreachable {
            detail: format!(
                "stack {stack:?}: {action} of service {:?} (container {}): {detail}",
                c.service, c.name
            ),
        },
        other => StacksError::Container {
            stack: stack.to_owned(),
            service: c.service.clone(),
            container: c.name.clone(),
            action,
            detail: other.to_string(),
        },
    }
}

fn command_error(stack: &str, line: &CommandLine, failure: crate::command::Failure) -> StacksError {
    StacksError::Command {
        stack: stack.to_owned(),
        command: line.to_string(),
        detail: failure.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_refuses_an_invalid_protected_name() {
        let config = StacksConfig {
            protected: vec!["traefik".into(), "Cloud Flared".into()],
            ..StacksConfig::default()
        };
        let err = EngineStacks::new(config).expect_err("invalid protected name");
        assert!(
            matches!(&err, StacksError::InvalidName { name, .. } if name == "Cloud Flared"),
            "{err}"
        );
    }

    #[test]
    fn the_default_protected_stacks_are_always_protected() {
        let config = StacksConfig {
            protected: vec!["mine".into()],
            ..StacksConfig::default()
        };
        let stacks = EngineStacks::new(config).expect("valid");
        for name in ["mine", "traefik", "cloudflared", "felhom-controller"] {
            assert!(stacks.is_protected(name), "{name}");
        }
        assert!(!stacks.is_protected("nextcloud"));
        let none = StacksConfig {
            protected: Vec::new(),
            ..StacksConfig::default()
        };
        let stacks = EngineStacks::new(none).expect("valid");
        assert_eq!(
            stacks.config().protected,
            ["traefik", "cloudflared", "felhom-controller"]
        );
    }

    fn prepared(service: &str, has_healthcheck: bool, before: Option<Health>) -> Prepared {
        Prepared {
            container: Inspected {
                id: format!("id-{service}"),
                name: format!("app-{service}-1"),
                service: service.to_owned(),
                state: State::Exited,
                health: None,
                has_healthcheck,
                stop_timeout: None,
                depends_on: Some(String::new()),
                network_mode: "app_default".to_owned(),
                links: Vec::new(),
                exit_code: 0,
                started_at: 0,
            },
            deps: ServiceDeps::new(),
            health_before: before,
        }
    }

    fn up(health: Option<Health>, since: Instant) -> Live {
        Live {
            phase: Phase::Up,
            running: true,
            health,
            run_started: Some(1_000),
            died: None,
            early_health: None,
            since: Some(since),
        }
    }

    #[test]
    fn health_is_waited_for_only_where_it_passed_before_the_stop() {
        let now = Instant::now();
        let was_healthy = prepared("db", true, Some(Health::Healthy));
        let was_unhealthy = prepared("cache", true, Some(Health::Unhealthy));
        let was_starting = prepared("queue", true, Some(Health::Starting));
        let unknown = prepared("search", true, None);
        let unchecked = prepared("web", false, None);
        assert!(was_healthy.waits_for_health());
        assert!(
            unknown.waits_for_health(),
            "after a crash, as compose would"
        );
        for p in [&was_unhealthy, &was_starting, &unchecked] {
            assert!(!p.waits_for_health(), "{}", p.container.service);
        }
        let starting = up(Some(Health::Starting), now);
        assert!(!starting.ready(&was_healthy));
        assert!(!starting.satisfies(Condition::Healthy, &was_healthy));
        assert!(starting.satisfies(Condition::Started, &was_healthy));
        assert!(starting.ready(&was_unhealthy));
        assert!(up(Some(Health::Healthy), now).ready(&was_healthy));
        assert!(!Live::default().satisfies(Condition::Started, &unchecked));
        let just_started = Live {
            phase: Phase::Started,
            ..Live::default()
        };
        assert!(just_started.satisfies(Condition::Started, &unchecked));
        assert!(!just_started.satisfies(Condition::Healthy, &was_unhealthy));
        assert!(!just_started.ready(&unchecked));
    }

    #[test]
    fn only_a_death_of_the_current_run_counts() {
        let mut live = up(None, Instant::now());
        live.died = Some((999, 0));
        assert_eq!(live.death(), None, "the stop's die, delivered late");
        live.died = Some((1_000, 137));
        assert_eq!(live.death(), Some(137));
        live.run_started = None;
        assert_eq!(live.death(), None, "not known before the start is done");
    }

    #[test]
    fn a_start_is_over_once_all_are_ready_and_the_unproven_have_settled() {
        let now = Instant::now();
        let settle = Duration::from_millis(200);
        let db = prepared("db", true, Some(Health::Healthy));
        let web = prepared("web", false, None);
        let containers = [db, web];
        let healthy_db = up(Some(Health::Healthy), now);
        let web_up = up(None, now);
        assert_eq!(
            settled(
                &[healthy_db.clone(), web_up.clone()],
                &containers,
                settle,
                now
            ),
            Some(now + settle)
        );
        assert_eq!(
            settled(
                std::slice::from_ref(&healthy_db),
                &containers[..1],
                settle,
                now
            ),
            Some(now),
            "a passing health check proves it"
        );
        let unhealthy_db = up(Some(Health::Unhealthy), now);
        assert_eq!(
            settled(&[unhealthy_db.clone(), web_up], &containers, settle, now),
            None
        );
        let deps = vec![Vec::new(), vec![(0, Condition::Healthy)]];
        assert_eq!(
            pending(&[unhealthy_db, Live::default()], &containers, &deps),
            ["db (unhealthy)", "web (waiting for db)"]
        );
    }

    /// Every `Result` of the trait carries it: clippy's `result_large_err` (128 bytes) fails
    /// the users' builds (e.g. the quiesce crate's mocks) once it grows past that.
    #[test]
    fn the_error_stays_below_clippys_large_error_bound() {
        assert!(std::mem::size_of::<StacksError>() < 128);
    }

    #[test]
    fn grace_periods_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_001)), 31);
    }
}
