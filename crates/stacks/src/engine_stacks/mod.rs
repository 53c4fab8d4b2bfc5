//! [`EngineStacks`]: the [`Stacks`] of a real guest, through the Docker Engine API.
//!
//! One file per part of the work, each readable at once: `listing` (which containers a stack
//! has, and their dependencies), `stop`, `down` (whether a stopped stack stayed down), `start`
//! (with `start/attempt`, one attempt through the engine, and `start/graph`, what the
//! dependencies alone tell; `progress`, where each container is on its way up), `fallback`
//! (the compose command line, for vanished containers and compose v1's dependencies),
//! `records` (what a stop leaves for the start) and `hooks`. This file holds the type, its
//! configuration and the errors they share.

mod down;
mod fallback;
mod hooks;
mod listing;
mod progress;
mod records;
mod start;
mod stop;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use crate::command::{CommandLine, Runner};
use crate::compose::Flavor;
use crate::engine::{Engine, EngineError, Inspected};
use crate::files::{self, ComposeFiles};
use crate::name::check_stack_name;
use crate::{
    protected_stacks, ComposeChoice, ContainerRef, DownCheck, HookCommand, HookError, HookRun,
    RunningStack, Slots, Stacks, StacksConfig, StacksError, StartReport, StartRequest, StopReport,
};

use hooks::Hook;
use records::Records;
use start::Plan;

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
    /// What its stops stopped, until the next start, and what the starts noticed.
    records: Records,
    /// See [`EngineStacks::with_call_timeout`].
    engine_call_timeout: Duration,
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
            records: Records::default(),
            engine_call_timeout: crate::engine::CALL_TIMEOUT,
        })
    }

    /// Points every engine call and compose command at another engine (`DOCKER_HOST`, e.g.
    /// `unix:///run/other.sock`).
    pub fn with_docker_host(mut self, host: impl Into<String>) -> Self {
        let host = host.into();
        let mut engine = Engine::new(Some(host.clone()));
        engine.set_call_timeout(self.engine_call_timeout);
        self.engine = engine;
        self.runner.docker_host = Some(host);
        self
    }

    /// Keeps the variables `names` of this process out of the compose and docker commands'
    /// environment (an embedder's own, such as systemd's `NOTIFY_SOCKET`).
    pub fn without_env<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.runner.hidden_env = names.into_iter().map(Into::into).collect();
        self
    }

    /// The bound on each quick engine call (list, inspect, start, logs; 30s): a call that
    /// gets no answer within it fails the stack's stop or start, unless the engine does not
    /// answer a ping either, which is [`StacksError::EngineUnreachable`]. Shorter in tests.
    /// A stop call is bounded by the container's grace instead.
    pub fn with_call_timeout(mut self, limit: Duration) -> Self {
        self.engine_call_timeout = limit;
        self.engine.set_call_timeout(limit);
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
        self.records.last_start(stack)
    }

    fn is_protected(&self, stack: &str) -> bool {
        self.config.protected.iter().any(|p| p == stack)
    }

    fn files(&self, stack: &str) -> Result<ComposeFiles, StacksError> {
        let dir = self.config.root.join(stack);
        ComposeFiles::find(&dir).ok_or(StacksError::NotDeployed {
            stack: stack.to_owned(),
            dir,
        })
    }
}

#[async_trait]
impl Stacks for EngineStacks {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        self.list_running().await
    }

    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        self.runs(stack).await
    }

    async fn running_containers(&self, stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
        self.running_refs(stack).await
    }

    async fn stop_containers(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        slots: &Slots,
    ) -> Result<StopReport, StacksError> {
        self.stop_refs(stack, containers, slots).await
    }

    async fn check_down(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        down_since: DateTime<Utc>,
    ) -> Result<DownCheck, StacksError> {
        self.check_down_of(stack, containers, down_since).await
    }

    async fn start_containers(
        &self,
        stack: &str,
        request: &StartRequest,
        slots: &Slots,
    ) -> Result<StartReport, StacksError> {
        let plan = Plan {
            containers: request.containers.clone(),
            in_flight: request.stop_may_be_in_flight,
            recreate_vanished: request.recreate_vanished,
            slots,
        };
        self.start_plan(stack, plan).await
    }

    async fn run_hook(
        &self,
        stack: &str,
        container: &ContainerRef,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookRun, HookError> {
        let hook = Hook::new(stack, command);
        let container = self.hook_container(&hook, container).await?;
        self.exec_hook(&hook, container, command, timeout).await
    }
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

/// A compose command failed; an engine that did not answer it is
/// [`StacksError::EngineUnreachable`], as it is for the engine calls.
fn command_error(stack: &str, line: &CommandLine, failure: crate::command::Failure) -> StacksError {
    if failure.engine_away() {
        return StacksError::EngineUnreachable {
            detail: format!("stack {stack:?}: {line}: {failure}"),
        };
    }
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

    /// Every `Result` of the trait carries it: clippy's `result_large_err` (128 bytes) fails
    /// the users' builds (e.g. the quiesce crate's mocks) once it grows past that.
    #[test]
    fn the_error_stays_below_clippys_large_error_bound() {
        assert!(std::mem::size_of::<StacksError>() < 128);
    }
}
