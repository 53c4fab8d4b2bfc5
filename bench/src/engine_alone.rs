//! The "engine alone" candidate: every stack's containers stopped, then started again,
//! straight through the Docker Engine API from this process — no compose, no controller, no
//! backup. With the controller's parallelism it is the floor of any design on this engine:
//! what is left of a stack's downtime here is the app's own time and the engine's work.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::fixture::LABEL;

/// Far beyond a stop's grace period (the engine's own kill comes first): only catches hangs.
const CALL_LIMIT: Duration = Duration::from_secs(120);
const PROJECT_LABEL: &str = "com.docker.compose.project";

/// Stops every running container of set `set` (`parallelism` stacks at a time, each with the
/// container's own grace period), then starts them again the same way, in stack name order.
/// Returns when the engine called the first start (the floor of "the first start").
pub(crate) fn cycle(set: &str, parallelism: usize) -> Result<DateTime<Utc>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    runtime.block_on(async {
        let docker = connect()?;
        let stacks = running_by_stack(&docker, set).await?;
        if stacks.is_empty() {
            bail!("set {set}: no running container to stop");
        }
        each_stack(&stacks, parallelism, |id| {
            let docker = docker.clone();
            async move { docker.stop_container(&id, None).await }
        })
        .await
        .context("engine alone: stop")?;
        let first_start = Utc::now();
        each_stack(&stacks, parallelism, |id| {
            let docker = docker.clone();
            async move { docker.start_container(&id, None).await }
        })
        .await
        .context("engine alone: start")?;
        Ok(first_start)
    })
}

fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults()
        .context("connecting to the Docker engine")?
        // As the stacks crate does, so that the floor speaks to the engine the same way.
        .with_request_modifier(felhom_stacks::unversioned);
    Ok(docker)
}

/// The running containers of the set, by compose project, in name order.
async fn running_by_stack(docker: &Docker, set: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let filters = HashMap::from([
        ("label", vec![format!("{LABEL}={set}")]),
        ("status", vec!["running".to_owned()]),
    ]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let listed = tokio::time::timeout(CALL_LIMIT, docker.list_containers(Some(options)))
        .await
        .context("listing the set's containers: no answer")?
        .context("listing the set's containers")?;
    let mut stacks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for container in listed {
        let project = container
            .labels
            .as_ref()
            .and_then(|l| l.get(PROJECT_LABEL))
            .cloned();
        if let (Some(project), Some(id)) = (project, container.id) {
            stacks.entry(project).or_default().push(id);
        }
    }
    Ok(stacks)
}

/// Runs `call` on every container of every stack: the containers of one stack at once, up to
/// `parallelism` stacks at a time; the next stack begins as soon as any is done.
async fn each_stack<F, Fut>(
    stacks: &BTreeMap<String, Vec<String>>,
    parallelism: usize,
    call: F,
) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), bollard::errors::Error>>,
{
    let call = &call;
    futures::stream::iter(stacks.iter())
        .map(|(stack, ids)| async move {
            let all = futures::future::try_join_all(ids.iter().map(|id| call(id.clone())));
            tokio::time::timeout(CALL_LIMIT, all)
                .await
                .with_context(|| format!("stack {stack}: no answer within {CALL_LIMIT:?}"))?
                .with_context(|| format!("stack {stack}"))?;
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(parallelism.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
