//! What the end-to-end tests (`tests/`) and the benchmark (`bench/`) share: child processes
//! with a bound ([`process`]), the Docker engine and the test image ([`engine`]), the
//! development agent as a process ([`agent`]), and a proxy to the engine that a test switches
//! off and on to play "the engine is away" ([`EngineProxy`]), and a tmpfs that a test fills
//! or makes read-only ([`tmpfs`]).
//!
//! Dev-only (`publish = false`): never a normal dependency of a shipped crate.
//!
//! # Features
//!
//! None.
#![deny(missing_docs)]

pub mod agent;
pub mod engine;
pub mod process;
mod proxy;
pub mod tmpfs;

pub use proxy::{EngineProxy, ProxyError, ENGINE_SOCKET};
