//! The configuration file (SPEC §5): TOML, every key overridable as `FELHOM_<SECTION>__<KEY>`.

use anyhow::{bail, Context, Result};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentSection {
    pub url: String,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token: Option<String>,
    pub pin_sha256: String,
    #[serde(default = "d5s", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "d15s", with = "humantime_serde")]
    pub request_timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StacksSection {
    pub root: PathBuf,
    pub protected: Vec<String>,
    pub compose: String,
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    pub parallelism: usize,
}

impl Default for StacksSection {
    fn default() -> Self {
        StacksSection {
            root: PathBuf::from("/opt/felhom/stacks"),
            protected: felhom_stacks::DEFAULT_PROTECTED
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            compose: "auto".into(),
            stop_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(120),
            parallelism: 4,
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
        QuiesceSection {
            enabled: true,
            state_dir: PathBuf::from("/var/lib/felhom-controller"),
            due_poll_interval: Duration::from_secs(60),
            status_poll_interval: Duration::from_secs(2),
            max_quiesce: Duration::from_secs(30 * 60),
            resume_on_snapshot: true,
            min_cycle_interval: Duration::from_secs(3600),
            failure_cooldown: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StatusSection {
    /// `""` turns the endpoint off.
    pub listen: String,
}

impl Default for StatusSection {
    fn default() -> Self {
        StatusSection {
            listen: "127.0.0.1:9787".into(),
        }
    }
}

fn d5s() -> Duration {
    Duration::from_secs(5)
}
fn d15s() -> Duration {
    Duration::from_secs(15)
}

impl Config {
    /// Reads `path` (which must exist when given explicitly) and the `FELHOM_` environment,
    /// then validates. Every error names the key and the file.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config> {
        let (file, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        if explicit && !file.exists() {
            bail!("configuration file {} does not exist", file.display());
        }
        let figment = Figment::new()
            .merge(Toml::file_exact(&file))
            .merge(Env::prefixed("FELHOM_").split("__"));
        let config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("{}", describe(e, &file)))?;
        config
            .validate()
            .with_context(|| format!("in {}", file.display()))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if let Some(agent) = &self.agent {
            if !agent.url.starts_with("https://") {
                bail!(
                    "agent.url = {:?}: the agent is reached over https:// only",
                    agent.url
                );
            }
            match (&agent.token, &agent.token_file) {
                (None, None) => {
                    bail!("agent: set agent.token_file (or agent.token / FELHOM_AGENT__TOKEN)")
                }
                (Some(_), Some(_)) => bail!("agent: set agent.token or agent.token_file, not both"),
                _ => {}
            }
            agent
                .pin_sha256
                .parse::<felhom_agentapi::Pin>()
                .map_err(|e| anyhow::anyhow!("agent.pin_sha256: {e}"))?;
            nonzero("agent.connect_timeout", agent.connect_timeout)?;
            nonzero("agent.request_timeout", agent.request_timeout)?;
        }
        for name in &self.stacks.protected {
            felhom_stacks::validate_name(name)
                .map_err(|e| anyhow::anyhow!("stacks.protected: {e}"))?;
        }
        self.stacks
            .compose
            .parse::<felhom_stacks::ComposeChoice>()
            .map_err(|e| anyhow::anyhow!("stacks.compose: {e}"))?;
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
        if !self.status.listen.is_empty() {
            self.status
                .listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| anyhow::anyhow!("status.listen = {:?}: {e}", self.status.listen))?;
        }
        Ok(())
    }

    /// The protected stacks: the built-in three are always protected, whatever the file says
    /// (a misconfiguration must never make the controller stop its own infrastructure);
    /// `stacks.protected` adds to them.
    pub(crate) fn protected(&self) -> Vec<String> {
        let mut all: Vec<String> = felhom_stacks::DEFAULT_PROTECTED
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for name in &self.stacks.protected {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
        all
    }
}

fn nonzero(key: &str, d: Duration) -> Result<()> {
    if d.is_zero() {
        bail!("{key} = 0s: it must be longer than zero");
    }
    Ok(())
}

/// figment's errors name the key; add the file when figment did not.
fn describe(e: figment::Error, file: &Path) -> String {
    let mut out = Vec::new();
    for err in e {
        let key = if err.path.is_empty() {
            String::new()
        } else {
            format!(" (key `{}`)", err.path.join("."))
        };
        let source = match &err.metadata {
            Some(m) => match &m.source {
                // figment shows files relative to the working directory; name it in full.
                Some(figment::Source::File(path)) => format!(" in {}", path.display()),
                Some(s) => format!(" in {s}"),
                None => format!(" in {}", m.name),
            },
            None => format!(" in {}", file.display()),
        };
        out.push(format!("{}{key}{source}", err.kind));
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    /// Loads inside figment's `Jail`, which serializes the tests that read the process
    /// environment: one of them sets `FELHOM_*` variables, which must not leak into the others.
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn jailed<T>(f: impl FnOnce() -> T) -> T {
        let mut out = None;
        figment::Jail::expect_with(|_| {
            out = Some(f());
            Ok(())
        });
        out.expect("the jail ran the closure")
    }

    fn load(text: &str) -> Result<Config> {
        let f = file(text);
        jailed(|| Config::load(Some(f.path())))
    }

    const AGENT: &str = r#"
[agent]
url = "https://127.0.0.1:8443"
token = "secret-token"
pin_sha256 = "5F:3A:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd"
"#;

    #[test]
    fn the_spec_example_parses_with_every_key() {
        let text = format!(
            "{AGENT}connect_timeout = \"5s\"\nrequest_timeout = \"15s\"\n{}",
            r#"
[stacks]
root = "/opt/felhom/stacks"
protected = ["traefik", "cloudflared", "felhom-controller"]
compose = "auto"
stop_timeout = "30s"
start_timeout = "120s"
parallelism = 4

[quiesce]
enabled = true
state_dir = "/var/lib/felhom-controller"
due_poll_interval = "60s"
status_poll_interval = "2s"
max_quiesce = "30m"
resume_on_snapshot = true
min_cycle_interval = "1h"
failure_cooldown = "1h"

[status]
listen = "127.0.0.1:9787"
"#
        );
        let c = load(&text).expect("valid");
        assert_eq!(c.quiesce.max_quiesce, Duration::from_secs(1800));
        assert_eq!(c.stacks.parallelism, 4);
        assert_eq!(
            c.agent.as_ref().map(|a| a.request_timeout),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn an_empty_file_means_defaults_and_no_agent() {
        let c = load("").expect("valid");
        assert!(c.agent.is_none());
        assert_eq!(c.stacks.root, PathBuf::from("/opt/felhom/stacks"));
        assert_eq!(c.quiesce.min_cycle_interval, Duration::from_secs(3600));
        assert_eq!(c.status.listen, "127.0.0.1:9787");
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_file() {
        let f = file("[quiesce]\nmax_quiesce = \"soon\"\n");
        let err = jailed(|| Config::load(Some(f.path())))
            .expect_err("bad duration")
            .to_string();
        assert!(err.contains("quiesce.max_quiesce"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load("[quiesce]\nmax_quiesse = \"10m\"\n")
            .expect_err("typo")
            .to_string();
        assert!(err.contains("max_quiesse"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused_with_their_key() {
        for (text, key) in [
            ("[stacks]\nparallelism = 0\n", "stacks.parallelism"),
            ("[stacks]\ncompose = \"podman\"\n", "stacks.compose"),
            ("[stacks]\nprotected = [\"Bad Name\"]\n", "stacks.protected"),
            ("[quiesce]\nmax_quiesce = \"0s\"\n", "quiesce.max_quiesce"),
            ("[status]\nlisten = \"nowhere\"\n", "status.listen"),
            (
                "[agent]\nurl = \"http://x\"\ntoken = \"t\"\npin_sha256 = \"00\"\n",
                "agent.url",
            ),
            (
                "[agent]\nurl = \"https://x\"\ntoken = \"t\"\npin_sha256 = \"00\"\n",
                "agent.pin_sha256",
            ),
            (
                "[agent]\nurl = \"https://x\"\npin_sha256 = \"00\"\n",
                "agent.token_file",
            ),
        ] {
            let err = format!("{:#}", load(text).expect_err(text));
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let err = jailed(|| Config::load(Some(Path::new("/nonexistent/controller.toml"))))
            .expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/controller.toml"),
            "{err}"
        );
    }

    #[test]
    fn the_built_in_protected_stacks_cannot_be_removed() {
        let c = load("[stacks]\nprotected = [\"mail\"]\n").expect("valid");
        assert_eq!(
            c.protected(),
            ["traefik", "cloudflared", "felhom-controller", "mail"]
        );
        let c = load("[stacks]\nprotected = []\n").expect("valid");
        assert_eq!(
            c.protected(),
            ["traefik", "cloudflared", "felhom-controller"]
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn the_environment_overrides_the_file() {
        // figment::Jail isolates the environment for the closure.
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", AGENT)?;
            jail.set_env("FELHOM_QUIESCE__MAX_QUIESCE", "10m");
            jail.set_env("FELHOM_AGENT__TOKEN", "from-env");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.quiesce.max_quiesce, Duration::from_secs(600));
            assert_eq!(
                c.agent.as_ref().and_then(|a| a.token.as_deref()),
                Some("from-env")
            );
            Ok(())
        });
    }
}
