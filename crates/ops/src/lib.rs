//! The felhom controller as a service: what a process that runs the quiesce controller on a
//! guest needs around it, apart from the cycle itself.
//!
//! - [`config`]: the configuration file (SPEC §5), read into the libraries' own types, with
//!   errors that name the key and never show a secret.
//! - [`OpsObserver`]: the controller's observer — systemd's notifications through a
//!   [`ServiceManager`] ([`NotifySocket`]), the Prometheus [`Metrics`], the `[notify]` events.
//! - [`Endpoint`]: `/status` and `/metrics` on a listener the caller binds.
//! - [`Inspection`] and [`StateReport`]: a state directory read without changing anything, as
//!   `status`, `recover --if-stale` and `/metrics` judge it.
//! - [`PolicyListing`]: the running stacks' per-service policy and bad labels, as `check`
//!   lists them.
//! - [`CountedAgent`]: the agent's failures counted, and an agent whose settings cannot be
//!   used kept out of the way of the recovery.
//! - [`Service`]: the daemon's start in its order — status listener, `READY=1`, the loop whose
//!   first work is the crash recovery — and its stop (`STOPPING=1`).
//!
//! Nothing here decides anything about a cycle: that is `felhom-quiesce`'s. Signals stay with
//! the program (a library does not own the process's signal dispositions).
//!
//! # Features
//!
//! None: the crate is for programs that run the controller (it uses the real agent client's
//! types, tokio's sockets and hyper's server).
#![deny(missing_docs)]

mod agent;
mod brief;
pub mod config;
mod endpoint;
mod forget;
mod inspection;
mod listing;
mod metrics;
mod observer;
mod outcome;
mod report;
mod service;
mod systemd;

pub use agent::CountedAgent;
pub use endpoint::Endpoint;
pub use forget::{forget_stranded, ForgetError, LOCK_WAIT};
pub use inspection::{Inspection, MarkerAge, STALE_MARGIN};
pub use listing::PolicyListing;
pub use metrics::{Metrics, CONTENT_TYPE};
pub use observer::OpsObserver;
pub use outcome::{left_undone, not_app_consistent};
pub use report::{cycle_picture, DueAnswer, StateReport};
pub use service::{Service, DRAIN};
pub use systemd::{Notification, NotifySocket, ServiceManager, StatusLine, NOTIFY_SOCKET};
