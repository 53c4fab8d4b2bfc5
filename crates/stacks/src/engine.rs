//! The Docker engine, through its API (bollard) on the unix socket or `DOCKER_HOST`.
//!
//! Requests go out *unversioned* (`/containers/json`, not `/v1.53/containers/json`): the engine
//! then answers in its own current API version, so one client works with Docker 20.10 (API
//! 1.41, which refuses newer versions) and with Docker 29 (which refuses anything older than
//! 1.44) without a negotiation round trip or state that an engine upgrade would make stale.
//! Every field read here exists, with the same meaning, from API 1.25 on.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, EventMessage, HealthStatusEnum};
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::ContainerRef;

pub(crate) const PROJECT_LABEL: &str = "com.docker.compose.project";
pub(crate) const SERVICE_LABEL: &str = "com.docker.compose.service";
pub(crate) const DEPENDS_ON_LABEL: &str = "com.docker.compose.depends_on";
/// `compose run` containers are one-offs: not part of the stack's services, and compose's
/// own `stop`/`start` leave them alone, so this crate ignores them too.
const ONE_OFF_LABEL: &str = "com.docker.compose.oneoff";

/// The bound on the quick engine calls (list, inspect, start, logs), which only take long
/// when the engine hangs.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on the ping that tells a hung engine from a slow call: a call that ran out of
/// time is the engine's absence only if the engine does not even answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// bollard's own per-request bound; every call here has its own, tighter one, and a stop's
/// answer comes only after the container's whole grace period.
const CLIENT_TIMEOUT_SECS: u64 = 24 * 3600;

/// Why an engine call did not succeed.
#[derive(Debug)]
pub(crate) enum EngineError {
    /// The engine cannot be reached: no socket, refused, reset.
    Unreachable(String),
    /// The engine answered with an error (its message).
    Api { status: u16, message: String },
    /// No answer within the bound.
    TimedOut(Duration),
    /// Anything else bollard reports (a body that does not parse, ...).
    Other(String),
}

impl EngineError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(detail) => f.write_str(detail),
            Self::Api { status, message } => write!(f, "the engine answered {status}: {message}"),
            Self::TimedOut(limit) => write!(f, "no answer within {}s", limit.as_secs()),
            Self::Other(detail) => f.write_str(detail),
        }
    }
}

pub(crate) fn classify(host: &str, err: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    match err {
        B::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Api {
            status: status_code,
            message,
        },
        B::SocketNotFoundError(path) => {
            EngineError::Unreachable(format!("{host}: no socket at {path}"))
        }
        B::HyperLegacyError { .. } | B::HyperResponseError { .. } | B::IOError { .. } => {
            EngineError::Unreachable(format!("{host}: {}", error_chain(&err)))
        }
        B::RequestTimeoutError => EngineError::TimedOut(Duration::from_secs(CLIENT_TIMEOUT_SECS)),
        other => EngineError::Other(error_chain(&other)),
    }
}

/// An error and its sources on one line: hyper's own messages ("client error (Connect)")
/// say nothing without the OS error beneath them.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Drops the `/v1.NN` prefix of an engine request's path (`/v1.53/containers/json` becomes
/// `/containers/json`), so that the engine answers in its own API version: see the module's
/// comment. Public (as [`crate::unversioned`]) for other clients of the same engine that must
/// speak to old and new engines alike, such as the benchmark's engine-alone floor: given to
/// bollard's `Docker::with_request_modifier`, it makes a client of any bollard version send
/// what this crate sends. Generic over the body, so that no engine client's type is part of
/// this crate's API.
pub fn unversioned<B>(mut request: http::Request<B>) -> http::Request<B> {
    let uri = request.uri();
    if let Some(pq) = uri.path_and_query() {
        let path = pq.as_str();
        let rest = path
            .strip_prefix("/v")
            .and_then(|r| r.find('/').map(|slash| &r[slash..]))
            .filter(|_| path[2..].starts_with(|c: char| c.is_ascii_digit()));
        if let Some(rest) = rest {
            let mut parts = uri.clone().into_parts();
            if let Ok(new_pq) = rest.parse() {
                parts.path_and_query = Some(new_pq);
                if let Ok(new_uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = new_uri;
                }
            }
        }
    }
    request
}

/// The prefix of the labels of an app's quiesce policy (`felhom.quiesce`, ...): only these are
/// kept from a listing.
const POLICY_LABEL_PREFIX: &str = "felhom.";

/// A running container of a project, as the listing of the running app stacks needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunningMember {
    pub(crate) container: ContainerRef,
    /// When it was created (seconds since the epoch; 0 when unknown).
    pub(crate) created: i64,
    /// Its `felhom.*` labels (its own and its image's).
    pub(crate) labels: BTreeMap<String, String>,
}

