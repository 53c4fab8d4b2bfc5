//! The app stacks of a guest (SPEC §4): compose projects under `stacks.root`.
//!
//! The controller uses them only through the [`Stacks`] trait; `EngineStacks` (feature
//! `engine`, on by default) is the real implementation: it stops and starts a stack's containers through the Docker Engine API, in
//! dependency order, each with its own grace period. The compose command line (`docker
//! compose` v2 or `docker-compose` v1) only brings back containers that vanished while a
//! stack was down; it is run with argument vectors, never through a shell, and every stack
//! name is checked against compose's project-name rules first.
//!
//! # Policy and hooks
//!
//! An app's author sets how each service is quiesced with compose labels (`felhom.quiesce`,
//! `felhom.pre-snapshot`, `felhom.post-resume`, `felhom.hook-timeout`, `felhom.on-hook-error`,
//! `felhom.stop-order`; the reference is the project's `docs/labels.md`). They are read from
//! the running containers, so they hold for orphans too: [`RunningStack::policy`] holds each
//! running service's [`ServicePolicy`], the [`LabelError`]s of bad values (the service is then
//! as if that label were absent) and the stack's stop order. Reading them stops nothing.
//! [`Stacks::run_hook`] runs a hook's [`HookCommand`] in a container through the engine
//! (exec, no shell), bounded by its timeout: a hook that outlives it is killed, and reported
//! [`HookRun::timed_out`].
//!
//! # Containers, evidence and slots
//!
//! The calls a cycle makes name containers, not services, and answer with what the engine
//! says, so that a cycle record can tell the truth (SPEC §2 rule 10):
//!
//! - [`Stacks::running_containers`] lists a stack's running containers ([`ContainerRef`]:
//!   id, name, service label), to be recorded before the stop.
//! - [`Stacks::stop_containers`] stops exactly those, in reverse dependency order, each with
//!   its own grace and signal, and reports each one's exit ([`StoppedContainer`]; `killed`
//!   when its grace ran out).
//! - [`Stacks::check_down`] tells whether a container of the stop ran since, or a new one
//!   of the project appeared ([`DownCheck`]).
//! - [`Stacks::start_containers`] starts exactly those again, in dependency order, waits
//!   until they run (and are healthy where they were), and watches them for `settle`
//!   ([`StacksConfig::settle`]): a death in that window is a failed start. With
//!   [`StartRequest::stop_may_be_in_flight`], a container still running is waited for until
//!   it exits (bounded by its grace plus a margin, along the chain of containers that stop
//!   before it), never signalled again, then started.
//! - [`Slots`] bound the engine work of a cycle: a stack's stop calls hold one slot, each
//!   dependency level's start calls one; waiting for an app (to stop, run, become healthy,
//!   settle) holds none.
//!
//! A container is addressed by its id whatever its labels say; only the compose fallback,
//! for a container that vanished, needs its service label to be a valid service name. A
//! call that gets no answer within its bound fails the stack unless the engine does not
//! answer a ping either ([`StacksError::EngineUnreachable`]); an event stream cut while the
//! engine answers is resumed from its last event.
//!
//! ```no_run
//! use felhom_stacks::{EngineStacks, Slots, StartRequest, Stacks, StacksConfig};
//!
//! # async fn demo() -> Result<(), felhom_stacks::StacksError> {
//! let stacks = EngineStacks::new(StacksConfig::default())?;
//! let slots = Slots::new(4);
//! let containers = stacks.running_containers("nextcloud").await?;
//! let stopped = stacks.stop_containers("nextcloud", &containers, &slots).await?;
//! let down_since = stopped.containers.iter().map(|s| s.stop_requested_at).min();
//! // ... the backup ...
//! if let Some(since) = down_since {
//!     let check = stacks.check_down("nextcloud", &containers, since).await?;
//!     assert!(check.stayed_down(), "captured live");
//! }
//! let request = StartRequest { containers, stop_may_be_in_flight: false, recreate_vanished: true };
//! stacks.start_containers("nextcloud", &request, &slots).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `engine` (default): `EngineStacks`, the real implementation on the Docker Engine API
//!   (bollard, hyper), the compose command line (tokio's `process`), and `unversioned`.
//!   Off, the crate is the [`Stacks`] trait, its plain types, [`StacksConfig`] and the
//!   protected names: what the quiesce state machine depends on, with no HTTP or engine client
//!   in its tree.
//! - `mock`: `MockStacks` (mockall) and `fake::FakeStacks`, a recording fake whose calls can
//!   fail, hang or panic, for other crates' tests.
// Links only where the items exist: a link to an item of a feature that is off is broken.
#![cfg_attr(
    feature = "engine",
    doc = "\nThis build has `engine`: [`EngineStacks`](crate::EngineStacks), \
           [`unversioned`](crate::unversioned)."
)]
#![deny(missing_docs)]

