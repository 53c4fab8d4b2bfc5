//! `[agent]`: read apart from the rest of the file ([`AgentSetting`]), its keys checked as a
//! whole, its token only ever held as a [`Token`].

use super::{bounded, ConfigError};
use felhom_agentapi::{AgentClient, ClientConfig, Pin, Token};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

fn connect_timeout() -> Duration {
    ClientConfig::DEFAULT_CONNECT_TIMEOUT
}
fn request_timeout() -> Duration {
    ClientConfig::DEFAULT_REQUEST_TIMEOUT
}
