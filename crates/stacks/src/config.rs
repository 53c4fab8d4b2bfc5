//! The `[stacks]` configuration (SPEC §5).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::StacksError;

/// The stacks that are protected unless configured otherwise: the reverse proxy, the tunnel and
/// the controller itself.
pub const DEFAULT_PROTECTED: [&str; 3] = ["traefik", "cloudflared", "felhom-controller"];

/// The stacks that are protected when the configuration names `configured`: [`DEFAULT_PROTECTED`]
/// first, whatever the configuration says (a misconfiguration must never make the controller
/// stop its own infrastructure), then the configured ones, each name once. The one place that
/// decides this: `EngineStacks::new` (feature `engine`) protects exactly these, and the binary
/// prints them.
pub fn protected_stacks(configured: &[String]) -> Vec<String> {
    let mut all: Vec<String> = DEFAULT_PROTECTED.iter().map(|s| (*s).to_owned()).collect();
    for name in configured {
        if !all.contains(name) {
            all.push(name.clone());
        }
    }
    all
}

/// Which compose tool brings back vanished containers and reads the dependencies of stacks
/// deployed by compose v1 (`stacks.compose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComposeChoice {
    /// `docker compose` where it works, else `docker-compose`; detected once.
    #[default]
    Auto,
    /// `docker compose`, the v2 CLI plugin.
    V2,
    /// `docker-compose`, the v1 Python tool.
    V1,
}

impl FromStr for ComposeChoice {
    type Err = StacksError;

    /// Accepts exactly the values of SPEC §5: `auto`, `docker compose`, `docker-compose`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "auto" => Ok(Self::Auto),
            "docker compose" => Ok(Self::V2),
            "docker-compose" => Ok(Self::V1),
            _ => Err(StacksError::UnknownCompose(value.to_owned())),
        }
    }
}

impl fmt::Display for ComposeChoice {
    /// The configuration value, so that `to_string().parse()` round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::V2 => "docker compose",
            Self::V1 => "docker-compose",
        })
    }
}

/// How `EngineStacks` (feature `engine`) finds and handles the stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StacksConfig {
    /// The directory whose subdirectories are the stacks (`/opt/felhom/stacks`).
    pub root: PathBuf,
    /// Stacks that are never listed nor stopped; [`DEFAULT_PROTECTED`] are added to them
    /// (see [`protected_stacks`]).
    pub protected: Vec<String>,
    /// Which compose tool to use where the engine alone cannot do it.
    pub compose: ComposeChoice,
    /// The grace period of containers that declare none (30s); a container's own
    /// `stop_grace_period` always wins.
    pub stop_timeout: Duration,
    /// How long a start may take until its services run and are healthy (120s).
    pub start_timeout: Duration,
    /// How long a service without a health check must be seen running before its start
    /// counts (200ms): an app that exits within it is a failed start. Longer catches apps
    /// that die later, but holds a start's parallelism slot that much longer (see
    /// docs/performance.md); a loaded engine may report an exited container as running for
    /// a moment.
    pub start_settle: Duration,
}

impl Default for StacksConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/opt/felhom/stacks"),
            protected: DEFAULT_PROTECTED.iter().map(|s| (*s).to_owned()).collect(),
            compose: ComposeChoice::Auto,
            stop_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(120),
            start_settle: Duration::from_millis(200),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_choice_accepts_exactly_the_spec_values() {
        for (text, choice) in [
            ("auto", ComposeChoice::Auto),
            ("docker compose", ComposeChoice::V2),
            ("docker-compose", ComposeChoice::V1),
        ] {
            assert_eq!(text.parse::<ComposeChoice>().expect("spec value"), choice);
            assert_eq!(choice.to_string(), text);
        }
        for bad in [
            "",
            "Auto",
            "v2",
            "docker  compose",
            " docker-compose",
            "podman-compose",
        ] {
            let err = bad.parse::<ComposeChoice>().expect_err("not a spec value");
            assert!(
                matches!(&err, StacksError::UnknownCompose(v) if v == bad),
                "{err}"
            );
            assert!(err.to_string().contains("\"docker compose\""), "{err}");
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = StacksConfig::default();
        assert_eq!(config.root, PathBuf::from("/opt/felhom/stacks"));
        assert_eq!(
            config.protected,
            ["traefik", "cloudflared", "felhom-controller"]
        );
        assert_eq!(config.compose, ComposeChoice::Auto);
        assert_eq!(config.stop_timeout, Duration::from_secs(30));
        assert_eq!(config.start_timeout, Duration::from_secs(120));
    }
}
