//! [`ComposeStacks`]: the [`Stacks`] of a real guest, over the docker and compose CLIs.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::command::{CommandLine, Runner};
use crate::compose::Flavor;
use crate::engine::{self, Container, Health};
use crate::files::{self, ComposeFiles};
use crate::name::{check_service_name, check_stack_name};
use crate::orphans;
use crate::{ComposeChoice, RunningStack, Stacks, StacksConfig, StacksError};

/// The controller's own stack: stopping it would stop the process that has to start the
/// others again, so it is protected even when the configuration forgets it.
const SELF_STACK: &str = "felhom-controller";
/// Bound for the quick docker calls (`ps`, `logs`, `version`), which only hang when the
/// engine does.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time for a compose command beyond what its containers are given.
const COMPOSE_SLACK: Duration = Duration::from_secs(60);
/// The least time a start's compose command gets, however little of `start_timeout` is
/// left: v1 alone needs about a second to load.
const MIN_COMPOSE_TIME: Duration = Duration::from_secs(10);
/// First and longest pause between two looks while waiting for services to run.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(1);
/// Log lines of a failed container carried in the error.
const LOG_TAIL: usize = 20;

/// The stacks of a guest, managed with `docker compose` or `docker-compose`.
///
/// A stack is a directory under [`StacksConfig::root`] with a compose file; its name is the
/// compose project name. The compose tool is detected (or checked, when configured) once, on
/// first use.
#[derive(Debug)]
pub struct ComposeStacks {
    config: StacksConfig,
    runner: Runner,
    flavor: OnceCell<Flavor>,
    /// What each stop of this instance saw, until the stack's next start: it spares that
    /// start a `docker ps` on the way up, where every call is the apps' downtime.
    stopped: Mutex<HashMap<String, Stopped>>,
}

/// A stack's containers as its stop saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stopped {
    /// The services that ran and were stopped, sorted.
    services: Vec<String>,
    /// Whether the stack also has containers of other services (e.g. an exited one-shot).
    others: bool,
}

/// How a wait for services ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum Waited {
    Ready,
    /// These services have no container at all (only reported when asked to).
    Missing(Vec<String>),
}

impl ComposeStacks {
    /// Checks the configuration: every protected name must be a valid stack name (a typo
    /// would otherwise silently protect nothing).
    pub fn new(config: StacksConfig) -> Result<Self, StacksError> {
        for name in &config.protected {
            check_stack_name(name)?;
        }
        Ok(Self {
            config,
            runner: Runner::default(),
            flavor: OnceCell::new(),
            stopped: Mutex::new(HashMap::new()),
        })
    }

