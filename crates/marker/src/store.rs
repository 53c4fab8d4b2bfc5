//! The marker store: the trait the state machine uses, and [`StateDir`], the real one.

use crate::files::{check_path_for_cycles, is_refused_link, not_a_directory};
use crate::model::{Marker, FORMAT_VERSION};
use crate::salvage::{versioned_json, MarkerSalvage, Unreadable};
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
    /// The marker, or `None` when there is none.
    ///
    /// A marker that cannot be used as it is (corrupt, or of an unknown format version) comes
    /// back as a marker all the same: the stacks that could still be read from it, with
    /// [`Marker::salvage`] saying what happened. So the recovery that follows every marker
    /// brings those stacks back even where the caller does not look; the caller also records
    /// and reports the salvage. The unusable file is kept aside, never deleted, and what
    /// could be read of it takes its place; where no copy can be made (a read-only or full
    /// file system) it stays as it is, and is salvaged the same way at every load.
    fn load(&self) -> Result<Option<Marker>, MarkerError>;
    /// Atomically and durably replaces the marker.
    fn save(&self, marker: &Marker) -> Result<(), MarkerError>;
    /// Durably removes the marker (no error when there is none). A marker that stays
    /// is [`MarkerError::Stuck`].
    fn clear(&self) -> Result<(), MarkerError>;
}

/// What can go wrong with the state directory's files.
///
/// As every error of the felhom crates, the message says what went wrong and the cause (the
/// OS error) is only in [`source()`](std::error::Error::source): print the chain (anyhow's
/// `{:#}`, or a loop over `source()`) to show both.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// The file system refused (read-only, full, permissions...).
    #[error("{action} {path}")]
    Io {
        /// What was being done ("writing the marker", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the state directory is a symbolic link, which is never followed.
    #[error("{action} {path}: it is a symbolic link, which is never followed in a state directory; remove it")]
    Symlink {
        /// What was being done ("reading the marker", ...).
        action: &'static str,
        /// The link.
        path: PathBuf,
    },
    /// A state directory that is not one (a symbolic link, a file): nothing in it is used.
    /// Or, from [`StateDir::fit_for_new_cycles`], one that others could tamper with: it is
    /// used to recover, but no new cycle starts in it.
    #[error("the state directory {path} is {found}; expected {expected}")]
    UnsafeStateDir {
        /// The state directory.
        path: PathBuf,
        /// What was found ("a symbolic link", "owned by uid 1000", "of mode 0770 (writable
        /// by its group)").
        found: String,
        /// What a usable state directory is.
        expected: String,
    },
    /// The marker cannot be removed: until it is, every start of the controller and every
    /// recovery finds it again and restarts its stacks once more.
    #[error("the marker {path} cannot be removed")]
    Stuck {
        /// The marker.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl MarkerError {
    /// An error of the file system while `action`; a link refused by `O_NOFOLLOW` is named
    /// as such, since the OS's "too many levels of symbolic links" would mislead.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_refused_link(&source) {
            return MarkerError::Symlink { action, path };
        }
        MarkerError::Io {
            action,
            path,
            source,
        }
    }
}

/// The real state directory: marker, lock and history as files.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub(crate) dir: PathBuf,
}

pub(crate) const MARKER_FILE: &str = "marker.json";
pub(crate) const LOCK_FILE: &str = "lock";
pub(crate) const HISTORY_FILE: &str = "history.jsonl";
const MARKER_TEMP_PREFIX: &str = ".marker.json.tmp-";
const HISTORY_TEMP_PREFIX: &str = ".history.jsonl.tmp-";
const STRANDED_TEMP_PREFIX: &str = ".stranded.json.tmp-";
const ASIDE_TEMP_PREFIX: &str = ".corrupt.tmp-";
const CORRUPT_PREFIX: &str = "marker.corrupt-";

