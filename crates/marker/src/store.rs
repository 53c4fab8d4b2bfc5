//! The marker store: the trait the state machine uses, and [`StateDir`], the real one.
//! (Skeleton: the implementation and its tests land with issue 2.)

use crate::model::Marker;
use std::path::PathBuf;

/// Loads, saves and clears the crash-recovery marker.
///
/// Every method is durable before it returns: a `save` that returned `Ok` survives a power
/// cut, and so does a `clear`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait MarkerStore: Send + Sync {
    /// The marker, or `None` when there is none. A corrupt or unknown-version marker is moved
    /// aside and reported as [`MarkerError::Corrupt`] / [`MarkerError::UnknownVersion`].
    fn load(&self) -> Result<Option<Marker>, MarkerError>;
    /// Atomically and durably replaces the marker.
    fn save(&self, marker: &Marker) -> Result<(), MarkerError>;
    /// Durably removes the marker (no error when there is none).
    fn clear(&self) -> Result<(), MarkerError>;
}

/// What can go wrong with the marker.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// The file system refused (read-only, full, permissions...).
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("writing the marker", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The marker did not parse; it was moved to `moved_to`.
    #[error("the marker {path} is corrupt ({detail}); it was moved to {moved_to}")]
    Corrupt {
        /// Where the marker was.
        path: PathBuf,
        /// Where it is now.
        moved_to: PathBuf,
        /// Why it did not parse.
        detail: String,
    },
    /// The marker is of a format version this build does not know; it was moved to `moved_to`.
    #[error("the marker {path} has format version {version}, this build knows {known}; it was moved to {moved_to}")]
    UnknownVersion {
        /// Where the marker was.
        path: PathBuf,
        /// Where it is now.
        moved_to: PathBuf,
        /// The version found.
        version: u64,
        /// The version this build knows.
        known: u32,
    },
}

/// The real state directory: marker, lock and history as files.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub(crate) dir: PathBuf,
}
