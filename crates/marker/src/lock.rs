//! Single flight across processes: an exclusive, non-blocking lock on `<state_dir>/lock`.
//!
//! The lock is an `flock`-style lock held through an open file: the kernel releases it when
//! the file is closed, so also when its process dies (`kill -9` included) — a lock is never
//! stale. It is taken per open file, so two takers in the *same* process conflict as well,
//! which is wanted: the daemon's loop and a manual cycle must not both quiesce.
//!
//! A lock file that cannot be opened for writing (a read-only or full file system, an
//! immutable file) is still a lock: `flock` does not care how the file was opened, so it is
//! taken through a read-only descriptor, and only the pid is not written. Where there is no
//! lock file and none can be made, nobody can hold one: the directory itself is locked
//! instead, so that two such takers still exclude each other. So a read-only state directory
//! still has its marker recovered — its stacks started, though it cannot be removed — and
//! only a lock that cannot be opened at all ([`LockError::Io`], [`LockError::Symlink`]) keeps
//! a recovery from running. Never is such an error taken for a holder.

use crate::files::{is_refused_link, no_follow, open_dir};
use crate::StateDir;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long [`StateLock::acquire`] retries a lock that is taken. A [`StateLock::holder`] probe
/// holds the lock for an instant; this grace keeps a probe (a `status` command) from failing a
/// cycle, while a real holder is still reported at once for any human purpose.
const PROBE_GRACE: Duration = Duration::from_millis(100);
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// The held lock; released when dropped, or when the process dies.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another process (pid {pid}) holds the lock {path}")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, as it wrote it (`unknown` if unreadable).
        pid: String,
    },
    /// A symbolic link is where the lock file goes; it is never followed.
    #[error("the lock {path} is a symbolic link, which is never followed in a state directory; remove it")]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// The file system refused: the lock file can be neither written nor read (for reading a
    /// permission, an I/O error). No process is known to hold the lock.
    #[error("taking the lock {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl StateLock {
    /// Takes the exclusive lock on `<state_dir>/lock` (created `0600` if missing) and writes
    /// this process's pid into it, so that a second taker can name the holder.
    ///
    /// Does not wait for the holder: when the lock is taken, this fails (after a grace of a
    /// tenth of a second, slept on this thread: call it where blocking is allowed) with
    /// [`LockError::Held`], which names the holder's pid. A lock file that cannot be written
    /// is locked all the same (see the module docs); an error is never a holder.
    pub fn acquire(dir: &StateDir) -> Result<StateLock, LockError> {
        let path = dir.lock_path();
        // No truncation at open: the file holds the current holder's pid until *we* hold it.
        let opened = no_follow(&mut OpenOptions::new())
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path);
        let (file, writable) = match opened {
            Ok(file) => (file, true),
            Err(e) if is_refused_link(&e) => return Err(LockError::Symlink { path }),
            // See the module docs: a lock all the same, without our pid in it.
            Err(_) => (open_read_only(dir, &path)?, false),
        };
        let deadline = Instant::now() + PROBE_GRACE;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        pid: read_pid(&file).unwrap_or_else(|| "unknown".to_owned()),
                        path,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(LockError::io(path, e)),
            }
        }
        if writable {
            // Overwrite, then cut: a reader never sees an empty file, only our pid's line
            // first. Best effort: the pid only names the holder, and a full disk that refuses
            // it must not cost the lock (a recovery) that is already held.
            let line = format!("{}\n", std::process::id());
            if file.write_all_at(line.as_bytes(), 0).is_ok() {
                let _ = file.set_len(line.len() as u64);
            }
        }
        Ok(StateLock { _file: file })
    }

    /// The pid of the process holding the lock, or `None` when nobody holds it: it takes
    /// nothing that outlives the call. A reader that is not the writer asks
    /// [`StateView::lock_holder`](crate::StateView::lock_holder), the same probe.
    ///
    /// The pid is the text the holder wrote (`unknown` if it is unreadable).
    pub fn holder(dir: &StateDir) -> Result<Option<String>, LockError> {
        holder(dir.lock_path())
    }
}

/// The pid of the process holding the lock file `path`, or `None` when nobody holds it: a
/// shared lock is tried and, when it is had, dropped at once.
pub(crate) fn holder(path: PathBuf) -> Result<Option<String>, LockError> {
    let file = match no_follow(OpenOptions::new().read(true)).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LockError::io(path, source)),
    };
    // Shared, so that two probes do not see each other as holders.
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(
            read_pid(&file).unwrap_or_else(|| "unknown".to_owned()),
        )),
        Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

impl LockError {
    fn io(path: PathBuf, source: std::io::Error) -> Self {
        if is_refused_link(&source) {
            return LockError::Symlink { path };
        }
        LockError::Io { path, source }
    }
}

/// The lock file `path` of `dir` opened for reading only, when it cannot be opened for writing;
/// where it does not exist (and cannot be made), the directory itself.
fn open_read_only(dir: &StateDir, path: &Path) -> Result<File, LockError> {
    match no_follow(OpenOptions::new().read(true)).open(path) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            open_dir(dir.path()).map_err(|e| LockError::io(dir.path().to_path_buf(), e))
        }
        Err(e) => Err(LockError::io(path.to_path_buf(), e)),
    }
}

/// The pid on the lock file's first line, if it is one.
fn read_pid(file: &File) -> Option<String> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    let first_line = buf.get(..n)?.split(|&b| b == b'\n').next()?;
    let pid: u32 = std::str::from_utf8(first_line).ok()?.trim().parse().ok()?;
    Some(pid.to_string())
}