    /// Points every docker and compose command at another engine (`DOCKER_HOST`, e.g.
    /// `unix:///run/other.sock`).
    pub fn with_docker_host(mut self, host: impl Into<String>) -> Self {
        self.runner.docker_host = Some(host.into());
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &StacksConfig {
        &self.config
    }

    /// The compose tool in use, [`ComposeChoice::V2`] or [`ComposeChoice::V1`] (never
    /// `Auto`): detected on the first call for `auto`, and for a configured one, checked to
    /// run.
    pub async fn compose_command(&self) -> Result<ComposeChoice, StacksError> {
        self.flavor().await.map(Flavor::choice)
    }

    /// The deployed stacks (directories under the root holding a compose file), sorted,
    /// protected ones included. Directories whose names compose would not accept are skipped
    /// with a warning.
    pub fn deployed(&self) -> Result<Vec<String>, StacksError> {
        files::deployed(&self.config.root)
    }

    /// Takes what the last stop of `stack` saw (a start, or a new stop, consumes it).
    fn forget_stop(&self, stack: &str) -> Option<Stopped> {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(stack)
    }

    fn is_protected(&self, stack: &str) -> bool {
        stack == SELF_STACK || self.config.protected.iter().any(|p| p == stack)
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

    async fn containers(
        &self,
        stack: &str,
        running_only: bool,
    ) -> Result<Vec<Container>, StacksError> {
        let line = engine::ps_project(stack, running_only);
        let stdout = self
            .runner
            .stdout(&line, CLI_TIMEOUT)
            .await
            .map_err(|failure| command_error(stack, &line, failure))?;
        Ok(engine::parse_containers(&stdout))
    }

    async fn run_compose(
        &self,
        stack: &str,
        line: &CommandLine,
        limit: Duration,
    ) -> Result<(), StacksError> {
        tracing::debug!(stack, command = %line, "running");
        self.runner
            .stdout(line, limit)
            .await
            .map(drop)
            .map_err(|failure| command_error(stack, line, failure))
    }

    /// Waits until every one of `services` has its containers running (and healthy, where
    /// they have a health check), until `deadline`. With `report_missing`, services that have
    /// no container at all end the wait at once, as [`Waited::Missing`].
    async fn wait_ready(
        &self,
        stack: &str,
        command: &CommandLine,
        services: &[String],
        deadline: Instant,
        report_missing: bool,
    ) -> Result<Waited, StacksError> {
        let mut pause = POLL_FIRST;
        let mut all_up_since: Option<Instant> = None;
        loop {
            let containers = self.containers(stack, false).await?;
            if report_missing {
                let missing = missing_services(services, &containers);
                if !missing.is_empty() {
                    return Ok(Waited::Missing(missing));
                }
            }
            let mut pending = Vec::new();
            let mut unproven = false;
            for service in services {
                let mine: Vec<&Container> = containers
                    .iter()
                    .filter(|c| &c.service == service)
                    .collect();
                if let Some(failed) = mine.iter().find(|c| c.has_failed()) {
                    return Err(self.start_failed(stack, command, failed).await);
                }
                match readiness(&mine) {
                    Readiness::Pending(why) => pending.push(format!("{service} ({why})")),
                    Readiness::Healthy => {}
                    Readiness::Running => unproven = true,
                }
            }
            let now = Instant::now();
            if pending.is_empty() {
                let since = *all_up_since.get_or_insert(now);
                if !unproven
                    || now.duration_since(since) >= self.config.start_settle
                    || now >= deadline
                {
                    tracing::debug!(stack, "services run");
                    return Ok(Waited::Ready);
                }
            } else {
                all_up_since = None;
                if now >= deadline {
                    return Err(StacksError::StartTimeout {
                        stack: stack.to_owned(),
                        command: command.to_string(),
                        waited: self.config.start_timeout,
                        pending,
                    });
                }
            }
            let next = match all_up_since {
                Some(since) => self
                    .config
                    .start_settle
                    .saturating_sub(now.duration_since(since)),
                None => pause,
            };
            tokio::time::sleep(next.min(deadline.saturating_duration_since(now))).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    /// Waits until no other process runs a compose `stop` of `stack` (one left behind by a
    /// killed controller would otherwise stop the stack again after it was started), bounded
    /// by what such a stop may take.
    async fn wait_for_other_stops(&self, stack: &str) {
        let bound = self
            .config
            .stop_timeout
            .saturating_mul(2)
            .saturating_add(COMPOSE_SLACK);
        let left = orphans::wait_for_stops(stack, bound).await;
        if !left.is_empty() {
            tracing::warn!(stack, still_running = ?left, "going ahead although another compose stop of the stack still runs");
        }
    }

    async fn start_failed(
        &self,
        stack: &str,
        command: &CommandLine,
        container: &Container,
    ) -> StacksError {
        let line = engine::logs_tail(&container.id, LOG_TAIL);
        let logs = match self.runner.merged_output(&line, CLI_TIMEOUT).await {
            Ok(logs) => crate::command::tail(&logs),
            Err(failure) => format!("(cannot read them: {line}: {failure})"),
        };
        StacksError::StartFailed {
            stack: stack.to_owned(),
            command: command.to_string(),
            service: container.service.clone(),
            status: container.status.clone(),
            logs,
        }
    }
}

#[async_trait]
impl Stacks for ComposeStacks {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        let candidates: Vec<String> = self
            .deployed()?
            .into_iter()
            .filter(|name| !self.is_protected(name))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let line = engine::ps_running_services();
        let stdout = self
            .runner
            .stdout(&line, CLI_TIMEOUT)
            .await
            .map_err(|failure| StacksError::Engine {
                command: line.to_string(),
                detail: failure.to_string(),
            })?;
        let mut running = engine::parse_running_services(&stdout);
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
        self.wait_for_other_stops(stack).await;
        let files = self.files(stack)?;
        let containers = self.containers(stack, false).await?;
        let services = engine::running_services(&containers);
        if services.is_empty() {
            tracing::debug!(stack, "nothing runs; nothing to stop");
            return Ok(services);
        }
        let flavor = self.flavor().await?;
        let line = flavor.stop(stack, &files, self.config.stop_timeout);
        // Compose stops one dependency level after the other, each with the full timeout.
        let levels = u32::try_from(services.len()).unwrap_or(u32::MAX);
        let limit = self
            .config
            .stop_timeout
            .saturating_mul(levels)
            .saturating_add(COMPOSE_SLACK);
        tracing::info!(stack, ?services, "stopping");
        self.forget_stop(stack);
        self.run_compose(stack, &line, limit).await?;
        let others = containers.iter().any(|c| !services.contains(&c.service));
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                stack.to_owned(),
                Stopped {
                    services: services.clone(),
                    others,
                },
            );
        Ok(services)
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
        let files = self.files(stack)?;
        let flavor = self.flavor().await?;

        // Right after this instance stopped exactly these services, what its stop saw is
        // still true unless someone removed a container meanwhile, and the first look of the
        // wait below tells that (or compose fails): then the careful way follows.
        let seen = self.forget_stop(stack).filter(|s| s.services == wanted);
        if let Some(seen) = seen {
            let line = start_command(flavor, stack, &files, &wanted, seen.others, false);
            tracing::info!(stack, services = ?wanted, command = %line, "starting");
            match self.run_compose(stack, &line, compose_time(deadline)).await {
                Ok(()) => match self
                    .wait_ready(stack, &line, &wanted, deadline, true)
                    .await?
                {
                    Waited::Ready => return Ok(()),
                    Waited::Missing(missing) => {
                        tracing::warn!(
                            stack,
                            ?missing,
                            "services without a container after the start"
                        )
                    }
                },
                Err(e) => tracing::warn!(stack, "{e}: looking at the stack's containers again"),
            }
        }

        let containers = self.containers(stack, false).await?;
        let missing = missing_services(&wanted, &containers);
        let others = containers.iter().any(|c| !wanted.contains(&c.service));
        if !missing.is_empty() {
            tracing::warn!(
                stack,
                ?missing,
                "containers disappeared while the stack was stopped; recreating them with up --no-recreate"
            );
        }
        let line = start_command(flavor, stack, &files, &wanted, others, !missing.is_empty());
        tracing::info!(stack, services = ?wanted, command = %line, "starting");
        self.run_compose(stack, &line, compose_time(deadline))
            .await?;
        self.wait_ready(stack, &line, &wanted, deadline, false)
            .await
            .map(drop)
    }

    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        check_stack_name(stack)?;
        Ok(!self.containers(stack, true).await?.is_empty())
    }
}

/// The command that starts exactly `wanted` of `stack`, the same containers.
/// `others`: the stack has containers of services outside `wanted`; `missing`: some of
/// `wanted` have no container any more.
fn start_command(
    flavor: Flavor,
    stack: &str,
    files: &ComposeFiles,
    wanted: &[String],
    others: bool,
    missing: bool,
) -> CommandLine {
    if missing {
        // One `up` for all the services, not `start` for some and `up` for the others:
        // compose orders them only within one command.
        flavor.up_no_recreate(stack, files, wanted)
    } else if flavor == Flavor::V2 && others {
        // v2's `start <service>` also starts what the service depends on, which would run an
        // exited one-shot (a migration, say) again; `up --no-deps` on existing containers
        // starts exactly them, the same containers.
        flavor.up_no_recreate(stack, files, wanted)
    } else {
        flavor.start(stack, files, wanted)
    }
}

/// How far a service is on its way up.
#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    /// Not yet, and why.
    Pending(String),
    /// Runs; it has no health check to say more.
    Running,
    /// Runs and its health check passes.
    Healthy,
}

