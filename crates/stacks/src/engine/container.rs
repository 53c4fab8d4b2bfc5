//! What the engine tells of containers — a listing, an inspect, an event — in this crate's
//! plain types: no bollard type leaves the engine module.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerInspectResponse, EventMessage, HealthStatusEnum};
use chrono::{DateTime, Utc};

use super::{DEPENDS_ON_LABEL, PROJECT_LABEL, SERVICE_LABEL};
use crate::ContainerRef;

/// `compose run` containers are one-offs: not part of the stack's services, and compose's
/// own `stop`/`start` leave them alone, so this crate ignores them too.
const ONE_OFF_LABEL: &str = "com.docker.compose.oneoff";

/// The prefix of the labels of an app's quiesce policy (`felhom.quiesce`, ...): only these are
/// kept from a listing.
pub(super) const POLICY_LABEL_PREFIX: &str = "felhom.";

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
    /// Its id, name (without the leading `/`) and service.
    pub(crate) container: ContainerRef,
    pub(crate) running: bool,
}

/// What an inspect tells about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inspected {
    pub(crate) id: String,
    /// Without the leading `/`.
    pub(crate) name: String,
    /// Its `com.docker.compose.project` label, if any.
    pub(crate) project: Option<String>,
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
            project: None,
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

    pub(super) fn from_response(r: ContainerInspectResponse) -> Self {
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
            project: labels.remove(PROJECT_LABEL),
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

/// A container's name from a listing (`/app-web-1`), without the leading `/`.
pub(super) fn first_name(names: Option<&[String]>) -> String {
    names
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_default()
}

pub(super) fn is_one_off(labels: &HashMap<String, String>) -> bool {
    labels.get(ONE_OFF_LABEL).is_some_and(|v| v == "True")
}

pub(super) fn event(message: EventMessage) -> Event {
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
