//! The quiesce cycle (SPEC §2): stop the running app stacks around a backup and bring back
//! exactly those, whatever happens.
//!
//! - [`machine`]: the transitions, a pure `match` over (phase, event).
//! - [`Controller`]: a driver runs each cycle and each crash recovery through that table
//!   against the collaborators' traits ([`felhom_agentapi::AgentApi`],
//!   [`felhom_stacks::Stacks`], [`felhom_marker::MarkerStore`],
//!   [`felhom_marker::HistoryStore`], [`felhom_marker::StrandedStore`], [`CycleLock`]);
//!   [`Controller::run`] is the daemon's loop, [`Controller::run_if_due`] the one-shot cycle,
//!   [`Controller::recover`] the crash recovery.
//! - [`Observer`]: how an embedding program hears of phase changes, the loop's liveness and
//!   [`Notice`]s for operators; [`Controller::overview`] is what it shows of itself.
//!
//! This crate does no I/O of its own: no HTTP, no TLS, no docker, no config parsing. The binary
//! builds the real collaborators and hands them over as [`Collaborators`].
//!
//! # Features
//!
//! - `mock`: the module `testing`, test doubles for embedders' tests: `testing::FakeLock`,
//!   `testing::Recorder`, `Collaborators::in_memory`.
//!
//! # Embedding the controller in another tool
//!
//! Any implementations of the traits will do. Here the state directory is the real one (in a
//! temp dir), and the recording fakes of the other crates' `mock` feature stand in for the
//! agent and the engine; `examples/embed` in the repository is the same as a crate of its own.
//!
//! ```
//! use std::sync::Arc;
//! use felhom_agentapi::{fake::FakeAgent, BackupPhase};
//! use felhom_marker::{MarkerStore, Outcome, StateDir};
//! use felhom_quiesce::{CancellationToken, Collaborators, Controller, CycleConfig, IfDue};
//! use felhom_stacks::fake::FakeStacks;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let state = Arc::new(StateDir::open(tmp.path().join("state"))?);
//! let stacks = Arc::new(FakeStacks::running([("nextcloud", &["app", "db"][..])]));
//! let controller = Controller::new(
//!     Collaborators {
//!         agent: Some(Arc::new(FakeAgent::answering([BackupPhase::Done]))),
//!         stacks: stacks.clone(),
//!         marker: state.clone(),
//!         history: state.clone(),
//!         stranded: state.clone(),
//!         lock: state.clone(),
//!         observer: Arc::new(()),
//!     },
//!     CycleConfig::default(),
//! );
//! let IfDue::Ran(record) = controller.run_if_due(false, &CancellationToken::new()).await? else {
//!     panic!("the fake agent says a backup is due");
//! };
//! assert_eq!(record.outcome, Outcome::Done);
//! assert_eq!(stacks.calls(), ["stop nextcloud", "start nextcloud app,db"]);
//! assert_eq!(state.load()?, None, "the marker is cleared once the stacks run");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod backoff;
mod capture;
mod collaborators;
mod config;
mod controller;
mod cycle;
mod daemon;
mod driver;
mod engine;
mod error;
mod health;
mod hooks;
mod io;
mod lock;
pub mod machine;
mod observer;
mod overview;
mod policy;
mod progress;
mod record;
mod recovery;
mod resume;
mod steps;
mod stranded;
mod stuck;
#[cfg(any(test, feature = "mock"))]
pub mod testing;
mod writer;

pub use collaborators::Collaborators;
pub use config::CycleConfig;
pub use controller::{Controller, IfDue};
pub use daemon::{Daemon, MIN_CYCLE_GAP, RECOVER_EVERY};
pub use error::{error_chain, CycleError};
pub use lock::CycleLock;
pub use observer::{Notice, NoticeKind, Observer, TICK};
pub use overview::Overview;
pub use recovery::Recovery;
pub use tokio_util::sync::CancellationToken;

use felhom_marker::CycleRecord;
use std::time::Duration;

/// How long the driver waits for what it has let go of to land — an aborted task to unwind
/// (its child processes killed on drop), a marker write to reach the disk — before it goes
/// on anyway: the stacks coming back matter more.
pub(crate) const LANDING: Duration = Duration::from_secs(5);

/// The longest downtime of a stack in `record`, in milliseconds (0 when none was measured).
pub fn max_downtime_ms(record: &CycleRecord) -> u64 {
    record
        .stacks
        .iter()
        .filter_map(|s| s.downtime_ms)
        .max()
        .unwrap_or(0)
}

/// The instant `d` from now, or a century from now when `d` is longer: an absurd duration
/// from an embedder must not panic (`Instant + Duration` overflows) with stacks down.
pub(crate) fn after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// A bound as the configuration writes it (`30s`, `500ms`).
pub(crate) fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
