//! Single flight across processes: an exclusive, non-blocking lock on `<state_dir>/lock`.
//! (Skeleton: the implementation and its two-process tests land with issue 2.)

use std::path::PathBuf;

/// The held lock; released when dropped, or when the process dies.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another controller process (pid {pid}) holds the lock {path}: a cycle is already running")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, as it wrote it (`None` if unreadable).
        pid: String,
    },
    /// The file system refused.
    #[error("taking the lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
