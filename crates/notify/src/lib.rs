//! Notifications of the felhom controller (SPEC §5 `[notify]`): one JSON event POSTed to a
//! webhook, a short title and message published to an ntfy topic, and a dead-man's-switch ping
//! (`GET <ping>` after a successful cycle, `GET <ping>/fail` after any other).
//!
//! Delivery never delays or fails a cycle: [`Notifier::send`] and [`Notifier::ping`] spawn the
//! delivery and return at once; each try is bounded by `timeout` and retried with backoff; a
//! delivery that fails after every try is a warning that names the target only as
//! `scheme://host/…`, because notification URLs carry secrets (tokens in paths and queries).
//!
//! An event's time is [`chrono`]'s, re-exported so that an embedder needs no matching version
//! of it.
//!
//! # Features
//!
//! None: the crate is the config section, the event and the [`Notifier`], which delivers over
//! hyper and rustls (verified against the system's roots) on the caller's tokio runtime.
#![deny(missing_docs)]

mod config;
mod event;
mod redact;
mod send;

pub use chrono;
pub use config::{ConfigError, Endpoint, EventKind, NotifyConfig};
pub use event::Event;
pub use redact::redact;
pub use send::{Notifier, NotifierError};
