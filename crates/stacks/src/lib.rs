//! The app stacks of a guest (SPEC §4): compose projects under `stacks.root`.
//!
//! The controller uses them only through the [`Stacks`] trait; `EngineStacks` (feature
//! `engine`, on by default) is the real implementation: it stops and starts a stack's containers through the Docker Engine API, in
//! dependency order, each with its own grace period. The compose command line (`docker
//! compose` v2 or `docker-compose` v1) only brings back containers that vanished while a
//! stack was down; it is run with argument vectors, never through a shell, and every stack
//! name is checked against compose's project-name rules first.
//!
//! ```no_run
//! use felhom_stacks::{EngineStacks, Stacks, StacksConfig};
//!
//! # async fn demo() -> Result<(), felhom_stacks::StacksError> {
//! let stacks = EngineStacks::new(StacksConfig::default())?;
//! for stack in stacks.running_app_stacks().await? {
//!     let services = stacks.stop(&stack.name).await?;
//!     // ... the backup ...
//!     stacks.start(&stack.name, &services).await?;
//! }
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
#[cfg(any(test, feature = "mock"))]
pub mod fake;
#[cfg(feature = "engine")]
mod files;
#[cfg(feature = "engine")]
mod model;
mod name;
#[cfg(feature = "engine")]
mod order;
#[cfg(feature = "engine")]
mod orphans;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub use config::{protected_stacks, ComposeChoice, StacksConfig, DEFAULT_PROTECTED};
#[cfg(feature = "engine")]
pub use engine::unversioned;
#[cfg(feature = "engine")]
pub use engine_stacks::{EngineStacks, StartReport};

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
}

/// A running app stack and the services of it that run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningStack {
    /// The stack's (compose project's) name.
    pub name: String,
    /// Its services that have a running container, sorted.
    pub services: Vec<String>,
}

/// Finds, stops and starts app stacks.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Stacks: Send + Sync {
    /// The app stacks a cycle may stop: deployed ∩ running ∖ protected, sorted by name.
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError>;
    /// Stops every running container of the stack (reverse dependency order, each with its
    /// own grace period) and returns the services that were running just before. Refuses a
    /// protected stack.
    async fn stop(&self, stack: &str) -> Result<Vec<String>, StacksError>;
    /// Starts the containers of exactly `services` of the stack again (dependency order;
    /// compose `up -d --no-recreate` for containers that disappeared) and waits, bounded,
    /// until they run (and are healthy, where they have a health check that passed before
    /// the stop).
    async fn start(&self, stack: &str, services: &[String]) -> Result<(), StacksError>;
    /// Whether at least one of the stack's containers runs.
    async fn is_running(&self, stack: &str) -> Result<bool, StacksError>;
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
    /// A service name handed to [`Stacks::start`] is not one compose could have made.
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
    /// start or within `start_settle` after it.
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
}
