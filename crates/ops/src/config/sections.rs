//! `[stacks]`, `[quiesce]` and `[status]`: plain values, each section's defaults the
//! libraries' defaults.

use felhom_quiesce::CycleConfig;
use felhom_stacks::{ComposeChoice, StacksConfig};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// `[stacks]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StacksSection {
    /// `stacks.root`: where the deployed stacks' directories are.
    pub root: PathBuf,
    /// `stacks.protected`, as written (see [`super::Config::protected`]).
    pub protected: Vec<String>,
    /// `stacks.compose`.
    #[serde(deserialize_with = "parsed")]
    pub compose: ComposeChoice,
    /// `stacks.stop_timeout`.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// `stacks.start_timeout`.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// `stacks.parallelism`.
    pub parallelism: usize,
    /// `stacks.settle`: how long after its start a container is watched; a death in that
    /// window is a failed start.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
}

impl Default for StacksSection {
    fn default() -> Self {
        let stacks = StacksConfig::default();
        StacksSection {
            root: stacks.root,
            protected: stacks.protected,
            compose: stacks.compose,
            stop_timeout: stacks.stop_timeout,
            start_timeout: stacks.start_timeout,
            parallelism: CycleConfig::default().parallelism,
            settle: stacks.settle,
        }
    }
}

/// `[quiesce]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuiesceSection {
    /// `quiesce.enabled`.
    pub enabled: bool,
    /// `quiesce.state_dir`: the marker, the lock, the history, the stranded stacks.
    pub state_dir: PathBuf,
    /// `quiesce.due_poll_interval`.
    #[serde(with = "humantime_serde")]
    pub due_poll_interval: Duration,
    /// `quiesce.status_poll_interval`.
    #[serde(with = "humantime_serde")]
    pub status_poll_interval: Duration,
    /// `quiesce.max_quiesce`.
    #[serde(with = "humantime_serde")]
    pub max_quiesce: Duration,
    /// `quiesce.resume_on_snapshot`.
    pub resume_on_snapshot: bool,
    /// `quiesce.min_cycle_interval`.
    #[serde(with = "humantime_serde")]
    pub min_cycle_interval: Duration,
    /// `quiesce.failure_cooldown`.
    #[serde(with = "humantime_serde")]
    pub failure_cooldown: Duration,
}

impl Default for QuiesceSection {
    fn default() -> Self {
        let cycle = CycleConfig::default();
        QuiesceSection {
            enabled: cycle.enabled,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            due_poll_interval: cycle.due_poll_interval,
            status_poll_interval: cycle.status_poll_interval,
            max_quiesce: cycle.max_quiesce,
            resume_on_snapshot: cycle.resume_on_snapshot,
            min_cycle_interval: cycle.min_cycle_interval,
            failure_cooldown: cycle.failure_cooldown,
        }
    }
}

/// Where the marker, the lock and the history live (SPEC §5).
const DEFAULT_STATE_DIR: &str = "/var/lib/felhom-controller";

/// `[status]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusSection {
    /// `status.listen`; `""` turns the endpoint off.
    #[serde(deserialize_with = "parsed")]
    pub listen: Listen,
    /// `status.allow_remote`: whether `listen` may be an address other hosts reach: the
    /// endpoint has no authentication, so that takes a decision of its own.
    pub allow_remote: bool,
}

impl Default for StatusSection {
    fn default() -> Self {
        StatusSection {
            listen: Listen(Some(SocketAddr::from(([127, 0, 0, 1], 9787)))),
            allow_remote: false,
        }
    }
}

/// `status.listen`: the address of the status endpoint, or `None` when it is off (`""`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl FromStr for Listen {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Listen(None));
        }
        s.parse().map(|addr| Listen(Some(addr)))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => Ok(()),
        }
    }
}

/// Compares with the way the file spells it (`""` for off).
impl PartialEq<&str> for Listen {
    fn eq(&self, other: &&str) -> bool {
        other.parse::<Listen>().is_ok_and(|listen| listen == *self)
    }
}

/// A value read as a string and parsed by its own type, whose error then names what is wrong;
/// figment adds the key and the file.
fn parsed<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}