#[cfg(feature = "engine")]
mod command;
#[cfg(feature = "engine")]
mod compose;
mod config;
#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod engine_stacks;
#[cfg(feature = "engine")]
mod exec;
mod facts;
#[cfg(any(test, feature = "mock"))]
pub mod fake;
#[cfg(feature = "engine")]
mod files;
mod hook;
#[cfg(feature = "engine")]
mod kill;
#[cfg(feature = "engine")]
mod model;
mod name;
#[cfg(feature = "engine")]
mod order;
mod policy;
mod slots;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub use chrono::{DateTime, Utc};
pub use config::{protected_stacks, ComposeChoice, StacksConfig, DEFAULT_PROTECTED};
#[cfg(feature = "engine")]
pub use engine::unversioned;
#[cfg(feature = "engine")]
pub use engine_stacks::EngineStacks;
pub use facts::{ContainerRef, DownCheck, StartReport, StartRequest, StopReport, StoppedContainer};
pub use hook::{HookError, HookRun, HOOK_OUTPUT_LIMIT};
pub use policy::{
    label, CommandLineError, HookCommand, LabelError, OnHookError, QuiesceMode, ServicePolicy,
    StackPolicy,
};
pub use slots::{Slot, Slots};

/// Checks a stack name against compose's project-name rules (only lowercase letters,
/// digits, dashes and underscores; the first a letter or digit), e.g. to validate
/// `stacks.protected`. Every method of `EngineStacks` (feature `engine`) does this before
/// anything else.
pub fn validate_name(name: &str) -> Result<(), StacksError> {
    name::check_stack_name(name)
}

impl StacksError {
    /// Whether this error says only that the engine is away, so that the caller should wait
    /// for it rather than count a failed attempt.
    pub fn is_engine_unreachable(&self) -> bool {
        matches!(self, StacksError::EngineUnreachable { .. })
    }

    /// Whether this error says that containers to start were removed and recreating them
    /// was not allowed ([`StacksError::Vanished`]): another attempt would fail the same way.
    pub fn is_vanished(&self) -> bool {
        matches!(self, StacksError::Vanished { .. })
    }
}

/// A running app stack: what a cycle may stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningStack {
    /// The stack's (compose project's) name.
    pub name: String,
    /// Its services that have a running container, sorted.
    pub services: Vec<String>,
    /// Its running containers now (one-offs left out), sorted by service, then id.
    pub containers: Vec<ContainerRef>,
    /// Each running service's policy from its containers' labels, the labels with bad values,
    /// and the stack's stop order ([`StackPolicy::stop_order`]).
    pub policy: StackPolicy,
}

/// Finds, stops and starts app stacks.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Stacks: Send + Sync {
    /// The app stacks a cycle may stop: deployed ∩ running ∖ protected, sorted by name.
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError>;
    /// Whether at least one of the stack's containers runs.
    async fn is_running(&self, stack: &str) -> Result<bool, StacksError>;

    /// Runs `command` in `container` of `stack` through the engine (exec: no shell, the
    /// container's own user, working directory and environment), its stdout and stderr
    /// collected (the last [`HOOK_OUTPUT_LIMIT`] bytes), until it ends or `timeout` has passed
    /// since its start: then it is killed (its process group, through the pid the engine
    /// reports) and reported [`HookRun::timed_out`]. A container that does not run is
    /// [`HookError::NotRunning`]; a container that is not the stack's is refused. Dropping
    /// the call kills a hook still running, too (where a tokio runtime is left to do it).
    /// The calls to the engine around the hook are bounded apart; the caller bounds the whole
    /// (by its `max_quiesce`).
    async fn run_hook(
        &self,
        stack: &str,
        container: &ContainerRef,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookRun, HookError> {
        let _ = (stack, container, command, timeout);
        Err(HookError::Unsupported { call: "run_hook" })
    }

    /// The running containers of one stack now (one-offs left out), sorted by service, then
    /// id: the driver records them before a stop, and again after it to catch a container that
    /// started meanwhile.
    async fn running_containers(&self, stack: &str) -> Result<Vec<ContainerRef>, StacksError>;

    /// Stops exactly those of `containers` that still run — reverse dependency order, the
    /// independent ones at once, each with its own grace period and stop signal (a negative
    /// `StopTimeout` waits without a bound of ours) — holding one of `slots` for the stack's
    /// stop calls; reports each with the engine's evidence. Refuses a protected stack.
    async fn stop_containers(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        slots: &Slots,
    ) -> Result<StopReport, StacksError>;

    /// What the engine says about a stopped stack now: see [`DownCheck`].
    async fn check_down(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        down_since: DateTime<Utc>,
    ) -> Result<DownCheck, StacksError>;

    /// Starts exactly the request's containers in dependency order, honouring the conditions
    /// their dependents wait for (each level's start calls hold one of `slots`; the waits hold
    /// none), waits, bounded by `start_timeout`, until they run (and are healthy where they
    /// were before the stop), then watches them until `settle` has passed since their start:
    /// one that dies before is a failed start ([`StacksError::StartFailed`]). Returns what it
    /// noticed.
    async fn start_containers(
        &self,
        stack: &str,
        request: &StartRequest,
        slots: &Slots,
    ) -> Result<StartReport, StacksError>;
}

