//! The typed answers of the agent API and its errors.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Pin;

/// The answer of `GET /backup/due`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Due {
    /// Whether a backup is due now.
    pub due: bool,
    /// Why (or why not), for logs.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the next backup will be due, if the agent knows.
    #[serde(default)]
    pub next_due_at: Option<DateTime<Utc>>,
}

/// The answer of `POST /backup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStart {
    /// The id of the backup to follow.
    pub id: String,
    /// `true` when the agent answered `409` (a backup was already running) and this is that
    /// backup's id, adopted.
    pub adopted: bool,
}

/// The phase of a backup, as `GET /backup/status` reports it.
///
/// Exhaustive on purpose: a phase this client does not know arrives as
/// [`BackupPhase::Unknown`], so a `match` covers every answer without a wildcard arm, and a
/// new named phase is a breaking change that every caller must decide about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupPhase {
    /// The agent knows no backup.
    Idle,
    /// In progress.
    Running,
    /// The guest's data is captured; the rest runs from the snapshot.
    Snapshotted,
    /// Finished successfully.
    Done,
    /// Finished with an error.
    Failed,
    /// A phase this client does not know (a newer agent); kept verbatim.
    Unknown(String),
}

impl BackupPhase {
    /// The phase as the agent spells it (`running`, `snapshotted`, ...; an unknown one verbatim).
    pub fn name(&self) -> &str {
        match self {
            BackupPhase::Idle => "idle",
            BackupPhase::Running => "running",
            BackupPhase::Snapshotted => "snapshotted",
            BackupPhase::Done => "done",
            BackupPhase::Failed => "failed",
            BackupPhase::Unknown(name) => name,
        }
    }
}

/// The answer of `GET /backup/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStatus {
    /// The backup's id; `None` when the agent knows none.
    pub id: Option<String>,
    /// Its phase.
    pub phase: BackupPhase,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the snapshot was taken.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// What can go wrong talking to the agent. Every message names the request
/// (`GET /backup/status: ...`) and never contains the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// `503`: the agent cannot back up now.
    #[error("{request}: the agent cannot back up now: {message}")]
    Unavailable {
        /// The request, e.g. `POST /backup`.
        request: &'static str,
        /// The agent's `error`.
        message: String,
    },
    /// `401`: the agent refused the token.
    #[error("{request}: the agent refused the token (401 Unauthorized)")]
    Unauthorized {
        /// The request.
        request: &'static str,
    },
    /// The exchange failed beneath HTTP: a name that does not resolve, a connection that
    /// breaks, a body cut short. What failed is the error's [`source`](std::error::Error::source).
    #[error("{request}: {what}")]
    Transport {
        /// The request.
        request: &'static str,
        /// What failed: `could not connect`, `the exchange failed`, `reading the answer's
        /// body failed`.
        what: &'static str,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Anything else that is not one of the other kinds.
    #[error("{request}: {detail}")]
    Other {
        /// The request.
        request: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The agent presented a certificate other than the pinned one.
    #[error(
        "{request}: certificate pin mismatch: expected {expected}, the agent presented {actual}"
    )]
    PinMismatch {
        /// The request.
        request: &'static str,
        /// The configured pin.
        expected: Pin,
        /// The pin of the certificate the agent presented; the value to configure if the agent
        /// was re-keyed on purpose.
        actual: Pin,
    },
    /// The TLS handshake failed for another reason than the pin (for example a server that
    /// shows the pinned certificate without holding its key).
    #[error("{request}: TLS handshake with the agent failed: {detail}")]
    Tls {
        /// The request.
        request: &'static str,
        /// The TLS error.
        detail: String,
    },
    /// No connection could be made (refused, unreachable, connect timeout).
    #[error("{request}: {detail} ({url})")]
    Connect {
        /// The request.
        request: &'static str,
        /// The agent's base URL.
        url: String,
        /// Why, e.g. `connection refused`.
        detail: String,
    },
    /// The whole exchange (connect, TLS, request, answer) took longer than `request_timeout`.
    #[error("{request}: the agent did not answer within {}", HumanDuration(*after))]
    Timeout {
        /// The request.
        request: &'static str,
        /// The configured bound.
        after: Duration,
    },
    /// The answer's body is over the limit (64 KiB); it was not read into memory.
    #[error("{request}: body over {} KiB", limit / 1024)]
    BodyTooLarge {
        /// The request.
        request: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The answer's body does not hold what the contract says (JSON, fields, RFC 3339 times).
    #[error("{request}: malformed JSON: {detail}")]
    Malformed {
        /// The request.
        request: &'static str,
        /// What is wrong, e.g. serde's message or the field that does not parse.
        detail: String,
    },
    /// A status code the contract does not have for this request.
    #[error("{request}: unexpected status {status}: {body}")]
    Status {
        /// The request.
        request: &'static str,
        /// The status, e.g. `500 Internal Server Error`.
        status: http::StatusCode,
        /// The start of the answer's body (at most 200 characters), for the operator.
        body: String,
    },
}

/// What is wrong with the client's configuration: found when the client is built, before any
/// request is made. Messages name the setting and never show the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `agent.url` is not a usable `https://` URL.
    #[error("agent url {url}: {reason}")]
    InvalidUrl {
        /// The URL as an error may show it: its scheme and host; user-info, path, query and
        /// fragment, any of which may hold a token, are left out (`/…`).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `agent.pin_sha256` is not 64 hex digits.
    #[error("agent certificate pin: {reason}")]
    InvalidPin {
        /// What is wrong with it.
        reason: String,
    },
    /// The token cannot be sent in an HTTP header (empty, control characters, non-ASCII).
    #[error("agent token: {reason}")]
    InvalidToken {
        /// What is wrong with it (never the token itself).
        reason: String,
    },
    /// The token file cannot be used.
    #[error("agent token file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        reason: String,
    },
    /// rustls refused the TLS configuration.
    #[error("agent TLS configuration: {detail}")]
    Tls {
        /// rustls's message.
        detail: String,
    },
}

/// Formats a bound the way the configuration writes it (`15s`, `300ms`).
pub(crate) struct HumanDuration(pub(crate) Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{d:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_config() {
        assert_eq!(HumanDuration(Duration::from_secs(15)).to_string(), "15s");
        assert_eq!(
            HumanDuration(Duration::from_millis(300)).to_string(),
            "300ms"
        );
        assert_eq!(
            HumanDuration(Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
        assert_eq!(HumanDuration(Duration::from_micros(5)).to_string(), "5µs");
    }

    #[test]
    fn every_message_starts_with_the_request() {
        let request = "GET /backup/status";
        let pin = Pin::of_der(b"x");
        let errors = [
            AgentError::Unavailable {
                request,
                message: "busy".into(),
            },
            AgentError::Unauthorized { request },
            AgentError::Other {
                request,
                detail: "x".into(),
            },
            AgentError::Transport {
                request,
                what: "the exchange failed",
                source: "x".into(),
            },
            AgentError::PinMismatch {
                request,
                expected: pin,
                actual: pin,
            },
            AgentError::Tls {
                request,
                detail: "x".into(),
            },
            AgentError::Connect {
                request,
                url: "https://h".into(),
                detail: "x".into(),
            },
            AgentError::Timeout {
                request,
                after: Duration::from_secs(15),
            },
            AgentError::BodyTooLarge {
                request,
                limit: 64 * 1024,
            },
            AgentError::Malformed {
                request,
                detail: "x".into(),
            },
            AgentError::Status {
                request,
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                body: "x".into(),
            },
        ];
        for e in errors {
            assert!(e.to_string().starts_with("GET /backup/status: "), "{e}");
        }
    }
}
