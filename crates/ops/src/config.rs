//! The configuration file (SPEC §5): TOML, every key overridable as `FELHOM_<SECTION>__<KEY>`.
//! Parsed once, into the libraries' own types (a [`Pin`], a [`ComposeChoice`], a socket
//! address); the section defaults are the libraries' defaults. Every error names the key and
//! the file (and the line, for the file) and shows no secret (`config/file.rs`).
//!
//! `[agent]` is judged apart ([`AgentSetting`]): a daemon whose agent settings are unusable
//! still recovers markers, retries stranded stacks and serves its metrics; the commands that
//! need the agent refuse it ([`AgentSetting::usable`]).

use felhom_agentapi::{AgentClient, ClientConfig, Pin, Token};
use felhom_quiesce::{CycleConfig, MIN_CYCLE_GAP};
use felhom_stacks::{ComposeChoice, StacksConfig};
use figment::providers::{Env, Serialized};
use figment::Figment;
use file::TomlFile;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

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

/// `[agent]` as the configuration has it.
#[derive(Debug)]
pub enum AgentSetting {
    /// No `[agent]`: the guest is not provisioned.
    Absent,
    /// A usable `[agent]`.
    Set(AgentSection),
    /// An `[agent]` that cannot be used: why (naming the key, the file and the line).
    Unusable(ConfigError),
}

impl AgentSetting {
    /// The section, `None` when absent; the error when it cannot be used, for a command that
    /// needs the agent or checks the configuration (exit status 2).
    pub fn usable(&self) -> Result<Option<&AgentSection>, &ConfigError> {
        match self {
            AgentSetting::Absent => Ok(None),
            AgentSetting::Set(section) => Ok(Some(section)),
            AgentSetting::Unusable(e) => Err(e),
        }
    }
}

/// `[agent]`, checked as a whole: its keys depend on each other (`token` or `token_file`),
/// and the url is judged before the pin whatever order the file has them in. Its `Debug`
/// shows no secret (the token is a [`Token`]; a URL with user-info, a query or a fragment is
/// not shown).
#[derive(Deserialize)]
#[serde(try_from = "RawAgentSection")]
pub struct AgentSection {
    /// `agent.url`, the agent's base URL (`https://`).
    pub url: String,
    /// Where the token comes from; the token itself only ever as a [`Token`].
    pub token: TokenSource,
    /// `agent.pin_sha256`.
    pub pin_sha256: Pin,
    /// `agent.connect_timeout`.
    pub connect_timeout: Duration,
    /// `agent.request_timeout`.
    pub request_timeout: Duration,
}

impl fmt::Debug for AgentSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = if self.url.contains(['@', '?', '#']) {
            "(not shown: it holds user-info, a query or a fragment)"
        } else {
            self.url.as_str()
        };
        f.debug_struct("AgentSection")
            .field("url", &url)
            .field("token", &self.token)
            .field("pin_sha256", &self.pin_sha256)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The systemd credential that holds the agent's token: `LoadCredential=agent-token:<file>`
/// in the unit, read from `$CREDENTIALS_DIRECTORY/agent-token`.
pub const CREDENTIAL: &str = "agent-token";

/// Where the agent's token comes from (docs/configuration.md, "The agent's token"). Its
/// `Debug` shows no secret: the token itself is held only as a [`Token`].
#[derive(Debug)]
pub enum TokenSource {
    /// `agent.token` or `FELHOM_AGENT__TOKEN`: the token itself.
    Inline(Token),
    /// `agent.token_file`: a file read when the client is built.
    File(PathBuf),
    /// The systemd credential [`CREDENTIAL`], which wins over the file's keys: the unit was
    /// told to use it.
    Credential(PathBuf),
}

impl TokenSource {
    /// The token. A file's error names the file, never its content.
    pub fn load(&self) -> Result<Token, ConfigError> {
        match self {
            TokenSource::Inline(token) => Ok(token.clone()),
            TokenSource::File(path) | TokenSource::Credential(path) => Token::from_file(path)
                .map_err(|source| ConfigError::Agent {
                    key: format!("the agent's token (from {self})"),
                    source,
                }),
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Inline(_) => f.write_str("agent.token"),
            TokenSource::File(path) => write!(f, "agent.token_file {}", path.display()),
            TokenSource::Credential(path) => {
                write!(
                    f,
                    "the systemd credential {CREDENTIAL} ({})",
                    path.display()
                )
            }
        }
    }
}

