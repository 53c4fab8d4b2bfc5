//! The compose command line, for what the engine alone cannot do: bringing back containers
//! that vanished while their stack was down (compose knows how to create them from the
//! project), and reading the dependencies of containers deployed by compose v1. Kept apart
//! because nothing else in the stop and start runs a process.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::listing::Prepared;
use super::{command_error, EngineStacks};
use crate::command::CommandLine;
use crate::compose::Flavor;
use crate::name::check_service_name;
use crate::{ComposeChoice, StacksError};

/// Bound for the compose commands that only read (`version`, `config`).
pub(super) const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// The least time a compose `up` of the fallback gets, however little of `start_timeout` is
/// left: v1 alone needs about a second to load.
const MIN_COMPOSE_TIME: Duration = Duration::from_secs(10);

impl EngineStacks {
    pub(super) async fn flavor(&self) -> Result<Flavor, StacksError> {
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

    /// The compose fallback for containers that vanished while the stack was down:
    /// `up --no-recreate --no-deps` of their services (missing containers are created; the
    /// other containers of the start are started by id afterwards, never by compose), and
    /// `up --force-recreate --no-deps` of those whose network namespace was a container that
    /// is gone, so that they join the new one. Returns the services brought back, and the ids
    /// of the containers compose made for them.
    pub(super) async fn recreate(
        &self,
        stack: &str,
        missing: &[String],
        known: &[Prepared],
        deadline: Instant,
    ) -> Result<(Vec<String>, Vec<String>), StacksError> {
        let existing = self.containers(stack).await?;
        let exists = |target: &str| existing.iter().any(|l| l.container.id.starts_with(target));
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
        // Only here does a service name reach a command line: it must be one compose could
        // have made. Elsewhere a container is addressed by its id, whatever its label says.
        for service in missing.iter().chain(&stale) {
            check_service_name(stack, service)?;
        }
        let files = self.files(stack)?;
        let flavor = self.flavor().await?;
        let plain: Vec<String> = missing
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
        let made: Vec<String> = self
            .containers(stack)
            .await?
            .into_iter()
            .map(|l| l.container)
            .filter(|c| recreated.contains(&c.service))
            .filter(|c| !existing.iter().any(|e| e.container.id == c.id))
            .map(|c| c.id)
            .collect();
        Ok((recreated.into_iter().collect(), made))
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
}