/// One container of a project, as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) id: String,
    /// Without the leading `/`.
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) running: bool,
}

impl Listed {
    pub(crate) fn to_ref(&self) -> ContainerRef {
        ContainerRef {
            id: self.id.clone(),
            name: self.name.clone(),
            service: self.service.clone(),
        }
    }
}

/// What an inspect tells about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inspected {
    pub(crate) id: String,
    /// Without the leading `/`.
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) state: State,
    /// Its health now; `None` when it has no health status (none yet, or no check).
    pub(crate) health: Option<Health>,
    /// Whether it has a health check (its own or its image's).
    pub(crate) has_healthcheck: bool,
    /// Its own `StopTimeout` as declared (compose's `stop_grace_period`; negative: wait for
    /// ever); `None` when it declares none.
    pub(crate) stop_timeout: Option<i64>,
    /// Its own `StopSignal`, if it declares one (else the engine sends SIGTERM).
    pub(crate) stop_signal: Option<String>,
    /// `State.OOMKilled`: the kernel killed it for memory.
    pub(crate) oom_killed: bool,
    /// `com.docker.compose.depends_on`, `None` when the label is absent (compose v1).
    pub(crate) depends_on: Option<String>,
    /// `HostConfig.NetworkMode`, e.g. `container:<id>`.
    pub(crate) network_mode: String,
    /// `HostConfig.Links`, e.g. `/app-db-1:/app-web-1/db`.
    pub(crate) links: Vec<String>,
    pub(crate) exit_code: i64,
    /// When its current (or last) run began, in ns since the epoch (the engine's clock); 0
    /// when it never ran.
    pub(crate) started_at: i64,
    /// When its last run ended (ns since the epoch); 0 when it never ended.
    pub(crate) finished_at: i64,
    /// When it was created (ns since the epoch); 0 when unknown.
    pub(crate) created: i64,
}

/// An engine time (RFC 3339 with nanoseconds) in ns since the epoch; 0 for none, for the
/// engine's "never" (`0001-01-01T00:00:00Z`) and for text that does not parse.
fn nanos(text: Option<&str>) -> i64 {
    text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .filter(|ns| *ns > 0)
        .unwrap_or(0)
}

/// ns since the epoch as a time; `None` for 0 (never).
pub(crate) fn time_of(ns: i64) -> Option<DateTime<Utc>> {
    (ns > 0).then(|| DateTime::from_timestamp_nanos(ns))
}

/// A container's state, in the engine's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl State {
    /// From an inspect's `State.Status`; `Created` where it has none.
    pub(crate) fn of(status: Option<bollard::models::ContainerStateStatusEnum>) -> Self {
        use bollard::models::ContainerStateStatusEnum as S;
        match status {
            Some(S::RUNNING) => Self::Running,
            Some(S::PAUSED) => Self::Paused,
            Some(S::RESTARTING) => Self::Restarting,
            Some(S::REMOVING) => Self::Removing,
            Some(S::EXITED) => Self::Exited,
            Some(S::DEAD) => Self::Dead,
            _ => Self::Created,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
        }
    }
}

/// A container's health, for containers that have a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "health: starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }

    /// From an event's action, e.g. `health_status: healthy`.
    pub(crate) fn from_action(action: &str) -> Option<Self> {
        match action.strip_prefix("health_status:")?.trim() {
            "starting" => Some(Self::Starting),
            "healthy" => Some(Self::Healthy),
            "unhealthy" => Some(Self::Unhealthy),
            _ => None,
        }
    }
}

impl Inspected {
    /// A container of `service` as the unit tests need one: exited, no health check, no
    /// grace of its own, depending on nothing.
    #[cfg(test)]
    pub(crate) fn sample(service: &str) -> Self {
        Self {
            id: format!("id-{service}"),
            name: format!("app-{service}-1"),
            service: service.to_owned(),
            state: State::Exited,
            health: None,
            has_healthcheck: false,
            stop_timeout: None,
            stop_signal: None,
            oom_killed: false,
            depends_on: Some(String::new()),
            network_mode: String::new(),
            links: Vec::new(),
            exit_code: 0,
            started_at: 1,
            finished_at: 0,
            created: 1,
        }
    }

