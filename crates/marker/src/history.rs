//! The cycle history: a bounded JSON-lines file of [`CycleRecord`]s.

use crate::files::no_follow;
use crate::model::CycleRecord;
use crate::store::{sync_dir, write_atomically, MarkerError, StateDir, StateFile};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How many cycle records the history keeps; appending past it drops the oldest.
pub const HISTORY_LIMIT: usize = 200;

/// Appends cycle records and reads the latest ones.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait HistoryStore: Send + Sync {
    /// Appends one record durably, dropping the oldest ones past the history's bound.
    fn append(&self, record: &CycleRecord) -> Result<(), MarkerError>;
    /// The last `n` records, oldest first. Lines that do not parse are skipped.
    fn recent(&self, n: usize) -> Result<Vec<CycleRecord>, MarkerError>;
}

impl HistoryStore for StateDir {
    fn append(&self, record: &CycleRecord) -> Result<(), MarkerError> {
        let path = self.history_path();
        let line = serde_json::to_vec(record)
            .map_err(|e| MarkerError::io("serializing a cycle record for", &path, e.into()))?;
        let existing = crate::files::read(&path)
            .map_err(|e| MarkerError::io("reading the history", &path, e))?;
        let old = existing.as_deref().unwrap_or_default();
        let old_lines: Vec<&[u8]> = lines(old).collect();

        if old_lines.len() >= HISTORY_LIMIT {
            // Lines are kept as they are, even unparsable ones: a newer build may read them.
            let keep = &old_lines[old_lines.len() + 1 - HISTORY_LIMIT..];
            let mut bytes = Vec::with_capacity(old.len() + line.len() + 1);
            for kept in keep {
                bytes.extend_from_slice(kept);
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
            return write_atomically(&self.dir, StateFile::History, &path, &bytes);
        }

        let mut bytes = Vec::with_capacity(line.len() + 2);
        // A crash mid-append can leave a last line without its newline; the new record must
        // not be glued to it, or both would be lost.
        if !old.is_empty() && !old.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
        let mut file = no_follow(&mut OpenOptions::new())
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| MarkerError::io("opening the history", &path, e))?;
        file.write_all(&bytes)
            .map_err(|e| MarkerError::io("appending to the history", &path, e))?;
        file.sync_all()
            .map_err(|e| MarkerError::io("flushing the history to disk", &path, e))?;
        if existing.is_none() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn recent(&self, n: usize) -> Result<Vec<CycleRecord>, MarkerError> {
        recent(&self.history_path(), n)
    }
}

/// The last `n` records of the history file `path`, oldest first; lines that do not parse are
/// skipped.
pub(crate) fn recent(path: &Path, n: usize) -> Result<Vec<CycleRecord>, MarkerError> {
    let bytes = match crate::files::read(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => return Err(MarkerError::io("reading the history", path, e)),
    };
    let records: Vec<CycleRecord> = lines(&bytes)
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    let skip = records.len().saturating_sub(n);
    Ok(records.into_iter().skip(skip).collect())
}

/// The non-blank lines of a history file, as bytes: a damaged line must not make the whole
/// file unreadable, as invalid UTF-8 in a `String` would.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
}
