//! The typed answers of the agent API and its errors.

use chrono::{DateTime, Utc};

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
    #[error("{request}: the agent refused the token (401 Unauthorized): check agent.token / agent.token_file")]
    Unauthorized {
        /// The request.
        request: &'static str,
    },
    /// Anything else: transport, TLS, timeout, unexpected status, bad body.
    #[error("{request}: {detail}")]
    Other {
        /// The request.
        request: &'static str,
        /// What went wrong.
        detail: String,
    },
}
