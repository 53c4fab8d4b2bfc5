//! How the state directory's files are written: whole and durably ([`write_atomically`]:
//! a temp file of mode `0600`, fsync, rename, fsync of the directory), so that a crash or a
//! power cut at any moment leaves the old content or the new one, never a mix. The temp files'
//! names say which process wrote them, so that an open removes those of writers that are gone
//! and leaves a live writer's alone.

use crate::{MarkerError, StateDir};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MARKER_TEMP_PREFIX: &str = ".marker.json.tmp-";
const HISTORY_TEMP_PREFIX: &str = ".history.jsonl.tmp-";
const STRANDED_TEMP_PREFIX: &str = ".stranded.json.tmp-";
const ASIDE_TEMP_PREFIX: &str = ".corrupt.tmp-";

/// Makes temp file names unique among the saves of one process (threads, several `StateDir`s).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl StateDir {
    /// Removes the temp files of writers that are gone. A temp file whose writer is still alive
    /// (another process mid-save, e.g. the daemon while `status` opens the directory) is left to
    /// its writer, which renames or removes it itself.
    ///
    /// Best effort throughout: a temp file is never read as a state file, and what cannot be
    /// listed or removed now (a read-only file system, a directory this user may not list)
    /// is left to a later open. Failing the open over it would keep a marker from its
    /// recovery.
    pub(crate) fn remove_leftover_temp_files(&self) {
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
