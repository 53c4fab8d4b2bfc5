//! What the agent is told at start: where to listen, what to back up, when it is due and how it
//! misbehaves. `DueMode` and `Fault` share one text form between the command line and the
//! control endpoint, so a test written against the binary reads like one written in-process.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::DevAgentError;

/// How the agent starts: everything [`crate::DevAgent::start`] needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where to listen. Default `127.0.0.1:0` (a free port; read it back with
    /// [`crate::DevAgent::url`]).
    pub listen: SocketAddr,
    /// The bearer token every request must carry. Must not be empty.
    pub token: String,
    /// The directory to back up (the stacks' data).
    pub source: PathBuf,
    /// Where snapshots (`<id>/snapshot/`) and archives (`<id>.tar`) go; created if missing.
    pub out_dir: PathBuf,
    /// Extra wait before the snapshot is taken, to model a slow backup.
    pub snapshot_delay: Duration,
    /// Extra wait before the archive is written, to model a slow backup.
    pub archive_delay: Duration,
    /// When `GET /backup/due` says due.
    pub due: DueMode,
    /// Certificate and private key (PEM files) to serve; `None` generates a self-signed pair.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Faults active from the start.
    pub faults: Vec<Fault>,
    /// When set, every event is also appended to this file as one JSON line.
    pub events_file: Option<PathBuf>,
}

impl AgentConfig {
    /// A configuration with the defaults: loopback on a free port, no delays, always due,
    /// a generated certificate, no faults, no events file.
    pub fn new(
        token: impl Into<String>,
        source: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        AgentConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token: token.into(),
            source: source.into(),
            out_dir: out_dir.into(),
            snapshot_delay: Duration::ZERO,
            archive_delay: Duration::ZERO,
            due: DueMode::Always,
            tls: None,
            faults: Vec::new(),
            events_file: None,
        }
    }
}

/// When `GET /backup/due` answers `"due": true`.
///
/// Text form (command line `--due`, control endpoint): `always`, `never`, `once`,
/// `every:<humantime duration>` (e.g. `every:30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueMode {
    /// Always due, even while a backup runs (the controller then meets a `409`).
    Always,
    /// Never due.
    Never,
    /// Due until a backup is started (`202`), then not; setting it again re-arms it.
    Once,
    /// Due at once when set, then again this long after each backup start.
    Every(Duration),
}

impl fmt::Display for DueMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DueMode::Always => f.write_str("always"),
            DueMode::Never => f.write_str("never"),
            DueMode::Once => f.write_str("once"),
            DueMode::Every(d) => write!(f, "every:{}", humantime::format_duration(*d)),
        }
    }
}

impl FromStr for DueMode {
    type Err = DevAgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| DevAgentError::BadDue {
            input: s.to_owned(),
            reason,
        };
        match s.trim() {
            "always" => Ok(DueMode::Always),
            "never" => Ok(DueMode::Never),
            "once" => Ok(DueMode::Once),
            other => match other.strip_prefix("every:") {
                Some(d) => {
                    let d = humantime::parse_duration(d.trim()).map_err(|e| bad(e.to_string()))?;
                    if d.is_zero() {
                        return Err(bad("the interval must be longer than zero".into()));
                    }
                    Ok(DueMode::Every(d))
                }
                None => Err(bad(
                    "expected always, never, once or every:<duration> (e.g. every:30s)".into(),
                )),
            },
        }
    }
}

/// A way to misbehave, on demand.
///
/// Text form (command line `--fault`, control endpoint): `failed`, `hang`, `status500:<N>`,
/// `nonjson`, `oversized`, `forget`, `conflict:<ID>`, `unavailable`, `silent`,
/// `slow_status:<duration>`, `no_long_poll`. The control endpoint also takes the JSON object form
/// `{"kind": "<name>", ...}` with `count` (status500), `id` (conflict) or `delay` (slow_status).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The backup fails right after the snapshot copy: phase `failed`, error `injected failure`
    /// (it never reports `snapshotted`).
    FailBackup,
    /// A backup does not move on while this is active: started under it, it stays `running`;
    /// set while `snapshotted`, it stays `snapshotted`. Clearing it lets the backup go on.
    Hang,
    /// The next N `GET /backup/status` answer `500`.
    Status500(u32),
    /// `GET /backup/status` answers `200` with a body that is not JSON.
    NonJson,
    /// `GET /backup/status` answers a valid JSON status padded to about 100 KiB.
    Oversized,
    /// `GET /backup/status` answers `idle` with a null id, as an agent that restarted and lost
    /// the job would. The job itself goes on, and a `POST /backup` meanwhile still meets it
    /// (`409`).
    Forget,
    /// `POST /backup` answers `409` with this id; a backup under that id is started (once) as if
    /// someone else had asked for it, so its status goes `running` … `done`.
    Conflict(String),
    /// `POST /backup` answers `503`.
    Unavailable,
    /// Requests outside `/control/` are read but never answered (until this is cleared, when
    /// their connections are closed without an answer).
    Silent,
    /// `GET /backup/status` answers only after this delay.
    SlowStatus(Duration),
    /// `GET /backup/status` ignores the long-poll query (`wait`, `phase`) and answers at once,
    /// as an agent without SPEC §3's optional extension does.
    NoLongPoll,
    /// `GET /backup/status` answers our backup's optional fields malformed (`started_at: ""`,
    /// `snapshot_at: "soon"`, `finished_at: 17`), as a buggy or newer agent might: only `id`
    /// and `phase` stay as SPEC §3 says.
    BadFields,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::FailBackup => f.write_str("failed"),
            Fault::Hang => f.write_str("hang"),
            Fault::Status500(n) => write!(f, "status500:{n}"),
            Fault::NonJson => f.write_str("nonjson"),
            Fault::Oversized => f.write_str("oversized"),
            Fault::Forget => f.write_str("forget"),
            Fault::Conflict(id) => write!(f, "conflict:{id}"),
            Fault::Unavailable => f.write_str("unavailable"),
            Fault::Silent => f.write_str("silent"),
            Fault::SlowStatus(d) => write!(f, "slow_status:{}", humantime::format_duration(*d)),
            Fault::NoLongPoll => f.write_str("no_long_poll"),
            Fault::BadFields => f.write_str("bad_fields"),
        }
    }
}

