//! Why the agent could not start, or why a fault or due mode was refused.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong starting the development agent or parsing its settings. An OS error
/// beneath is only the error's `source()`, not in its message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevAgentError {
    /// The token is empty: every request would be refused, or worse, accepted.
    #[error("the agent's bearer token is empty")]
    EmptyToken,
    /// The directory to back up is missing or not a directory.
    #[error("source directory {path}: {reason}")]
    Source {
        /// The configured source.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The output directory could not be created.
    #[error("output directory {path}")]
    OutDir {
        /// The configured output directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The events file could not be opened for appending.
    #[error("events file {path}")]
    EventsFile {
        /// The configured events file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A certificate or key PEM file could not be read or holds nothing usable.
    #[error("TLS file {path}: {reason}")]
    TlsFile {
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate could not be generated, or the certificate and key do not make a usable
    /// TLS configuration.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The listening socket could not be bound.
    #[error("listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A fault's text form did not parse.
    #[error("fault `{input}`: {reason}")]
    BadFault {
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A due mode's text form did not parse.
    #[error("due mode `{input}`: {reason}")]
    BadDue {
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
}
