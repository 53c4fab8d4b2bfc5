//! The quiesce cycle (SPEC §2): stop the running app stacks around a backup and bring back
//! exactly those, whatever happens.
//!
//! - [`machine`]: the transitions, a pure `match` over (phase, event).
//! - [`Controller`]: drives cycles, crash recovery and the daemon's loop against the
//!   collaborators' traits ([`felhom_agentapi::AgentApi`], [`felhom_stacks::Stacks`],
//!   [`felhom_marker::MarkerStore`], [`felhom_marker::HistoryStore`], [`CycleLock`]).
//!
//! This crate does no I/O of its own: no HTTP, no TLS, no docker, no config parsing. The binary
//! builds the real collaborators and hands them over as [`Parts`].
#![deny(missing_docs)]

mod config;
mod controller;
mod error;
mod lock;
pub mod machine;

pub use config::CycleConfig;
pub use controller::{Controller, Live, Parts};
pub use error::CycleError;
pub use lock::CycleLock;
pub use tokio_util::sync::CancellationToken;
