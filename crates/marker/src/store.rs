//! The marker store: the trait the state machine uses, and [`StateDir`], the real one.

use crate::model::{Marker, FORMAT_VERSION};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// [`StateDir::peek`] found a marker it cannot use (corrupt, or of another format
    /// version); unlike a load it left the file where it is.
    #[error("the marker {path} cannot be used ({detail}); it was left in place")]
    Unusable {
        /// The marker.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

impl MarkerError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        MarkerError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The real state directory: marker, lock and history as files.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub(crate) dir: PathBuf,
}

const MARKER_FILE: &str = "marker.json";
const LOCK_FILE: &str = "lock";
const HISTORY_FILE: &str = "history.jsonl";
const MARKER_TEMP_PREFIX: &str = ".marker.json.tmp-";
const HISTORY_TEMP_PREFIX: &str = ".history.jsonl.tmp-";
const CORRUPT_PREFIX: &str = "marker.corrupt-";

/// Makes temp file names unique among the saves of one process (threads, several `StateDir`s).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl StateDir {
    /// Opens the state directory `dir`, creating it (mode `0700`) if it is missing, and removes
    /// the temp files that a process which crashed mid-write left behind.
    ///
    /// An existing directory is used as it is: its mode is not changed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<StateDir, MarkerError> {
        let dir = dir.into();
        if !dir.is_dir() {
            // The mode is given at creation, so the directory is never visible with wider
            // permissions, not even for an instant.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| MarkerError::io("creating the state directory", &dir, e))?;
            // The new directory's own entry must survive a power cut too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let state = StateDir { dir };
        state.remove_leftover_temp_files()?;
        Ok(state)
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn marker_path(&self) -> PathBuf {
        self.dir.join(MARKER_FILE)
    }

    pub(crate) fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    pub(crate) fn history_path(&self) -> PathBuf {
        self.dir.join(HISTORY_FILE)
    }

    /// Removes the temp files of writers that are gone. A temp file whose writer is still alive
    /// (another process mid-save, e.g. the daemon while `status` opens the directory) is left to
    /// its writer, which renames or removes it itself.
    fn remove_leftover_temp_files(&self) -> Result<(), MarkerError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| MarkerError::io("listing the state directory", &self.dir, e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| MarkerError::io("listing the state directory", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name
                .strip_prefix(MARKER_TEMP_PREFIX)
                .or_else(|| name.strip_prefix(HISTORY_TEMP_PREFIX))
            else {
                continue;
            };
            if writer_is_alive(rest) {
                continue;
            }
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                // Another opener removed it first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(MarkerError::io("removing a leftover temp file", path, e)),
            }
        }
        Ok(())
    }

    /// Moves a marker that cannot be used to `marker.corrupt-<UTC time>[-n]`, so that it is
    /// kept for a human to look at and the next load finds no marker.
    fn move_aside(&self, marker: &Path) -> Result<PathBuf, MarkerError> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut target = self.dir.join(format!("{CORRUPT_PREFIX}{stamp}"));
        let mut n = 1u32;
        // rename() would silently replace an earlier corrupt marker of the same second.
        while target.symlink_metadata().is_ok() {
            target = self.dir.join(format!("{CORRUPT_PREFIX}{stamp}-{n}"));
            n += 1;
        }
        std::fs::rename(marker, &target)
            .map_err(|e| MarkerError::io("moving the unusable marker aside", marker, e))?;
        sync_dir(&self.dir)?;
        Ok(target)
    }
}

impl MarkerStore for StateDir {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        let path = self.marker_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MarkerError::io("reading the marker", path, e)),
        };
        match parse_marker(&bytes) {
            Ok(marker) => Ok(Some(marker)),
            Err(Unusable::Corrupt(detail)) => {
                let moved_to = self.move_aside(&path)?;
                Err(MarkerError::Corrupt {
                    path,
                    moved_to,
                    detail,
                })
            }
            Err(Unusable::Version(version)) => {
                let moved_to = self.move_aside(&path)?;
                Err(MarkerError::UnknownVersion {
                    path,
                    moved_to,
                    version,
                    known: FORMAT_VERSION,
                })
            }
        }
    }

    fn save(&self, marker: &Marker) -> Result<(), MarkerError> {
        let path = self.marker_path();
        let mut bytes = serde_json::to_vec_pretty(marker)
            .map_err(|e| MarkerError::io("serializing the marker", &path, e.into()))?;
        bytes.push(b'\n');
        write_atomically(&self.dir, StateFile::Marker, &path, &bytes)
    }

    fn clear(&self) -> Result<(), MarkerError> {
        let path = self.marker_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(MarkerError::io("removing the marker", path, e)),
        }
        // Even when the marker was already absent: its removal may not be durable yet.
        sync_dir(&self.dir)
    }
}