fn readiness(containers: &[&Container]) -> Readiness {
    if containers.is_empty() {
        return Readiness::Pending("no container".to_owned());
    }
    let mut healthy = true;
    for container in containers {
        if !container.is_running() {
            return Readiness::Pending(container.state.clone());
        }
        match container.health() {
            Some(Health::Starting) => return Readiness::Pending("health: starting".to_owned()),
            Some(Health::Unhealthy) => return Readiness::Pending("unhealthy".to_owned()),
            Some(Health::Healthy) => {}
            None => healthy = false,
        }
    }
    if healthy {
        Readiness::Healthy
    } else {
        Readiness::Running
    }
}

/// The time a start's compose command gets: what is left of `start_timeout`, but never less
/// than [`MIN_COMPOSE_TIME`].
fn compose_time(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(MIN_COMPOSE_TIME)
}

/// The services among `wanted` that have no container at all.
fn missing_services(wanted: &[String], containers: &[Container]) -> Vec<String> {
    wanted
        .iter()
        .filter(|s| !containers.iter().any(|c| &&c.service == s))
        .cloned()
        .collect()
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

    fn container(service: &str, state: &str, status: &str) -> Container {
        Container {
            id: format!("id-{service}"),
            service: service.to_owned(),
            state: state.to_owned(),
            status: status.to_owned(),
        }
    }

    #[test]
    fn readiness_needs_every_container_running_and_healthy() {
        let up = container("web", "running", "Up 2 seconds");
        let healthy = container("web", "running", "Up 2 seconds (healthy)");
        let starting = container("web", "running", "Up 2 seconds (health: starting)");
        let created = container("web", "created", "Created");
        assert_eq!(readiness(&[]), Readiness::Pending("no container".into()));
        assert_eq!(readiness(&[&up]), Readiness::Running);
        assert_eq!(readiness(&[&healthy]), Readiness::Healthy);
        assert_eq!(readiness(&[&healthy, &up]), Readiness::Running);
        assert_eq!(
            readiness(&[&healthy, &starting]),
            Readiness::Pending("health: starting".into())
        );
        assert_eq!(
            readiness(&[&up, &created]),
            Readiness::Pending("created".into())
        );
    }

    #[test]
    fn missing_services_have_no_container_at_all() {
        let containers = [
            container("db", "exited", "Exited (0) 1 second ago"),
            container("web", "running", "Up 1 second"),
        ];
        let wanted = ["db".to_owned(), "web".to_owned(), "worker".to_owned()];
        assert_eq!(missing_services(&wanted, &containers), ["worker"]);
        assert!(missing_services(&wanted[..2], &containers).is_empty());
    }

    #[test]
    fn what_a_stop_saw_serves_one_start_only() {
        let stacks = ComposeStacks::new(StacksConfig::default()).expect("valid");
        let seen = Stopped {
            services: vec!["app".into()],
            others: true,
        };
        stacks
            .stopped
            .lock()
            .expect("not poisoned")
            .insert("app".into(), seen.clone());
        assert_eq!(stacks.forget_stop("other"), None);
        assert_eq!(stacks.forget_stop("app"), Some(seen));
        assert_eq!(stacks.forget_stop("app"), None);
    }

    #[test]
    fn new_refuses_an_invalid_protected_name() {
        let config = StacksConfig {
            protected: vec!["traefik".into(), "Cloud Flared".into()],
            ..StacksConfig::default()
        };
        let err = ComposeStacks::new(config).expect_err("invalid protected name");
        assert!(
            matches!(&err, StacksError::InvalidName { name, .. } if name == "Cloud Flared"),
            "{err}"
        );
    }

    #[test]
    fn the_controller_itself_is_always_protected() {
        let config = StacksConfig {
            protected: vec!["traefik".into()],
            ..StacksConfig::default()
        };
        let stacks = ComposeStacks::new(config).expect("valid");
        assert!(stacks.is_protected("traefik"));
        assert!(stacks.is_protected("felhom-controller"));
        assert!(!stacks.is_protected("cloudflared"));
    }
}
