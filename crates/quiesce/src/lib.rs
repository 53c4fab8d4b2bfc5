//! The quiesce cycle (SPEC §2): stop the running app stacks around a backup and bring back
//! exactly those, whatever happens.
//!
//! - [`machine`]: the transitions, a pure `match` over (phase, event).
//! - [`Controller`]: one loop over [`machine::Step`] drives cycles and crash recovery against
//!   the collaborators' traits ([`felhom_agentapi::AgentApi`], [`felhom_stacks::Stacks`],
//!   [`felhom_marker::MarkerStore`], [`felhom_marker::HistoryStore`], [`CycleLock`]); its
//!   [`Controller::run`] is the daemon's loop, [`Controller::run_once`] the one-shot cycle.
//! - [`Observer`]: how an embedding program hears of phase changes, the loop's liveness and
//!   [`Notice`]s for operators.
//!
//! This crate does no I/O of its own: no HTTP, no TLS, no docker, no config parsing. The binary
//! builds the real collaborators and hands them over as [`Parts`].
//!
//! # Embedding the controller in another tool
//!
//! Any implementations of the traits will do. Here the state directory is the real one (in a
//! temp dir), and the recording fakes of the other crates' `mock` feature stand in for the
//! agent and the engine.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use felhom_agentapi::{fake::FakeAgent, BackupPhase};
//! use felhom_marker::{MarkerStore, Outcome, StateDir};
//! use felhom_quiesce::{CancellationToken, Controller, CycleConfig, Notice, NoticeKind};
//! use felhom_quiesce::{Observer, Once, Parts};
//! use felhom_stacks::fake::FakeStacks;
//!
//! /// Keeps what an operator should hear of; a real tool would queue a webhook here.
//! #[derive(Default)]
//! struct Inbox(Mutex<Vec<Notice>>);
//! impl Observer for Inbox {
//!     fn notice(&self, notice: &Notice) {
//!         self.0.lock().expect("inbox").push(notice.clone());
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let state = Arc::new(StateDir::open(tmp.path().join("state"))?);
//! let agent = Arc::new(FakeAgent::answering([BackupPhase::Snapshotted, BackupPhase::Done]));
//! let stacks = Arc::new(FakeStacks::running([("nextcloud", &["app", "db"][..])]));
//! let inbox = Arc::new(Inbox::default());
//! let controller = Controller::new(
//!     Parts {
//!         agent: Some(agent),
//!         stacks: stacks.clone(),
//!         marker: state.clone(),
//!         history: state.clone(),
//!         stranded: state.clone(),
//!         lock: state.clone(),
//!         observer: inbox.clone(),
//!     },
//!     CycleConfig::default(),
//! );
//!
//! let Once::Ran(record) = controller.run_once(false, &CancellationToken::new()).await? else {
//!     panic!("the fake agent says a backup is due");
//! };
//! assert_eq!(record.outcome, Outcome::Done);
//! assert_eq!(stacks.calls(), ["stop nextcloud", "start nextcloud app,db"]);
//! assert_eq!(state.load()?, None, "the marker is cleared once the stacks run");
//! let notices = inbox.0.lock().expect("inbox");
//! assert_eq!(notices.len(), 1);
//! assert_eq!(notices[0].event, NoticeKind::Done);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod backoff;
mod config;
mod controller;
mod cycle;
mod daemon;
mod down;
mod engine;
mod error;
mod lock;
pub mod machine;
mod observer;
mod parts;
mod recovery;
mod tend;
mod up;

pub use config::CycleConfig;
pub use controller::Controller;
pub use daemon::{Once, MIN_CYCLE_GAP, TEND_EVERY};
pub use error::CycleError;
pub use lock::CycleLock;
pub use observer::{Notice, NoticeKind, Observer, TICK};
pub use parts::{max_downtime_ms, Live, Parts};
pub use tokio_util::sync::CancellationToken;

/// The instant `d` from now, or a century from now when `d` is longer: an absurd duration
/// from an embedder must not panic (`Instant + Duration` overflows) with stacks down.
pub(crate) fn after(d: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// A bound as the configuration writes it (`30s`, `500ms`).
pub(crate) fn humanize(d: std::time::Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
