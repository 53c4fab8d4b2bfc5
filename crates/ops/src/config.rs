//! The configuration file (SPEC §5): TOML, every key overridable as `FELHOM_<SECTION>__<KEY>`.
//! Parsed once, into the libraries' own types (a `Pin`, a `ComposeChoice`, a socket
//! address); the section defaults are the libraries' defaults. Every error names the key and
//! the file (and the line, for the file) and shows no secret (`config/file.rs`).
//!
//! `[agent]` is judged apart ([`AgentSetting`]): a daemon whose agent settings are unusable
//! still recovers markers, retries stranded stacks and serves its metrics; the commands that
//! need the agent refuse it ([`AgentSetting::usable`]).

use felhom_quiesce::{CycleConfig, MIN_CYCLE_GAP};
use felhom_stacks::StacksConfig;
use figment::providers::{Env, Serialized};
use figment::Figment;
use file::TomlFile;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod agent;
mod sections;

pub use agent::{AgentSection, AgentSetting, TokenSource, CREDENTIAL};
pub use sections::{Listen, QuiesceSection, StacksSection, StatusSection};

/// Why the configuration cannot be used. Every message names the key (and, for the file, the
/// file and the line) and shows no secret, whatever is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file does not exist.
    #[error("configuration file {} does not exist", path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file, or a value in it or in the environment, is not accepted: what and where.
    #[error("{0}")]
    Invalid(String),
    /// The agent client refused a setting of `[agent]`; `key` names it, the source says why.
    #[error("{key}")]
    Agent {
        /// The setting (`agent.url`, `the agent's token (from agent.token_file …)`, ...).
        key: String,
        /// What the client said of it.
        #[source]
        source: felhom_agentapi::ConfigError,
    },
}

/// The variable that holds the agent's token (for tests: docs/configuration.md says why not in
/// a unit). It is read apart, as the string it is: figment reads a value that looks like a
/// number (`12345678`) as one.
const TOKEN_VAR: &str = "FELHOM_AGENT__TOKEN";

/// `FELHOM_` variables of the command line itself (`--config`, `--log-format`, see `--help`):
/// not config keys.
const NOT_KEYS: [&str; 2] = ["config", "log_format"];

/// The longest duration any key accepts. Anything longer is a typo (`"300000000000y"`), and
/// would overflow the clock arithmetic of the cycle.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// The default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/felhom/controller.toml";

/// The whole configuration, from the file and the environment.
#[derive(Debug)]
pub struct Config {
    /// `[agent]`: absent (the guest is not provisioned, the loop stays off), usable, or not.
    pub agent: AgentSetting,
    /// `[stacks]`.
    pub stacks: StacksSection,
    /// `[quiesce]`.
    pub quiesce: QuiesceSection,
    /// `[status]`.
    pub status: StatusSection,
    /// `[notify]`; absent: no notifications. Checked by `felhom-notify` (its errors name the
    /// key).
    pub notify: Option<felhom_notify::NotifyConfig>,
}

/// The file's sections as figment reads them; `[agent]` is only skipped here (it is read on
/// its own, see [`AgentOnly`]), so that its errors cannot make the rest unusable.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    #[allow(dead_code)] // read by `AgentOnly`
    agent: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    stacks: StacksSection,
    #[serde(default)]
    quiesce: QuiesceSection,
    #[serde(default)]
    status: StatusSection,
    #[serde(default)]
    notify: Option<felhom_notify::NotifyConfig>,
}

/// `[agent]` alone, read from the same figment: its errors carry the same key paths
/// (`agent.url`) as when it was part of the whole.
#[derive(Deserialize)]
struct AgentOnly {
    #[serde(default)]
    agent: Option<AgentSection>,
}

