//! The controller's on-disk state, kept in one state directory:
//!
//! - the **marker** (`marker.json`): the stacks a cycle is about to stop, written atomically and
//!   durably *before* the first stop, so that a controller that crashes mid-cycle restarts them
//!   on its next start (SPEC §2 rules 1 and 3);
//! - the **lock** (`lock`): an exclusive, non-blocking file lock that makes a cycle single-flight
//!   across processes and dies with its holder (rule 4);
//! - the **history** (`history.jsonl`): a bounded log of cycle records;
//! - the **stranded stacks** (`stranded.json`): stacks that did not come back, kept until they
//!   run again (rule 6).
//!
//! The state machine uses these files only through the [`MarkerStore`], [`HistoryStore`] and
//! [`StrandedStore`] traits; [`StateDir`] is the real implementation of all three, and
//! [`StateLock`] the lock. [`StateView`] is for everyone else (a `status` command, a metrics
//! scrape, another tool): it reads the same files and never changes anything.
//!
//! Every file is created `0600` and opened without following a symbolic link; a missing state
//! directory is created `0700`. An existing one must be a real directory; one that its group,
//! others or another owner may write to is still read (its marker must be recovered), but is
//! not fit for new cycles ([`StateDir::fit_for_new_cycles`]). A marker or stranded list that
//! cannot be used (corrupt, or of an unknown format version) is never deleted without a copy:
//! the stacks that can still be read from it are returned ([`Marker::salvage`],
//! [`Stranded::moved_aside`]) — also when it cannot be moved — and its bytes are kept as
//! `marker.corrupt-<UTC time>` / `stranded.corrupt-<UTC time>`.
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
//! let stacks = vec![MarkedStack::new("nextcloud", vec!["db".into(), "app".into()], vec![])];
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
//!
//! Errors say what went wrong with which file; the OS error beneath is only their
//! [`source()`](std::error::Error::source), so print the chain (anyhow's `{:#}`) to show it.
//! Times are [`chrono`]'s, re-exported so that an embedder needs no matching version of it.
//!
//! # Features
//!
//! - `mock`: `MockMarkerStore`, `MockHistoryStore` and `MockStrandedStore` (mockall), and
//!   `fake::FakeState`, an in-memory state directory that records every call,
//!   for other crates' tests. Off by default: no mockall in a shipped build.
#![deny(missing_docs)]

mod capture;
mod durable;
#[cfg(any(test, feature = "mock"))]
pub mod fake;
mod files;
mod history;
mod hooks;
mod lock;
mod model;
mod salvage;
mod state_dir;
mod store;
mod stranded;
mod view;

pub use capture::{Capture, ContainerFact, Fact};
pub use chrono;
#[cfg(any(test, feature = "mock"))]
pub use history::MockHistoryStore;
pub use history::HISTORY_MAX_BYTES;
pub use history::{HistoryStore, HISTORY_LIMIT};
pub use hooks::{HookKind, HookRecord, MarkedHooks, MarkedRun, ServiceMode, ServiceRecord};
pub use lock::{LockError, StateLock};
pub use model::{
    CycleRecord, MarkedContainer, MarkedStack, Marker, MarkerPhase, Outcome, StackRecord,
    StrandedStack, FORMAT_VERSION,
};
pub use salvage::{MarkerSalvage, MovedAside, Unreadable};
pub use state_dir::StateDir;
#[cfg(any(test, feature = "mock"))]
pub use store::MockMarkerStore;
pub use store::{MarkerError, MarkerStore};
#[cfg(any(test, feature = "mock"))]
pub use stranded::MockStrandedStore;
pub use stranded::{Stranded, StrandedStore, StrandedView};
pub use view::{MarkerView, StateView};