/// Makes temp file names unique among the saves of one process (threads, several `StateDir`s).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl StateDir {
    /// Opens the state directory `dir`, creating it (mode `0700`) if it is missing, and removes
    /// the temp files that a process which crashed mid-write left behind (those it can: a
    /// read-only directory keeps them, and they are never read).
    ///
    /// An existing `dir` must be a real directory (not a symbolic link): anything else is
    /// [`MarkerError::UnsafeStateDir`]. Its owner and mode are *not* judged here: a directory
    /// the controller would not have made (`chmod 750` for a monitoring group, a restore
    /// without `-p`, another owner) still holds a marker whose stacks must come back, so it
    /// opens, and its files are read without following links as always. Whether new cycles
    /// may start in it is [`StateDir::fit_for_new_cycles`]. Nothing is changed (a wrong owner
    /// or mode is the operator's to fix, not ours to guess).
    pub fn open(dir: impl Into<PathBuf>) -> Result<StateDir, MarkerError> {
        let dir = dir.into();
        let existing = match std::fs::symlink_metadata(&dir) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(MarkerError::io("inspecting the state directory", &dir, e)),
        };
        if let Some(meta) = existing {
            if let Some(found) = not_a_directory(&meta) {
                return Err(MarkerError::UnsafeStateDir {
                    path: dir,
                    found: found.to_owned(),
                    expected: crate::files::expected(),
                });
            }
        } else {
            // The mode is given at creation, so the directory is never visible with wider
            // permissions, not even for an instant.
            DirBuilder::new()
                .recursive(true)
                .mode(crate::files::STATE_DIR_MODE)
                .create(&dir)
                .map_err(|e| MarkerError::io("creating the state directory", &dir, e))?;
            // The new directory's own entry must survive a power cut too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let state = StateDir { dir };
        state.remove_leftover_temp_files();
        Ok(state)
    }

    /// Whether a new cycle may start with this state directory, as it is now (it is looked at
    /// again at each call, so a fix is seen without a restart): `Err`
    /// ([`MarkerError::UnsafeStateDir`]) when it is owned by another user, writable by its
    /// group or others, or no longer a real directory — whoever can write to it could remove
    /// the marker of a cycle that has stacks down. Reading it and recovering a marker from it
    /// stay possible all the same. Read bits for the group or others are accepted: its files
    /// are `0600`. See docs/decisions.md.
    pub fn fit_for_new_cycles(&self) -> Result<(), MarkerError> {
        check_path_for_cycles(&self.dir)
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
    ///
    /// Best effort throughout: a temp file is never read as a state file, and what cannot be
    /// listed or removed now (a read-only file system, a directory this user may not list)
    /// is left to a later open. Failing the open over it would keep a marker from its
    /// recovery.
    fn remove_leftover_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name
                .strip_prefix(MARKER_TEMP_PREFIX)
                .or_else(|| name.strip_prefix(HISTORY_TEMP_PREFIX))
                .or_else(|| name.strip_prefix(STRANDED_TEMP_PREFIX))
                .or_else(|| name.strip_prefix(ASIDE_TEMP_PREFIX))
            else {
                continue;
            };
            if writer_is_alive(rest) {
                continue;
            }
            // Another opener may have removed it first; see above for any other failure.
            let _ = std::fs::remove_file(entry.path());
        }
    }

    /// Keeps a copy of the bytes of a file that cannot be used (`marker.json`,
    /// `stranded.json`) as `<corrupt_prefix><UTC time>[-n]`, written as durably as any state
    /// file, for a human to look at; the caller then puts what could be read of it in its
    /// place. A copy rather than a rename, so that the file's place is never empty: a crash
    /// at any moment leaves either the unusable file (salvaged again) or the salvage.
    /// `Err`: why no copy could be made — the caller leaves the file as it is.
    pub(crate) fn keep_aside(&self, bytes: &[u8], corrupt_prefix: &str) -> Result<PathBuf, String> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut target = self.dir.join(format!("{corrupt_prefix}{stamp}"));
        let mut n = 1u32;
        // The rename would silently replace an earlier unusable file of the same second.
        while target.symlink_metadata().is_ok() {
            target = self.dir.join(format!("{corrupt_prefix}{stamp}-{n}"));
            n += 1;
        }
        match write_atomically(&self.dir, StateFile::Aside, &target, bytes) {
            Ok(()) => Ok(target),
            Err(e) => Err(chain(&e)),
        }
    }
}