impl Config {
    /// Reads `path` (default [`DEFAULT_PATH`]) and the `FELHOM_` environment, then validates.
    /// Every error names the key and the file (and the line, for the file); none shows a
    /// secret's value, whatever is wrong (`config/file.rs`). An unusable `[agent]` is no error
    /// here: it is [`AgentSetting::Unusable`].
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = path.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_path_buf);
        // Said plainly: figment's own words for it are an I/O error.
        if !file.exists() {
            return Err(ConfigError::Missing { path: file });
        }
        let toml = TomlFile::read(&file)?;
        let mut figment = Figment::new().merge(&toml).merge(
            Env::prefixed("FELHOM_")
                .ignore(&NOT_KEYS)
                .ignore(&["agent__token"])
                .split("__"),
        );
        if let Some(token) = std::env::var_os(TOKEN_VAR) {
            let token = token
                .into_string()
                .map_err(|_| ConfigError::Invalid(format!("{TOKEN_VAR} is not valid UTF-8")))?;
            // systemd sets INVOCATION_ID for what it runs: a unit's environment is readable by
            // every local user (systemd.exec(5), "Environment=").
            if std::env::var_os("INVOCATION_ID").is_some() {
                tracing::warn!(
                    "the agent token comes from {TOKEN_VAR} in a systemd unit: any local user \
                     can read a unit's environment (`systemctl show -p Environment`); use \
                     agent.token_file or LoadCredential={CREDENTIAL}:<file> instead"
                );
            }
            figment = figment.merge(Serialized::default("agent.token", token));
        }
        let described = |e: figment::Error| ConfigError::Invalid(toml.describe(e));
        let sections: FileConfig = figment.extract().map_err(described)?;
        let agent = match figment.extract::<AgentOnly>() {
            Ok(AgentOnly { agent: None }) => AgentSetting::Absent,
            Ok(AgentOnly { agent: Some(a) }) => AgentSetting::Set(a),
            Err(e) => AgentSetting::Unusable(described(e)),
        };
        let config = Config {
            agent,
            stacks: sections.stacks,
            quiesce: sections.quiesce,
            status: sections.status,
            notify: sections.notify,
        };
        config
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("{e} (in {})", file.display())))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for name in &self.stacks.protected {
            felhom_stacks::validate_name(name).map_err(|e| format!("stacks.protected: {e}"))?;
        }
        if self.stacks.parallelism == 0 {
            return Err("stacks.parallelism = 0: it must be at least 1".to_owned());
        }
        let (s, q) = (&self.stacks, &self.quiesce);
        for (key, d, may_be_zero) in [
            ("stacks.stop_timeout", s.stop_timeout, false),
            ("stacks.start_timeout", s.start_timeout, false),
            ("stacks.settle", s.settle, true),
            ("quiesce.due_poll_interval", q.due_poll_interval, false),
            (
                "quiesce.status_poll_interval",
                q.status_poll_interval,
                false,
            ),
            ("quiesce.max_quiesce", q.max_quiesce, false),
            ("quiesce.min_cycle_interval", q.min_cycle_interval, true),
            ("quiesce.failure_cooldown", q.failure_cooldown, true),
        ] {
            if may_be_zero {
                within_max(key, d)?;
            } else {
                bounded(key, d)?;
            }
        }
        if let Some(addr) = self.status.listen.0 {
            if !addr.ip().is_loopback() && !self.status.allow_remote {
                return Err(format!(
                    "status.listen = \"{addr}\" is not a loopback address: /status and /metrics \
                     have no authentication; set status.allow_remote = true to serve them to \
                     other hosts (docs/configuration.md says what they show), or listen on \
                     127.0.0.1"
                ));
            }
        }
        Ok(())
    }

    /// The protected stacks, as the stacks crate decides them from `stacks.protected`.
    pub fn protected(&self) -> Vec<String> {
        felhom_stacks::protected_stacks(&self.stacks.protected)
    }

    /// The stacks manager's settings.
    pub fn stacks_config(&self) -> StacksConfig {
        StacksConfig {
            root: self.stacks.root.clone(),
            protected: self.protected(),
            compose: self.stacks.compose,
            stop_timeout: self.stacks.stop_timeout,
            start_timeout: self.stacks.start_timeout,
            settle: self.stacks.settle,
        }
    }

    /// The cycle's knobs from `[quiesce]` and `[stacks]`; the caller says who runs it
    /// ([`CycleConfig::for_daemon`], [`CycleConfig::for_command`]).
    pub fn cycle_config(&self) -> CycleConfig {
        let q = &self.quiesce;
        CycleConfig {
            enabled: q.enabled,
            due_poll_interval: q.due_poll_interval,
            status_poll_interval: q.status_poll_interval,
            max_quiesce: q.max_quiesce,
            resume_on_snapshot: q.resume_on_snapshot,
            min_cycle_interval: q.min_cycle_interval,
            failure_cooldown: q.failure_cooldown,
            parallelism: self.stacks.parallelism,
            start_call_timeout: CycleConfig::start_call_timeout_for(
                self.stacks.start_timeout,
                self.stacks.stop_timeout,
                self.stacks.settle,
            ),
            ..CycleConfig::default()
        }
    }

    /// What the file asks for that the controller does otherwise, each naming its key: a gap
    /// between cycles below the floor [`MIN_CYCLE_GAP`] is raised to it. Said by `check` and
    /// at the daemon's start.
    pub fn notes(&self) -> Vec<String> {
        let q = &self.quiesce;
        [
            ("quiesce.min_cycle_interval", q.min_cycle_interval),
            ("quiesce.failure_cooldown", q.failure_cooldown),
        ]
        .into_iter()
        .filter(|(_, d)| *d < MIN_CYCLE_GAP)
        .map(|(key, d)| {
            format!(
                "{key} = {} is below the floor of {} between two cycles: cycles start at least \
                 {} apart",
                humantime::format_duration(d),
                humantime::format_duration(MIN_CYCLE_GAP),
                humantime::format_duration(MIN_CYCLE_GAP)
            )
        })
        .collect()
    }
}

/// `d` is longer than zero and not longer than [`MAX_DURATION`].
fn bounded(key: &str, d: Duration) -> Result<(), String> {
    if d.is_zero() {
        return Err(format!("{key} = 0s: it must be longer than zero"));
    }
    within_max(key, d)
}

fn within_max(key: &str, d: Duration) -> Result<(), String> {
    if d > MAX_DURATION {
        return Err(format!(
            "{key} = {}: longer than the most any duration may be ({})",
            humantime::format_duration(d),
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(())
}

mod file;
#[cfg(test)]
mod keys;
#[cfg(test)]
mod no_secrets;
#[cfg(test)]
mod tests;
