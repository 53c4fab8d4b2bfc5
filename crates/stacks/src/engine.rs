//! The Docker engine, through its API (bollard) on the unix socket or `DOCKER_HOST`.
//!
//! Requests go out *unversioned* (`/containers/json`, not `/v1.53/containers/json`): the engine
//! then answers in its own current API version, so one client works with Docker 20.10 (API
//! 1.41, which refuses newer versions) and with Docker 29 (which refuses anything older than
//! 1.44) without a negotiation round trip or state that an engine upgrade would make stale.
//! Every field read here exists, with the same meaning, from API 1.25 on.

mod container;
mod error;
mod version;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::ContainerRef;

pub(crate) use container::{time_of, Event, Health, Inspected, Listed, RunningMember, State};
pub(crate) use error::{classify, EngineError};
pub use version::unversioned;

use container::{event, first_name, is_one_off, POLICY_LABEL_PREFIX};

pub(crate) const PROJECT_LABEL: &str = "com.docker.compose.project";
pub(crate) const SERVICE_LABEL: &str = "com.docker.compose.service";
pub(crate) const DEPENDS_ON_LABEL: &str = "com.docker.compose.depends_on";

/// The bound on the quick engine calls (list, inspect, start, logs), which only take long
/// when the engine hangs.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on the ping that tells a hung engine from a slow call: a call that ran out of
/// time is the engine's absence only if the engine does not even answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// bollard's own per-request bound; every call here has its own, tighter one, and a stop's
/// answer comes only after the container's whole grace period.
const CLIENT_TIMEOUT_SECS: u64 = 24 * 3600;

/// The engine client, built on first use: the socket may not exist yet (an engine not up
/// after a boot), and that is an `Unreachable` of the call, not of the construction.
#[derive(Debug)]
pub(crate) struct Engine {
    host: String,
    client: Mutex<Option<Docker>>,
    /// The bound on the quick calls ([`CALL_TIMEOUT`]).
    pub(crate) call_timeout: Duration,
}

impl Engine {
    /// `host`: the engine's address; `None` for `DOCKER_HOST` or the default socket.
    pub(crate) fn new(host: Option<String>) -> Self {
        let host = host
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        Self {
            host,
            client: Mutex::new(None),
            call_timeout: CALL_TIMEOUT,
        }
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn set_call_timeout(&mut self, limit: Duration) {
        self.call_timeout = limit;
    }

    /// Whether the engine answers at all: a ping, bounded. An answer with an error status is
    /// an answer.
    pub(crate) async fn answers(&self) -> bool {
        let Ok(docker) = self.client() else {
            return false;
        };
        let limit = self.call_timeout.min(PING_TIMEOUT);
        match tokio::time::timeout(limit, docker.ping()).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => matches!(e, bollard::errors::Error::DockerResponseServerError { .. }),
            Err(_) => false,
        }
    }

    /// A call that got no answer within `limit`: the engine is away if it answers nothing
    /// at all, else only this call is slow (a failure of what it was for).
    async fn silent(&self, limit: Duration) -> EngineError {
        if self.answers().await {
            EngineError::TimedOut(limit)
        } else {
            EngineError::Unreachable(format!(
                "{}: no answer within {}s, and none to a ping",
                self.host,
                limit.as_secs()
            ))
        }
    }