impl StateDir {
    /// The marker as it is on disk, read without changing anything: the format version is
    /// checked as by a load, but a marker that cannot be used is reported
    /// ([`MarkerError::Unusable`]) and left in place. For `status`, which never changes state.
    pub fn peek(&self) -> Result<Option<Marker>, MarkerError> {
        let path = self.marker_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MarkerError::io("reading the marker", path, e)),
        };
        parse_marker(&bytes).map(Some).map_err(|why| {
            let detail = match why {
                Unusable::Corrupt(detail) => detail,
                Unusable::Version(version) => {
                    format!("format version {version}, this build knows {FORMAT_VERSION}")
                }
            };
            MarkerError::Unusable { path, detail }
        })
    }
}

/// Why the bytes of a marker file are not a marker.
enum Unusable {
    Corrupt(String),
    Version(u64),
}

fn parse_marker(bytes: &[u8]) -> Result<Marker, Unusable> {
    // The version is read before the structure, so that a newer format is reported as such
    // rather than as whichever of its fields fails to parse first.
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Unusable::Corrupt(e.to_string()))?;
    let version = match value.get("version") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Unusable::Corrupt(format!("`version` is {v}, not a version number")))?,
        None => return Err(Unusable::Corrupt("no `version` field".to_owned())),
    };
    if version != u64::from(FORMAT_VERSION) {
        return Err(Unusable::Version(version));
    }
    serde_json::from_value(value).map_err(|e| Unusable::Corrupt(e.to_string()))
}

/// The files written whole through [`write_atomically`]; each names its own error actions.
#[derive(Clone, Copy)]
pub(crate) enum StateFile {
    Marker,
    History,
}

impl StateFile {
    fn action(self, step: Step) -> &'static str {
        match (self, step) {
            (StateFile::Marker, Step::Create) => "creating the marker's temp file",
            (StateFile::Marker, Step::Write) => "writing the marker's temp file",
            (StateFile::Marker, Step::Sync) => "flushing the marker's temp file to disk",
            (StateFile::Marker, Step::Rename) => "replacing the marker",
            (StateFile::History, Step::Create) => "creating the history's temp file",
            (StateFile::History, Step::Write) => "writing the history's temp file",
            (StateFile::History, Step::Sync) => "flushing the history's temp file to disk",
            (StateFile::History, Step::Rename) => "replacing the history",
        }
    }

    fn temp_prefix(self) -> &'static str {
        match self {
            StateFile::Marker => MARKER_TEMP_PREFIX,
            StateFile::History => HISTORY_TEMP_PREFIX,
        }
    }
}

#[derive(Clone, Copy)]
enum Step {
    Create,
    Write,
    Sync,
    Rename,
}

/// Replaces `target` by `bytes` so that, whatever happens, `target` holds either its old or
/// its new content: temp file in the same directory (mode `0600` from creation), fsync,
/// rename, fsync of the directory. The temp file is removed on failure.
pub(crate) fn write_atomically(
    dir: &Path,
    kind: StateFile,
    target: &Path,
    bytes: &[u8],
) -> Result<(), MarkerError> {
    let (temp, file) = create_temp(dir, kind)?;
    let written = write_and_sync(file, bytes)
        .and_then(|()| std::fs::rename(&temp, target).map_err(|e| (Step::Rename, e)));
    if let Err((step, source)) = written {
        // Best effort: the original error is the one worth reporting, and a temp file left
        // behind is removed by a later open.
        let _ = std::fs::remove_file(&temp);
        let path = match step {
            Step::Rename => target.to_path_buf(),
            Step::Create | Step::Write | Step::Sync => temp,
        };
        return Err(MarkerError::io(kind.action(step), path, source));
    }
    sync_dir(dir)
}

/// Creates a new temp file `<prefix><pid>-<n>`, mode `0600` from creation.
fn create_temp(dir: &Path, kind: StateFile) -> Result<(PathBuf, File), MarkerError> {
    // A process restarted after a crash may get its old pid back (low pids in a container),
    // and find its predecessor's temp files: those names are skipped, not reused.
    let mut attempts = 0;
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{}{}-{n}", kind.temp_prefix(), std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 1000 => {
                attempts += 1;
            }
            Err(e) => return Err(MarkerError::io(kind.action(Step::Create), temp, e)),
        }
    }
}

fn write_and_sync(mut file: File, bytes: &[u8]) -> Result<(), (Step, io::Error)> {
    file.write_all(bytes).map_err(|e| (Step::Write, e))?;
    file.sync_all().map_err(|e| (Step::Sync, e))
}

/// Makes the directory's entries (a rename, a removal, a new file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), MarkerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MarkerError::io("syncing the directory", dir, e))
}

/// Whether the process that wrote a temp file named `<prefix><pid>-<n>` still runs.
fn writer_is_alive(suffix: &str) -> bool {
    let Some(pid) = suffix
        .split_once('-')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    else {
        return false;
    };
    // A pid reused by an unrelated process only delays the removal to a later open; the temp
    // file is never read as a marker either way.
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}
