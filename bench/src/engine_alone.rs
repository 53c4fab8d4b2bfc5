//! The "engine alone" candidate: every stack's containers stopped, then started again,
//! straight through the Docker Engine API from this process — no compose, no controller, no
//! backup. With the controller's parallelism it is the floor of any design on this engine:
//! what is left of a stack's downtime here is the app's own time and the engine's work.
//!
//! It is a fair floor (issue 22): like a controller it waits, after the starts, until every
//! container runs and, where it has a health check, is healthy — and, as the controller must,
//! outside its parallelism slots: a slot is held for the engine's work (a stop call, a start
//! call) only, so no stack's start waits for another stack's health check.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::models::{EventMessage, HealthStatusEnum};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::fixture::LABEL;

/// Far beyond a stop's grace period (the engine's own kill comes first): only catches hangs.
const CALL_LIMIT: Duration = Duration::from_secs(120);
/// How long the started containers may take to run and become healthy: far beyond the slow
/// app's readiness, only catches an app that never gets there.
const READY_LIMIT: Duration = Duration::from_secs(120);
const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The engine's action for a passed health check.
const HEALTHY: &str = "health_status: healthy";

/// Stops every running container of set `set` (`parallelism` stacks at a time, each with the
/// container's own grace period), then starts them again the same way, in stack name order,
/// and waits — outside the slots — until each runs and is healthy where it has a health check.
/// Returns when it called the first start (the floor of "the first start").
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
        // Read from the moment the starts begin (a report it missed, the inspect after the
        // starts shows).
        let mut health = health_events(&docker, set);
        let first_start = Utc::now();
        let starts = each_stack(&stacks, parallelism, |id| {
            let docker = docker.clone();
            async move { docker.start_container(&id, None).await }
        });
        wait_ready(&docker, &stacks, starts, &mut health, first_start)
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

/// The set's health reports from now on.
fn health_events(
    docker: &Docker,
    set: &str,
) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> + Unpin {
    let filters = HashMap::from([
        ("type", vec!["container".to_owned()]),
        ("label", vec![format!("{LABEL}={set}")]),
        ("event", vec!["health_status".to_owned()]),
    ]);
    let options = EventsOptionsBuilder::default().filters(&filters).build();
    docker.events(Some(options))
}

/// The container a health report of this run (at or after `since`) says is healthy.
fn healthy_container(event: &EventMessage, since: DateTime<Utc>) -> Option<String> {
    let at = event
        .time_nano
        .or(event.time.map(|secs| secs.saturating_mul(1_000_000_000)))?;
    let since = since.timestamp_nanos_opt()?;
    (event.action.as_deref() == Some(HEALTHY) && at >= since)
        .then(|| event.actor.as_ref().and_then(|a| a.id.clone()))
        .flatten()
}

/// Drives `starts` (which hold the slots) while noting the health reports, then waits until
/// every container of `stacks` runs and, where it has a health check, has passed it.
async fn wait_ready<S>(
    docker: &Docker,
    stacks: &BTreeMap<String, Vec<String>>,
    starts: impl std::future::Future<Output = Result<()>>,
    health: &mut S,
    since: DateTime<Utc>,
) -> Result<()>
where
    S: Stream<Item = Result<EventMessage, bollard::errors::Error>> + Unpin,
{
    let mut healthy: HashSet<String> = HashSet::new();
    let mut starts = std::pin::pin!(starts);
    loop {
        tokio::select! {
            done = &mut starts => {
                done?;
                break;
            }
            event = health.next() => healthy.extend(reported(event, since)?),
        }
    }
    // Which of them still have to pass a health check: one inspect each, after every start
    // call, so that none of it is in a slot. A report the stream missed shows here.
    let deadline = tokio::time::Instant::now() + READY_LIMIT;
    let mut pending = HashSet::new();
    for id in stacks.values().flatten() {
        let inspected = tokio::time::timeout(CALL_LIMIT, docker.inspect_container(id, None))
            .await
            .with_context(|| format!("inspecting container {id}: no answer"))?
            .with_context(|| format!("inspecting container {id}"))?;
        let state = inspected.state.unwrap_or_default();
        if state.running != Some(true) {
            bail!(
                "container {id} does not run after its start ({:?})",
                state.status
            );
        }
        let checked = state.health.and_then(|h| h.status);
        if matches!(
            checked,
            Some(HealthStatusEnum::STARTING | HealthStatusEnum::UNHEALTHY)
        ) && !healthy.contains(id)
        {
            pending.insert(id.clone());
        }
    }
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, health.next())
            .await
            .with_context(|| {
                format!(
                    "{} container(s) not healthy {}s after their start",
                    pending.len(),
                    READY_LIMIT.as_secs()
                )
            })?;
        if let Some(id) = reported(event, since)? {
            pending.remove(&id);
        }
    }
    Ok(())
}

/// The container an item of the health stream says is healthy, if it is such a report of
/// this run; an error when the stream failed or ended.
fn reported(
    event: Option<Result<EventMessage, bollard::errors::Error>>,
    since: DateTime<Utc>,
) -> Result<Option<String>> {
    match event {
        Some(Ok(event)) => Ok(healthy_container(&event, since)),
        Some(Err(e)) => Err(anyhow::Error::new(e).context("the engine's health reports")),
        None => bail!("the engine ended its event stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn report(action: &str, id: &str, nanos: i64) -> EventMessage {
        EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some(id.to_owned()),
                attributes: None,
            }),
            time_nano: Some(nanos),
            ..EventMessage::default()
        }
    }

    #[test]
    fn only_a_healthy_report_of_this_run_counts() {
        let since = DateTime::from_timestamp(100, 0).expect("in range");
        let s = 1_000_000_000;
        assert_eq!(
            healthy_container(&report(HEALTHY, "c1", 101 * s), since),
            Some("c1".to_owned())
        );
        // Before the first start: the run before's.
        assert_eq!(
            healthy_container(&report(HEALTHY, "c1", 99 * s), since),
            None
        );
        assert_eq!(
            healthy_container(&report("health_status: starting", "c1", 101 * s), since),
            None
        );
        // Seconds only (an old engine): still placed in time.
        let mut old = report(HEALTHY, "c2", 0);
        old.time_nano = None;
        old.time = Some(101);
        assert_eq!(healthy_container(&old, since), Some("c2".to_owned()));
    }
}