/// `error: cause: cause …`: the marker crate's errors carry their cause in `source()` only,
/// and a [`MovedAside`](crate::MovedAside) keeps the whole line as text.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}

impl MarkerStore for StateDir {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        let path = self.marker_path();
        let bytes = match crate::files::read(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => return Err(MarkerError::io("reading the marker", path, e)),
        };
        let reason = match parse_marker(&bytes) {
            Ok(marker) => return Ok(Some(marker)),
            Err(reason) => reason,
        };
        // The stacks first, from the bytes in hand: whatever becomes of the file, they are
        // recovered. The file's last write stands in for a start it does not say.
        let moved_to = self.keep_aside(&bytes, CORRUPT_PREFIX);
        let kept = moved_to.is_ok();
        let marker = MarkerSalvage::salvage(
            &bytes,
            written_at(&path),
            crate::salvage::MovedAside {
                path,
                moved_to,
                reason,
            },
        );
        if kept {
            // What could be read takes the unusable file's place, so that the next load (a
            // crash mid-recovery) finds these stacks as a sound marker. If this fails, the
            // unusable file stays and is salvaged again: nothing is lost either way.
            let _ = self.save(&marker);
        }
        Ok(Some(marker))
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
            Err(source) => return Err(MarkerError::Stuck { path, source }),
        }
        // Even when the marker was already absent: its removal may not be durable yet.
        sync_dir(&self.dir)
    }
}

/// The marker that `bytes` hold, or why they are not one.
pub(crate) fn parse_marker(bytes: &[u8]) -> Result<Marker, Unreadable> {
    let value = versioned_json(bytes, FORMAT_VERSION)?;
    serde_json::from_value(value).map_err(|e| Unreadable::Corrupt {
        detail: e.to_string(),
    })
}

/// When the file at `path` was last written, if that can be told: the stand-in for a salvaged
/// entry's time.
pub(crate) fn written_at(path: &Path) -> Option<chrono::DateTime<chrono::Utc>> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(chrono::DateTime::<chrono::Utc>::from)
}

/// The files written whole through [`write_atomically`]; each names its own error actions.
#[derive(Clone, Copy)]
pub(crate) enum StateFile {
    Marker,
    History,
    Stranded,
    /// The copy of an unusable marker or stranded list.
    Aside,
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
            (StateFile::Stranded, Step::Create) => "creating the stranded list's temp file",
            (StateFile::Stranded, Step::Write) => "writing the stranded list's temp file",
            (StateFile::Stranded, Step::Sync) => "flushing the stranded list's temp file to disk",
            (StateFile::Stranded, Step::Rename) => "replacing the stranded list",
            (StateFile::Aside, Step::Create) => "creating the temp file of an unusable file's copy",
            (StateFile::Aside, Step::Write) => "writing the copy of an unusable file",
            (StateFile::Aside, Step::Sync) => "flushing the copy of an unusable file to disk",
            (StateFile::Aside, Step::Rename) => "naming the copy of an unusable file",
        }
    }

    fn temp_prefix(self) -> &'static str {
        match self {
            StateFile::Marker => MARKER_TEMP_PREFIX,
            StateFile::History => HISTORY_TEMP_PREFIX,
            StateFile::Stranded => STRANDED_TEMP_PREFIX,
            StateFile::Aside => ASIDE_TEMP_PREFIX,
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
    // Followed when it is a link: this only flushes, and it is also used on the state
    // directory's parent, which may well be one (`/var/run`).
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
