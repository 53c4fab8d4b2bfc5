//! The configuration file (SPEC §5): TOML, every key overridable as `FELHOM_<SECTION>__<KEY>`.
//! Parsed once, into the libraries' own types (a [`Pin`], a [`ComposeChoice`], a socket
//! address); the section defaults are the libraries' defaults.

use anyhow::{bail, Context, Result};
use felhom_agentapi::{ClientConfig, Pin, Token};
use felhom_quiesce::CycleConfig;
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

/// The variable that holds the agent's token (for tests: docs/configuration.md says why not in
/// a unit). It is read apart, as the string it is: figment reads a value that looks like a
/// number (`12345678`) as one.
const TOKEN_VAR: &str = "FELHOM_AGENT__TOKEN";

/// `FELHOM_` variables of the command line itself (`--config`, `--log-format`, see `--help`):
/// not config keys.
const NOT_KEYS: [&str; 2] = ["config", "log_format"];

/// The longest duration any key accepts. Anything longer is a typo (`"300000000000y"`), and
/// would overflow the clock arithmetic of the cycle.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// The default location of the configuration file.
pub(crate) const DEFAULT_PATH: &str = "/etc/felhom/controller.toml";

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Absent: the guest is not provisioned, the loop stays off.
    #[serde(default)]
    pub agent: Option<AgentSection>,
    #[serde(default)]
    pub stacks: StacksSection,
    #[serde(default)]
    pub quiesce: QuiesceSection,
    #[serde(default)]
    pub status: StatusSection,
    /// Absent: no notifications. Checked by `felhom-notify` (its errors name the key).
    #[serde(default)]
    pub notify: Option<felhom_notify::NotifyConfig>,
}

/// `[agent]`, checked as a whole: its keys depend on each other (`token` or `token_file`),
/// and the url is judged before the pin whatever order the file has them in. Its `Debug`
/// shows no secret (the token is a [`Token`]; a URL with user-info, a query or a fragment is
/// not shown).
#[derive(Deserialize)]
#[serde(try_from = "RawAgentSection")]
pub(crate) struct AgentSection {
    pub url: String,
    /// Where the token comes from; the token itself only ever as a [`Token`].
    pub token: TokenSource,
    pub pin_sha256: Pin,
    pub connect_timeout: Duration,
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
pub(crate) const CREDENTIAL: &str = "agent-token";

/// Where the agent's token comes from (docs/configuration.md, "The agent's token"). Its
/// `Debug` shows no secret: the token itself is held only as a [`Token`].
#[derive(Debug)]
pub(crate) enum TokenSource {
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
    pub(crate) fn load(&self) -> Result<Token> {
        match self {
            TokenSource::Inline(token) => Ok(token.clone()),
            TokenSource::File(path) | TokenSource::Credential(path) => {
                Token::from_file(path).with_context(|| self.to_string())
            }
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
            nonzero(key, d).map_err(|e| e.to_string())?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StacksSection {
    pub root: PathBuf,
    pub protected: Vec<String>,
    #[serde(deserialize_with = "parsed")]
    pub compose: ComposeChoice,
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    pub parallelism: usize,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QuiesceSection {
    pub enabled: bool,
    pub state_dir: PathBuf,
    #[serde(with = "humantime_serde")]
    pub due_poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub status_poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_quiesce: Duration,
    pub resume_on_snapshot: bool,
    #[serde(with = "humantime_serde")]
    pub min_cycle_interval: Duration,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StatusSection {
    /// `""` turns the endpoint off.
    #[serde(deserialize_with = "parsed")]
    pub listen: Listen,
    /// Whether `listen` may be an address other hosts reach: the endpoint has no
    /// authentication, so that takes a decision of its own.
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
pub(crate) struct Listen(pub Option<SocketAddr>);

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
    /// Reads `path` (which must exist when given explicitly) and the `FELHOM_` environment,
    /// then validates. Every error names the key and the file (and the line, for the file);
    /// none shows a secret's value, whatever is wrong (`config/file.rs`).
    pub(crate) fn load(path: Option<&Path>) -> Result<Config> {
        let file = match path {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(DEFAULT_PATH),
        };
        // Said plainly, with what to do: figment's own words for it are an I/O error.
        if !file.exists() {
            bail!(
                "configuration file {} does not exist (the package installs a commented \
                 sample there; or name one with --config or FELHOM_CONFIG)",
                file.display()
            );
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
                .map_err(|_| anyhow::anyhow!("{TOKEN_VAR} is not valid UTF-8"))?;
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
        let config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("{}", toml.describe(e)))?;
        config
            .validate()
            .with_context(|| format!("in {}", file.display()))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        for name in &self.stacks.protected {
            felhom_stacks::validate_name(name)
                .map_err(|e| anyhow::anyhow!("stacks.protected: {e}"))?;
        }
        if self.stacks.parallelism == 0 {
            bail!("stacks.parallelism = 0: it must be at least 1");
        }
        nonzero("stacks.stop_timeout", self.stacks.stop_timeout)?;
        nonzero("stacks.start_timeout", self.stacks.start_timeout)?;
        nonzero("quiesce.due_poll_interval", self.quiesce.due_poll_interval)?;
        nonzero(
            "quiesce.status_poll_interval",
            self.quiesce.status_poll_interval,
        )?;
        nonzero("quiesce.max_quiesce", self.quiesce.max_quiesce)?;
        if let Some(addr) = self.status.listen.0 {
            if !addr.ip().is_loopback() && !self.status.allow_remote {
                bail!(
                    "status.listen = \"{addr}\" is not a loopback address: /status and /metrics \
                     have no authentication; set status.allow_remote = true to serve them to \
                     other hosts (docs/configuration.md says what they show), or listen on \
                     127.0.0.1"
                );
            }
        }
        for (key, d) in self.durations() {
            if d > MAX_DURATION {
                bail!(
                    "{key} = {}: longer than the most any duration may be ({})",
                    humantime::format_duration(d),
                    humantime::format_duration(MAX_DURATION)
                );
            }
        }
        Ok(())
    }

    /// Every duration of the file, with its key.
    fn durations(&self) -> Vec<(&'static str, Duration)> {
        let (s, q) = (&self.stacks, &self.quiesce);
        let mut all = vec![
            ("stacks.stop_timeout", s.stop_timeout),
            ("stacks.start_timeout", s.start_timeout),
            ("stacks.settle", s.settle),
            ("quiesce.due_poll_interval", q.due_poll_interval),
            ("quiesce.status_poll_interval", q.status_poll_interval),
            ("quiesce.max_quiesce", q.max_quiesce),
            ("quiesce.min_cycle_interval", q.min_cycle_interval),
            ("quiesce.failure_cooldown", q.failure_cooldown),
        ];
        if let Some(a) = &self.agent {
            all.push(("agent.connect_timeout", a.connect_timeout));
            all.push(("agent.request_timeout", a.request_timeout));
        }
        all
    }

    /// The protected stacks, as the stacks crate decides them from `stacks.protected`.
    pub(crate) fn protected(&self) -> Vec<String> {
        felhom_stacks::protected_stacks(&self.stacks.protected)
    }
}

fn nonzero(key: &str, d: Duration) -> Result<()> {
    if d.is_zero() {
        bail!("{key} = 0s: it must be longer than zero");
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