/// What can go wrong with a stack. Messages name the stack, the container or service, and
/// the engine's answer (or the compose command and the tail of its stderr). An OS error
/// beneath ([`StacksError::Root`]) is only the error's `source()`, not in its message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StacksError {
    /// The name breaks compose's project-name rules.
    #[error("invalid stack name {name:?}: {why}")]
    InvalidName {
        /// The name.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The stack is protected; it is never stopped.
    #[error("stack {0:?} is protected and is never stopped")]
    Protected(String),
    /// A command or an engine call about the stack as a whole failed.
    #[error("stack {stack:?}: {command}: {detail}")]
    Command {
        /// The stack.
        stack: String,
        /// The command line (e.g. `docker compose -p app up -d --no-recreate --no-deps web`)
        /// or the engine call (e.g. `list of its containers`).
        command: String,
        /// What went wrong, with the tail of stderr.
        detail: String,
    },
    /// Anything else (not made by this crate any more; kept for the callers' mocks).
    #[error("{0}")]
    Other(String),
    /// The engine refused or failed an action on one container of a stack.
    #[error("stack {stack:?}: {action} of service {service:?} (container {container}): {detail}")]
    Container {
        /// The stack.
        stack: String,
        /// The container's service.
        service: String,
        /// The container's name.
        container: String,
        /// What was asked of it: `stop`, `start`.
        action: &'static str,
        /// The engine's answer.
        detail: String,
    },
    /// A container's service label is not a name compose could have made, so the compose
    /// fallback cannot bring its service back.
    #[error("stack {stack:?}: invalid service name {service:?}: {why}")]
    InvalidService {
        /// The stack.
        stack: String,
        /// The service name.
        service: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The stack's directory holds no compose file (or does not exist).
    #[error("stack {stack:?} is not deployed: no compose file (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml) in {}", dir.display())]
    NotDeployed {
        /// The stack.
        stack: String,
        /// The directory where its compose file was looked for.
        dir: PathBuf,
    },
    /// The stacks root could not be read.
    #[error("cannot read the stacks root {}", root.display())]
    Root {
        /// `stacks.root`.
        root: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An engine call that concerns no single stack failed (not for an unreachable engine:
    /// that is [`StacksError::EngineUnreachable`]).
    #[error("docker engine: {command}: {detail}")]
    Engine {
        /// The call, e.g. `list of the running containers`.
        command: String,
        /// What went wrong, with the tail of stderr.
        detail: String,
    },
    /// The Docker engine cannot be reached (not up yet after a boot, restarted, upgraded).
    /// Not a failure of any stack: the caller waits for the engine instead of spending
    /// attempts (SPEC §2 rule 6).
    #[error("the docker engine cannot be reached: {detail}")]
    EngineUnreachable {
        /// What the attempt to reach it answered.
        detail: String,
    },
    /// A `stacks.compose` value that is not one of the three allowed.
    #[error("unknown compose {0:?}: expected \"auto\", \"docker compose\" or \"docker-compose\"")]
    UnknownCompose(String),
    /// Neither `docker compose` nor `docker-compose` works.
    #[error("no docker compose found: {detail}")]
    NoCompose {
        /// What each attempt answered.
        detail: String,
    },
    /// A service's container died (exited, or was restarted by its restart policy) during its
    /// start or within `settle` after it.
    #[error("stack {stack:?}: {command}: service {service:?} failed to start ({status}); its last log lines:\n{logs}")]
    StartFailed {
        /// The stack.
        stack: String,
        /// What started it, e.g. `start of container app-web-1`.
        command: String,
        /// The service.
        service: String,
        /// The container's status, e.g. `Exited (1)`.
        status: String,
        /// The tail of the container's log.
        logs: String,
    },
    /// Services did not run (or become healthy) within `start_timeout`.
    #[error("stack {stack:?}: {command}: not running and healthy after {}s: {}", waited.as_secs(), pending.join(", "))]
    StartTimeout {
        /// The stack.
        stack: String,
        /// What was waited for: `start`.
        command: String,
        /// How long was waited.
        waited: Duration,
        /// The services still not ready, each with why, e.g. `db (health: starting)`.
        pending: Vec<String>,
    },
    /// Containers to start no longer exist, and the request did not allow recreating them
    /// ([`StartRequest::recreate_vanished`] off): someone removed them (`docker compose down`,
    /// `docker rm`). Nothing was started nor created; trying again cannot change that.
    #[error("stack {stack:?}: its containers {} no longer exist (removed outside the controller) and are not recreated", containers.join(", "))]
    Vanished {
        /// The stack.
        stack: String,
        /// The names of the containers that are gone.
        containers: Vec<String>,
    },
}