    pub(crate) fn client(&self) -> Result<Docker, EngineError> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let docker = Docker::connect_with_host(&self.host)
            .map_err(|e| classify(&self.host, e))?
            .with_timeout(Duration::from_secs(CLIENT_TIMEOUT_SECS))
            .with_request_modifier(unversioned);
        *slot = Some(docker.clone());
        Ok(docker)
    }

    pub(crate) async fn bounded<T>(
        &self,
        limit: Duration,
        call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(|e| classify(&self.host, e)),
            Err(_) => Err(self.silent(limit).await),
        }
    }

    async fn list(
        &self,
        filters: HashMap<&str, Vec<String>>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, EngineError> {
        let docker = self.client()?;
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.bounded(self.call_timeout, docker.list_containers(Some(options)))
            .await
    }

    /// The running containers, by project (one-offs left out), each project's sorted by
    /// service, then id, each with its `felhom.*` labels.
    pub(crate) async fn running_by_project(
        &self,
    ) -> Result<BTreeMap<String, Vec<RunningMember>>, EngineError> {
        let filters = HashMap::from([
            ("label", vec![PROJECT_LABEL.to_owned()]),
            ("status", vec!["running".to_owned()]),
        ]);
        let mut projects: BTreeMap<String, Vec<RunningMember>> = BTreeMap::new();
        for summary in self.list(filters).await? {
            let mut labels = summary.labels.unwrap_or_default();
            if is_one_off(&labels) {
                continue;
            }
            if let (Some(project), Some(service), Some(id)) = (
                labels.remove(PROJECT_LABEL),
                labels.remove(SERVICE_LABEL),
                summary.id,
            ) {
                let name = first_name(summary.names.as_deref());
                labels.retain(|key, _| key.starts_with(POLICY_LABEL_PREFIX));
                projects.entry(project).or_default().push(RunningMember {
                    container: ContainerRef { service, id, name },
                    created: summary.created.unwrap_or_default(),
                    labels: labels.into_iter().collect(),
                });
            }
        }
        for members in projects.values_mut() {
            members.sort_by(|a, b| by_service_then_id(&a.container, &b.container));
            members.dedup_by(|a, b| a.container.id == b.container.id);
        }
        Ok(projects)
    }

    /// Every container of the project (orphans included, one-offs left out).
    pub(crate) async fn project(&self, project: &str) -> Result<Vec<Listed>, EngineError> {
        use bollard::models::ContainerSummaryStateEnum as S;
        let filters = HashMap::from([("label", vec![format!("{PROJECT_LABEL}={project}")])]);
        let mut containers = Vec::new();
        for summary in self.list(filters).await? {
            let mut labels = summary.labels.unwrap_or_default();
            if is_one_off(&labels) {
                continue;
            }
            let (Some(id), Some(service)) = (summary.id, labels.remove(SERVICE_LABEL)) else {
                continue;
            };
            containers.push(Listed {
                container: ContainerRef {
                    id,
                    name: first_name(summary.names.as_deref()),
                    service,
                },
                running: summary.state == Some(S::RUNNING),
            });
        }
        containers.sort_by(|a, b| by_service_then_id(&a.container, &b.container));
        Ok(containers)
    }

    pub(crate) async fn inspect(&self, id: &str) -> Result<Inspected, EngineError> {
        let docker = self.client()?;
        let response = self
            .bounded(self.call_timeout, docker.inspect_container(id, None))
            .await?;
        Ok(Inspected::from_response(response))
    }

    /// Stops a container: with its own grace period where it declares one (`grace: None`,
    /// the engine then uses the container's `StopTimeout` and `StopSignal`), else with
    /// `grace`. The call is bounded by `wait` (the grace plus a margin, so that the engine's
    /// own kill at the end of the grace always comes first); `None` for a container that asks
    /// to be waited for without a bound.
    pub(crate) async fn stop(
        &self,
        id: &str,
        grace: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<(), EngineError> {
        let docker = self.client()?;
        let mut options = StopContainerOptionsBuilder::default();
        if let Some(secs) = grace {
            options = options.t(i32::try_from(secs).unwrap_or(i32::MAX));
        }
        let call = docker.stop_container(id, Some(options.build()));
        match wait {
            Some(wait) => self.bounded(wait, call).await,
            None => call.await.map_err(|e| classify(&self.host, e)),
        }
    }

    pub(crate) async fn start(&self, id: &str) -> Result<(), EngineError> {
        let docker = self.client()?;
        self.bounded(self.call_timeout, docker.start_container(id, None))
            .await
    }

    /// The project's container events: `start`, `die` and health changes, from now on, or
    /// from `since` (ns since the epoch) on when resuming a stream that was cut (the engine
    /// replays what it still holds of that time).
    pub(crate) fn events(
        &self,
        project: &str,
        since: Option<i64>,
    ) -> Result<BoxStream<'static, Result<Event, EngineError>>, EngineError> {
        let docker = self.client()?;
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("label", vec![format!("{PROJECT_LABEL}={project}")]),
            (
                "event",
                vec![
                    "start".to_owned(),
                    "die".to_owned(),
                    "health_status".to_owned(),
                ],
            ),
        ]);
        let mut options = EventsOptionsBuilder::default().filters(&filters);
        let since = since.map(|ns| {
            format!(
                "{}.{:09}",
                ns.div_euclid(1_000_000_000),
                ns.rem_euclid(1_000_000_000)
            )
        });
        if let Some(since) = &since {
            options = options.since(since);
        }
        let options = options.build();
        let host = self.host.clone();
        Ok(Box::pin(
            docker
                .events(Some(options))
                .map_err(move |e| classify(&host, e))
                .map(|item| item.map(event)),
        ))
    }

    /// The last `lines` lines a container logged, both streams in their order.
    pub(crate) async fn logs_tail(&self, id: &str, lines: usize) -> Result<String, EngineError> {
        let docker = self.client()?;
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let collect = docker
            .logs(id, Some(options))
            .map_ok(|chunk| chunk.to_string())
            .try_collect::<Vec<String>>();
        let chunks = self.bounded(self.call_timeout, collect).await?;
        Ok(chunks.concat().trim_end().to_owned())
    }
}

/// The order of a project's containers in every listing: by service, then by id.
fn by_service_then_id(a: &ContainerRef, b: &ContainerRef) -> std::cmp::Ordering {
    (&a.service, &a.id).cmp(&(&b.service, &b.id))
}