    fn from_response(r: ContainerInspectResponse) -> Self {
        let config = r.config.unwrap_or_default();
        let host = r.host_config.unwrap_or_default();
        let state = r.state.unwrap_or_default();
        let mut labels = config.labels.unwrap_or_default();
        let health = match state.health.as_ref().and_then(|h| h.status) {
            Some(HealthStatusEnum::STARTING) => Some(Health::Starting),
            Some(HealthStatusEnum::HEALTHY) => Some(Health::Healthy),
            Some(HealthStatusEnum::UNHEALTHY) => Some(Health::Unhealthy),
            _ => None,
        };
        Self {
            id: r.id.unwrap_or_default(),
            name: r
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            service: labels.remove(SERVICE_LABEL).unwrap_or_default(),
            state: State::of(state.status),
            health,
            has_healthcheck: config
                .healthcheck
                .and_then(|h| h.test)
                .and_then(|test| test.first().cloned())
                .is_some_and(|kind| kind != "NONE"),
            stop_timeout: config.stop_timeout,
            stop_signal: config.stop_signal.filter(|s| !s.is_empty()),
            oom_killed: state.oom_killed.unwrap_or(false),
            depends_on: labels.remove(DEPENDS_ON_LABEL),
            network_mode: host.network_mode.unwrap_or_default(),
            links: host.links.unwrap_or_default(),
            exit_code: state.exit_code.unwrap_or_default(),
            started_at: nanos(state.started_at.as_deref()),
            finished_at: nanos(state.finished_at.as_deref()),
            created: nanos(r.created.as_deref()),
        }
    }

    pub(crate) fn to_ref(&self) -> ContainerRef {
        ContainerRef {
            id: self.id.clone(),
            name: self.name.clone(),
            service: self.service.clone(),
        }
    }

    /// Whether a process of it runs (paused and restarting ones included: they are not down).
    pub(crate) fn is_up(&self) -> bool {
        matches!(
            self.state,
            State::Running | State::Paused | State::Restarting
        )
    }

    /// The status as `docker ps` would word it, for messages.
    pub(crate) fn status(&self) -> String {
        match (self.state, self.health) {
            (State::Exited, _) => format!("Exited ({})", self.exit_code),
            (State::Running, Some(h)) => format!("running ({})", h.as_str()),
            (s, _) => s.as_str().to_owned(),
        }
    }
}

/// A container event of a project: start, die, health changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) id: String,
    pub(crate) action: String,
    /// A `die`'s exit code.
    pub(crate) exit_code: Option<i64>,
    /// When, in ns since the epoch (the engine's clock).
    pub(crate) time: i64,
}

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
            members.sort_by(|a, b| {
                (&a.container.service, &a.container.id)
                    .cmp(&(&b.container.service, &b.container.id))
            });
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
                id,
                name: first_name(summary.names.as_deref()),
                service,
                running: summary.state == Some(S::RUNNING),
            });
        }
        containers.sort_by(|a, b| (&a.service, &a.id).cmp(&(&b.service, &b.id)));
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
    ) -> Result<impl Stream<Item = Result<Event, EngineError>> + Send + Unpin, EngineError> {
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

/// A container's name from a listing (`/app-web-1`), without the leading `/`.
fn first_name(names: Option<&[String]>) -> String {
    names
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_default()
}

fn is_one_off(labels: &HashMap<String, String>) -> bool {
    labels.get(ONE_OFF_LABEL).is_some_and(|v| v == "True")
}

fn event(message: EventMessage) -> Event {
    let actor = message.actor.unwrap_or_default();
    let exit_code = actor
        .attributes
        .as_ref()
        .and_then(|a| a.get("exitCode"))
        .and_then(|code| code.parse().ok());
    Event {
        id: actor.id.unwrap_or_default(),
        action: message.action.unwrap_or_default(),
        exit_code,
        time: message
            .time_nano
            .or(message.time.map(|secs| secs.saturating_mul(1_000_000_000)))
            .unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_after(uri: &str) -> String {
        // Any body will do: the function is not tied to bollard's request type.
        let request = http::Request::builder().uri(uri).body(()).expect("request");
        unversioned(request).uri().to_string()
    }

    #[test]
    fn requests_lose_their_version_prefix_only() {
        assert_eq!(
            path_after("unix://2f7661722f72756e/v1.53/containers/json?all=true"),
            "unix://2f7661722f72756e/containers/json?all=true"
        );
        assert_eq!(
            path_after("http://localhost:2375/v1.41/containers/abc/stop"),
            "http://localhost:2375/containers/abc/stop"
        );
        assert_eq!(
            path_after("http://localhost:2375/version"),
            "http://localhost:2375/version"
        );
        assert_eq!(
            path_after("http://localhost:2375/volumes/x"),
            "http://localhost:2375/volumes/x"
        );
        assert_eq!(
            path_after("http://localhost/volumes/json"),
            "http://localhost/volumes/json"
        );
    }

    #[test]
    fn health_events_parse() {
        assert_eq!(
            Health::from_action("health_status: healthy"),
            Some(Health::Healthy)
        );
        assert_eq!(
            Health::from_action("health_status: unhealthy"),
            Some(Health::Unhealthy)
        );
        assert_eq!(Health::from_action("die"), None);
    }
}