/// `$CREDENTIALS_DIRECTORY/agent-token`, when systemd handed the process that credential.
fn credential() -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let path = Path::new(&dir).join(CREDENTIAL);
    path.is_file().then_some(path)
}

/// `[agent]` as written, before its values are checked and parsed into [`AgentSection`]. No
/// `Debug`: it holds the token as text, for as long as the conversion takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentSection {
    url: String,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    token: Option<String>,
    pin_sha256: String,
    #[serde(default = "connect_timeout", with = "humantime_serde")]
    connect_timeout: Duration,
    #[serde(default = "request_timeout", with = "humantime_serde")]
    request_timeout: Duration,
}

impl TryFrom<RawAgentSection> for AgentSection {
    type Error = String;

    fn try_from(raw: RawAgentSection) -> Result<Self, String> {
        // Not shown: a token pasted into the wrong key would be, and a URL may hold a password.
        if !raw.url.starts_with("https://") {
            return Err("agent.url must start with https:// (the value is not shown)".to_owned());
        }
        if raw.token.is_some() && raw.token_file.is_some() {
            return Err("set agent.token or agent.token_file, not both".to_owned());
        }
        // A token pasted into `token_file` would be shown by any error about the file; a
        // relative path would also depend on the working directory (`/` under systemd).
        if raw.token_file.as_ref().is_some_and(|f| !f.is_absolute()) {
            return Err(
                "agent.token_file must be an absolute path (the value is not shown)".to_owned(),
            );
        }
        let token = match (credential(), raw.token, raw.token_file) {
            (Some(path), _, _) => TokenSource::Credential(path),
            (None, Some(token), _) => TokenSource::Inline(Token::new(token)),
            (None, None, Some(file)) => TokenSource::File(file),
            (None, None, None) => {
                return Err(format!(
                    "set agent.token_file (or give the unit the credential {CREDENTIAL}, \
                     or set agent.token / FELHOM_AGENT__TOKEN)"
                ))
            }
        };
        let pin_sha256 = raw
            .pin_sha256
            .parse()
            .map_err(|e| format!("agent.pin_sha256: {e}"))?;
        for (key, d) in [
            ("agent.connect_timeout", raw.connect_timeout),
            ("agent.request_timeout", raw.request_timeout),
        ] {
            bounded(key, d)?;
        }
        Ok(AgentSection {
            url: raw.url,
            token,
            pin_sha256,
            connect_timeout: raw.connect_timeout,
            request_timeout: raw.request_timeout,
        })
    }
}

impl AgentSection {
    /// The agent client these settings describe: the token read (from its file or
    /// credential), the URL judged. An error names the key to fix.
    pub fn client(&self) -> Result<AgentClient, ConfigError> {
        let token = self.token.load()?;
        tracing::debug!("the agent's token: from {}", self.token);
        AgentClient::new(ClientConfig {
            url: self.url.clone(),
            token,
            pin: self.pin_sha256,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        })
        .map_err(|e| self.refused(e))
    }

    /// What the agent client refused, named by its config key (the client names the setting,
    /// not this file's key for it).
    fn refused(&self, source: felhom_agentapi::ConfigError) -> ConfigError {
        use felhom_agentapi::ConfigError as Refused;
        let key = match &source {
            Refused::InvalidUrl { .. } if self.url.contains('@') => {
                "agent.url (the token goes in agent.token or agent.token_file)".to_owned()
            }
            Refused::InvalidUrl { .. } => "agent.url".to_owned(),
            Refused::InvalidPin { .. } => "agent.pin_sha256".to_owned(),
            Refused::InvalidToken { .. } | Refused::TokenFile { .. } => {
                format!("the agent's token (from {})", self.token)
            }
            _ => "agent".to_owned(),
        };
        ConfigError::Agent { key, source }
    }
}

/// `[stacks]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StacksSection {
    /// `stacks.root`: where the deployed stacks' directories are.
    pub root: PathBuf,
    /// `stacks.protected`, as written (see [`Config::protected`]).
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

fn connect_timeout() -> Duration {
    ClientConfig::DEFAULT_CONNECT_TIMEOUT
}
fn request_timeout() -> Duration {
    ClientConfig::DEFAULT_REQUEST_TIMEOUT
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
            ..StacksConfig::default()
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
