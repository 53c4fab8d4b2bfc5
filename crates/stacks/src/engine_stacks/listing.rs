//! Which containers a stack has and how they depend on each other: the listing of the
//! running app stacks, and the inspect of a stack's containers before a stop or a start.
//! Apart from the stop and the start because both need it, and because for containers of
//! compose v1 (which labels no dependencies) it asks compose for the project's model.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::fallback::CLI_TIMEOUT;
use super::{command_error, engine_error, EngineStacks};
use crate::engine::{EngineError, Health, Inspected, Listed, RunningMember};
use crate::model;
use crate::name::check_stack_name;
use crate::order::{self, Condition, Member, ServiceDeps};
use crate::{ContainerRef, RunningStack, StackPolicy, StacksError};

/// A container about to be stopped or started, and its dependencies.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub(super) container: Inspected,
    pub(super) deps: ServiceDeps,
    /// Its health just before the stop; `None` when unknown (a start after a crash).
    pub(super) health_before: Option<Health>,
}

impl Prepared {
    /// Whether its start waits until it is healthy: it has a health check, and it was not
    /// known to fail (or still be starting) before the stop.
    pub(super) fn waits_for_health(&self) -> bool {
        self.container.has_healthcheck
            && !matches!(
                self.health_before,
                Some(Health::Starting | Health::Unhealthy)
            )
    }
}

impl EngineStacks {
    /// The running app stacks: deployed, not protected, with a running container.
    pub(super) async fn list_running(&self) -> Result<Vec<RunningStack>, StacksError> {
        let candidates: Vec<String> = self
            .deployed()?
            .into_iter()
            .filter(|name| !self.is_protected(name))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut running = self
            .engine
            .running_by_project()
            .await
            .map_err(|e| match e {
                EngineError::Unreachable(detail) => StacksError::EngineUnreachable { detail },
                other => StacksError::Engine {
                    command: "list of the running containers".to_owned(),
                    detail: other.to_string(),
                },
            })?;
        Ok(candidates
            .into_iter()
            .filter_map(|name| {
                let members = running.remove(&name)?;
                let policy = policy_of(&name, &members);
                let services: BTreeSet<String> = members
                    .iter()
                    .map(|m| m.container.service.clone())
                    .collect();
                Some(RunningStack {
                    name,
                    services: services.into_iter().collect(),
                    containers: members.into_iter().map(|m| m.container).collect(),
                    policy,
                })
            })
            .collect())
    }

    /// The containers of `stack`, running or not.
    pub(super) async fn containers(&self, stack: &str) -> Result<Vec<Listed>, StacksError> {
        self.engine
            .project(stack)
            .await
            .map_err(|e| engine_error(stack, "list of its containers", e))
    }

    /// Whether a container of `stack` runs.
    pub(super) async fn runs(&self, stack: &str) -> Result<bool, StacksError> {
        check_stack_name(stack)?;
        Ok(self.containers(stack).await?.iter().any(|l| l.running))
    }

    /// The running containers of `stack`, sorted by service, then id.
    pub(super) async fn running_refs(&self, stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
        check_stack_name(stack)?;
        Ok(self
            .containers(stack)
            .await?
            .into_iter()
            .filter(|l| l.running)
            .map(|l| l.container)
            .collect())
    }

    /// Inspects the containers `ids` (those gone meanwhile are left out) and finds their
    /// dependencies: from their labels, or from the project's model for those without.
    /// `health_before`: what a stop recorded, by container id.
    pub(super) async fn prepare(
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
                let before = health_before.get(&c.id).copied().flatten();
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
}

/// The policy of a stack from its running containers' labels. A service's containers normally
/// carry the same labels; where they differ (a recreate under way, a replica left from an older
/// file), the newest container's say what the compose file says now.
fn policy_of(stack: &str, members: &[RunningMember]) -> StackPolicy {
    let mut newest: BTreeMap<&str, &RunningMember> = BTreeMap::new();
    for m in members {
        let slot = newest.entry(m.container.service.as_str()).or_insert(m);
        if m.created > slot.created {
            *slot = m;
        }
    }
    let mut policy = StackPolicy::default();
    for (service, m) in newest {
        policy.read_service(stack, service, &m.labels);
    }
    policy
}

pub(super) fn dependencies(containers: &[Prepared]) -> Vec<Vec<(usize, Condition)>> {
    order::dependencies(&members(containers))
}

/// For each container, the one whose network namespace it joins, if it is in `containers`.
pub(super) fn namespace_targets(containers: &[Prepared]) -> Vec<Option<usize>> {
    order::namespace_targets(&members(containers))
}

fn members(containers: &[Prepared]) -> Vec<Member<'_>> {
    containers
        .iter()
        .map(|p| Member {
            id: &p.container.id,
            name: &p.container.name,
            service: &p.container.service,
            depends_on: &p.deps,
            network_mode: &p.container.network_mode,
            links: &p.container.links,
        })
        .collect()
}