impl FromStr for Fault {
    type Err = DevAgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| DevAgentError::BadFault {
            input: s.to_owned(),
            reason,
        };
        let (name, arg) = match s.trim().split_once(':') {
            Some((name, arg)) => (name, Some(arg.trim())),
            None => (s.trim(), None),
        };
        let no_arg = |fault: Fault| match arg {
            None => Ok(fault),
            Some(_) => Err(bad(format!("`{name}` takes no argument"))),
        };
        match name {
            "failed" => no_arg(Fault::FailBackup),
            "hang" => no_arg(Fault::Hang),
            "nonjson" => no_arg(Fault::NonJson),
            "oversized" => no_arg(Fault::Oversized),
            "forget" => no_arg(Fault::Forget),
            "unavailable" => no_arg(Fault::Unavailable),
            "silent" => no_arg(Fault::Silent),
            "no_long_poll" => no_arg(Fault::NoLongPoll),
            "bad_fields" => no_arg(Fault::BadFields),
            "status500" => {
                let n = arg.ok_or_else(|| bad("expected status500:<N>".into()))?;
                let n = n
                    .parse::<u32>()
                    .map_err(|e| bad(format!("count `{n}`: {e}")))?;
                Ok(Fault::Status500(n))
            }
            "conflict" => {
                let id = arg.ok_or_else(|| bad("expected conflict:<ID>".into()))?;
                validate_backup_id(id).map_err(bad)?;
                Ok(Fault::Conflict(id.to_owned()))
            }
            "slow_status" => {
                let d = arg.ok_or_else(|| bad("expected slow_status:<duration>".into()))?;
                let d = humantime::parse_duration(d).map_err(|e| bad(e.to_string()))?;
                Ok(Fault::SlowStatus(d))
            }
            _ => Err(bad(
                "expected failed, hang, status500:N, nonjson, oversized, forget, conflict:ID, \
                 unavailable, silent, slow_status:DURATION, no_long_poll or bad_fields"
                    .into(),
            )),
        }
    }
}

/// A backup id names a directory and a file under the output directory, so it must not be able
/// to leave it.
pub(crate) fn validate_backup_id(id: &str) -> Result<(), String> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if id.is_empty() || id.len() > 64 || !ok_chars || id.starts_with('.') {
        return Err(format!(
            "backup id `{id}`: 1 to 64 characters of A-Z a-z 0-9 - _ . not starting with a dot"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_modes_round_trip_through_text() {
        for mode in [
            DueMode::Always,
            DueMode::Never,
            DueMode::Once,
            DueMode::Every(Duration::from_secs(90)),
        ] {
            let text = mode.to_string();
            assert_eq!(text.parse::<DueMode>().expect("own text form parses"), mode);
        }
        assert_eq!(
            "every:30s".parse::<DueMode>().expect("every:30s"),
            DueMode::Every(Duration::from_secs(30))
        );
    }

    #[test]
    fn bad_due_names_the_input() {
        for input in ["sometimes", "every:", "every:0s", "every:soon"] {
            let err = input
                .parse::<DueMode>()
                .expect_err("must be refused")
                .to_string();
            assert!(err.contains(input), "{err}");
        }
    }

    #[test]
    fn faults_round_trip_through_text() {
        for fault in [
            Fault::FailBackup,
            Fault::Hang,
            Fault::Status500(3),
            Fault::NonJson,
            Fault::Oversized,
            Fault::Forget,
            Fault::Conflict("b-other".into()),
            Fault::Unavailable,
            Fault::Silent,
            Fault::SlowStatus(Duration::from_millis(1500)),
            Fault::NoLongPoll,
            Fault::BadFields,
        ] {
            let text = fault.to_string();
            assert_eq!(text.parse::<Fault>().expect("own text form parses"), fault);
        }
    }

    #[test]
    fn bad_faults_are_refused_with_the_input_named() {
        for input in [
            "explode",
            "status500",
            "status500:many",
            "hang:5",
            "conflict:../../etc",
            "conflict:",
            "slow_status:fast",
            "no_long_poll:5",
        ] {
            let err = input
                .parse::<Fault>()
                .expect_err("must be refused")
                .to_string();
            assert!(err.contains(input), "{err}");
        }
    }
}
