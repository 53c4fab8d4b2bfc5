//! Client of the host agent's backup API, v1 (SPEC §3).
//!
//! The controller talks to the agent only through the [`AgentApi`] trait. (Skeleton: the real
//! pinned-TLS client lands with issue 3.)
#![deny(missing_docs)]

mod types;

pub use types::{AgentError, BackupPhase, BackupStart, BackupStatus, Due};

use async_trait::async_trait;

/// The three requests of the agent API v1.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait AgentApi: Send + Sync {
    /// `GET /backup/due`: whether a backup is due now.
    async fn backup_due(&self) -> Result<Due, AgentError>;
    /// `POST /backup` with `{"cycle_id": ...}`: starts a backup, or adopts the one already
    /// running (`409`). A `503` is [`AgentError::Unavailable`].
    async fn start_backup(&self, cycle_id: &str) -> Result<BackupStart, AgentError>;
    /// `GET /backup/status`: where the agent's backup is.
    async fn backup_status(&self) -> Result<BackupStatus, AgentError>;
}
