//! [`StateDir`], the real state directory: where its files are, opening it (created `0700`
//! when missing, never through a symbolic link), whether new cycles may start in it, and the
//! copy kept aside of a file that cannot be used. The marker, lock, history and stranded list
//! each have their own module; how their files are written is `durable`.

use crate::durable::{sync_dir, write_atomically, StateFile};
use crate::files::{check_path_for_cycles, not_a_directory};
use crate::MarkerError;
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The real state directory: marker, lock and history as files.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub(crate) dir: PathBuf,
}

pub(crate) const MARKER_FILE: &str = "marker.json";
pub(crate) const LOCK_FILE: &str = "lock";
pub(crate) const HISTORY_FILE: &str = "history.jsonl";

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
