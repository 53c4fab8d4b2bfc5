//! The app stacks of a guest (SPEC §4): compose projects under `stacks.root`.
//!
//! The controller uses them only through the [`Stacks`] trait. (Skeleton: the compose
//! implementation lands with issue 5.)
#![deny(missing_docs)]

use async_trait::async_trait;

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
    /// Stops the stack (compose `stop`, dependency order, the stop timeout) and returns the
    /// services that were running just before. Refuses a protected stack.
    async fn stop(&self, stack: &str) -> Result<Vec<String>, StacksError>;
    /// Starts exactly `services` of the stack again (compose `start`; `up -d --no-recreate`
    /// for containers that disappeared) and waits, bounded, until they run (and are healthy,
    /// where they have a health check).
    async fn start(&self, stack: &str, services: &[String]) -> Result<(), StacksError>;
    /// Whether at least one of the stack's containers runs.
    async fn is_running(&self, stack: &str) -> Result<bool, StacksError>;
}

/// What can go wrong with a stack. Messages name the stack and the command, and carry the
/// tail of compose's stderr.
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
    /// A command failed.
    #[error("stack {stack:?}: {command}: {detail}")]
    Command {
        /// The stack.
        stack: String,
        /// The command line, e.g. `docker compose -p app stop -t 30`.
        command: String,
        /// What went wrong, with the tail of stderr.
        detail: String,
    },
    /// Anything else (engine unreachable, timeout waiting to run...).
    #[error("{0}")]
    Other(String),
}
