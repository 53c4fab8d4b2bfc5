//! Client of the host agent's backup API, v1 (SPEC §3).
//!
//! The controller talks to the agent only through the [`AgentApi`] trait; `AgentClient`
//! (feature `client`, on by default) is the real implementation:
//!
//! - HTTPS on hyper and rustls (ring provider), one connection pool per client;
//! - the agent's self-signed leaf is **pinned**: the connection is accepted only if the SHA-256
//!   of the leaf's DER equals the configured [`Pin`]; chain, expiry and host name are not
//!   checked, the handshake signature is;
//! - `Authorization: Bearer` on every request, from a `Token` that never shows up in `Debug`
//!   or error messages;
//! - a connect timeout and a bound on each whole request; answers over 64 KiB are refused;
//! - typed answers: unknown phases are kept ([`BackupPhase::Unknown`]), a `409` to
//!   `POST /backup` adopts the running backup ([`BackupStart::adopted`]), `503` is
//!   [`AgentError::Unavailable`], `401` is [`AgentError::Unauthorized`]; every error's message
//!   starts with the request (`GET /backup/status: ...`);
//! - only the deciding fields are strict (`due`; `phase` and `id`): an optional field that does
//!   not parse is left out and reported in [`Answered::ignored`], never an error;
//! - the long-poll extension of `GET /backup/status` ([`AgentApi::backup_status_wait`]).
//!
//! # Embedding the client in another tool
//!
//! ```no_run
//! # #[cfg(feature = "client")] mod example {
//! use std::time::Duration;
//! use felhom_agentapi::{AgentApi, AgentClient, BackupPhase, ClientConfig, Pin, Token};
//!
//! # async fn show() -> Result<(), Box<dyn std::error::Error>> {
//! let client = AgentClient::new(ClientConfig {
//!     url: "https://10.0.0.1:8443".to_owned(),
//!     token: Token::from_file("/etc/felhom/agent.token")?,
//!     // As printed by the agent (or `felhom-controller check`): colons and case do not matter.
//!     pin: "5f3a00112233445566778899aabbccddeeff00112233445566778899aabbccdd".parse::<Pin>()?,
//!     connect_timeout: Duration::from_secs(5),
//!     request_timeout: Duration::from_secs(15),
//! })?;
//!
//! let status = client.backup_status().await?;
//! match status.phase {
//!     BackupPhase::Running | BackupPhase::Snapshotted => println!("backup {:?} in progress", status.id),
//!     BackupPhase::Unknown(phase) => println!("a newer agent says {phase:?}"),
//!     other => println!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! # }
//! ```
//!
//! Code that only needs the trait (and its tests) can take `&dyn AgentApi`; with the `mock`
//! feature the crate also exports `MockAgentApi` (mockall) and a recording fake.
//!
//! # Features
//!
//! - `client` (default): `AgentClient`, the real HTTPS client, and `Token`, and with them
//!   hyper and rustls. A crate that only drives the trait (the quiesce state machine) turns
//!   default features off and so compiles no HTTP or TLS at all.
//! - `mock`: test doubles of [`AgentApi`].
//!
//! Times are [`chrono`]'s, re-exported so that an embedder needs no matching version of it.
// Links only where the items exist: a link to an item of a feature that is off is broken.
#![cfg_attr(
    feature = "client",
    doc = "\nThis build has `client`: [`AgentClient`](crate::AgentClient), \
           [`Token`](crate::Token)."
)]
#![deny(missing_docs)]

mod answered;
#[cfg(feature = "client")]
mod client;
#[cfg(any(test, feature = "mock"))]
pub mod fake;
mod pin;
#[cfg(feature = "client")]
mod token;
mod types;
#[cfg(feature = "client")]
mod verifier;
#[cfg(feature = "client")]
mod wire;

pub use answered::{Answered, IgnoredField};
pub use chrono;
#[cfg(feature = "client")]
pub use client::{AgentClient, ClientConfig};
pub use pin::Pin;
#[cfg(feature = "client")]
pub use token::Token;
pub use types::{AgentError, BackupPhase, BackupStart, BackupStatus, ConfigError, Due};

use std::time::Duration;

use async_trait::async_trait;

/// The three requests of the agent API v1.
///
/// `backup_due_checked` and `backup_status_wait` have default implementations (the plain
/// requests, nothing reported ignored, no long-poll), so an implementation written before them
/// still compiles and still works; `AgentClient` (feature `client`) implements all five.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait AgentApi: Send + Sync {
    /// `GET /backup/due`: whether a backup is due now. An optional field that does not parse
    /// is `None` here; [`AgentApi::backup_due_checked`] also says which.
    async fn backup_due(&self) -> Result<Due, AgentError>;
    /// `POST /backup` with `{"cycle_id": ...}`: starts a backup, or adopts the one already
    /// running (`409`). A `503` is [`AgentError::Unavailable`].
    async fn start_backup(&self, cycle_id: &str) -> Result<BackupStart, AgentError>;
    /// `GET /backup/status`: where the agent's backup is. An optional field that does not
    /// parse is `None` here; [`AgentApi::backup_status_wait`] also says which.
    async fn backup_status(&self) -> Result<BackupStatus, AgentError>;

    /// `GET /backup/due`, with the optional fields of the answer that were present but did not
    /// parse, and so were ignored (for the caller to warn about).
    ///
    /// The default calls [`AgentApi::backup_due`] and reports nothing ignored.
    async fn backup_due_checked(&self) -> Result<Answered<Due>, AgentError> {
        self.backup_due().await.map(Answered::complete)
    }

    /// `GET /backup/status?wait=<seconds>&phase=<last_phase>` (SPEC §3's optional long-poll
    /// extension), with the optional fields that were ignored.
    ///
    /// An agent with the extension holds the answer until its phase differs from `last_phase`
    /// or `wait` has passed; one without it answers at once — so an answer in the same phase
    /// as `last_phase` that came sooner than `wait` means "no extension": the caller then waits
    /// its poll interval before asking again. The request's bound is `wait` plus the client's
    /// `request_timeout`, so a held answer is not cut as a timeout. `wait` is sent in whole
    /// seconds, rounded up; a zero `wait` (or an unknown phase of more than 64 bytes) is a
    /// plain `GET /backup/status`.
    ///
    /// The default calls [`AgentApi::backup_status`] (an agent without the extension) and
    /// reports nothing ignored.
    async fn backup_status_wait(
        &self,
        last_phase: &BackupPhase,
        wait: Duration,
    ) -> Result<Answered<BackupStatus>, AgentError> {
        let _ = (last_phase, wait);
        self.backup_status().await.map(Answered::complete)
    }
}
