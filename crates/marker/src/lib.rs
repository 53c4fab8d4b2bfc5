//! The controller's on-disk state, kept in one state directory:
//!
//! - the **marker** (`marker.json`): the stacks a cycle is about to stop, written atomically and
//!   durably *before* the first stop, so that a controller that crashes mid-cycle restarts them
//!   on its next start (SPEC §2 rules 1 and 3);
//! - the **lock** (`lock`): an exclusive, non-blocking file lock that makes a cycle single-flight
//!   across processes and dies with its holder (rule 4);
//! - the **history** (`history.jsonl`): a bounded log of cycle records.
//!
//! The state machine uses the marker and the history only through the [`MarkerStore`] and
//! [`HistoryStore`] traits; [`StateDir`] is the real implementation of both, and [`StateLock`]
//! the lock. With the `mock` feature, `MockMarkerStore` and `MockHistoryStore` (mockall) are
//! available to other crates' tests.
//!
//! Every file is created `0600` and a missing state directory `0700`. A marker that cannot be
//! used (corrupt, or of an unknown format version) is never deleted: it is moved aside to
//! `marker.corrupt-<UTC time>`, and the error says where.
//!
//! ```
//! use felhom_marker::{MarkedStack, Marker, MarkerPhase, MarkerStore, StateDir, StateLock};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let state = StateDir::open(tmp.path().join("state"))?;
//! let _lock = StateLock::acquire(&state)?; // single flight: held until dropped
//!
//! // Before the first stack is stopped:
//! let stacks = vec![MarkedStack {
//!     name: "nextcloud".into(),
//!     services: vec!["db".into(), "app".into()],
//!     restart_attempts: 0,
//! }];
//! let mut marker = Marker::new("cycle-1", chrono::Utc::now(), stacks);
//! state.save(&marker)?;
//!
//! marker.phase = MarkerPhase::BackingUp;
//! marker.backup_id = Some("b-42".into());
//! state.save(&marker)?;
//! assert_eq!(state.load()?, Some(marker));
//!
//! // Every stack runs again:
//! state.clear()?;
//! assert_eq!(state.load()?, None);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

#[cfg(any(test, feature = "mock"))]
pub mod fake;
mod history;
mod lock;
mod model;
mod store;

#[cfg(any(test, feature = "mock"))]
pub use history::MockHistoryStore;
pub use history::{HistoryStore, HISTORY_LIMIT};
pub use lock::{LockError, StateLock};
pub use model::{
    CycleRecord, MarkedStack, Marker, MarkerPhase, Outcome, StackRecord, FORMAT_VERSION,
};
#[cfg(any(test, feature = "mock"))]
pub use store::MockMarkerStore;
pub use store::{MarkerError, MarkerStore, StateDir};
