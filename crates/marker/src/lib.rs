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
//! [`HistoryStore`] traits; [`StateDir`] is the real implementation of both.
#![deny(missing_docs)]

mod history;
mod lock;
mod model;
mod store;

pub use history::HistoryStore;
#[cfg(any(test, feature = "mock"))]
pub use history::MockHistoryStore;
pub use lock::{LockError, StateLock};
pub use model::{CycleRecord, MarkedStack, Marker, MarkerPhase, Outcome, StackRecord, FORMAT_VERSION};
#[cfg(any(test, feature = "mock"))]
pub use store::MockMarkerStore;
pub use store::{MarkerError, MarkerStore, StateDir};
