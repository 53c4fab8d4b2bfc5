//! The cycle history: a bounded JSON-lines file of [`CycleRecord`]s — bounded in records
//! ([`HISTORY_LIMIT`]), in bytes ([`HISTORY_MAX_BYTES`]), and each record in the size of its
//! `errors` (a failed start may carry twenty lines of an app's log, an agent that fails every
//! poll one line per poll): whatever happens, the file stays small enough to be read whole by
//! every `status` and every start.

use crate::durable::{sync_dir, write_atomically, StateFile};
use crate::files::no_follow;
use crate::model::CycleRecord;
use crate::{MarkerError, StateDir};
use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How many cycle records the history keeps; appending past it drops the oldest.
pub const HISTORY_LIMIT: usize = 200;

/// The most bytes the history file holds; appending past it drops the oldest records. The
/// newest record is always kept.
pub const HISTORY_MAX_BYTES: usize = 1 << 20;

/// The most `errors` lines one record keeps in the history; the rest is in the log.
const RECORD_ERRORS: usize = 50;

/// The most bytes of one `errors` line kept in the history; the rest is in the log.
const ERROR_BYTES: usize = 1024;

/// Appends cycle records and reads the latest ones.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait HistoryStore: Send + Sync {
    /// Appends one record durably, dropping the oldest ones past the history's bounds. The
    /// real store keeps at most 50 of the record's `errors`, each cut to 1 KiB.
    fn append(&self, record: &CycleRecord) -> Result<(), MarkerError>;
    /// The last `n` records, oldest first. Lines that do not parse are skipped.
    fn recent(&self, n: usize) -> Result<Vec<CycleRecord>, MarkerError>;
}

impl HistoryStore for StateDir {
    fn append(&self, record: &CycleRecord) -> Result<(), MarkerError> {
        let path = self.history_path();
        let line = serde_json::to_vec(&*bounded(record))
            .map_err(|e| MarkerError::io("serializing a cycle record for", &path, e.into()))?;
        let existing = crate::files::read(&path)
            .map_err(|e| MarkerError::io("reading the history", &path, e))?;
        let old = existing.as_deref().unwrap_or_default();
        let old_lines: Vec<&[u8]> = lines(old).collect();

        if old_lines.len() >= HISTORY_LIMIT || old.len() + line.len() + 2 > HISTORY_MAX_BYTES {
            // Lines are kept as they are, even unparsable ones: a newer build may read them.
            let keep = newest_that_fit(&old_lines, line.len() + 1);
            let mut bytes = Vec::with_capacity(old.len().min(HISTORY_MAX_BYTES) + line.len() + 1);
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

/// The newest of `old` lines that fit beside a new line of `new_len` bytes (its newline
/// counted) within [`HISTORY_LIMIT`] records and [`HISTORY_MAX_BYTES`].
fn newest_that_fit<'a>(old: &'a [&'a [u8]], new_len: usize) -> &'a [&'a [u8]] {
    let mut budget = HISTORY_MAX_BYTES.saturating_sub(new_len);
    let mut from = old.len();
    while from > 0 && old.len() - from < HISTORY_LIMIT - 1 {
        let cost = old[from - 1].len() + 1;
        if cost > budget {
            break;
        }
        budget -= cost;
        from -= 1;
    }
    &old[from..]
}

/// `record` as the history keeps it: at most [`RECORD_ERRORS`] error lines, each at most
/// [`ERROR_BYTES`] bytes, each cut saying so.
fn bounded(record: &CycleRecord) -> Cow<'_, CycleRecord> {
    let too_many = record.errors.len() > RECORD_ERRORS;
    if !too_many && record.errors.iter().all(|e| e.len() <= ERROR_BYTES) {
        return Cow::Borrowed(record);
    }
    let mut kept = record.clone();
    if too_many {
        let more = kept.errors.len() - (RECORD_ERRORS - 1);
        kept.errors.truncate(RECORD_ERRORS - 1);
        kept.errors
            .push(format!("… and {more} more error lines, in the log"));
    }
    for error in &mut kept.errors {
        if error.len() > ERROR_BYTES {
            let mut cut = ERROR_BYTES;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            let more = error.len() - cut;
            error.truncate(cut);
            error.push_str(&format!("… ({more} more bytes, in the log)"));
        }
    }
    Cow::Owned(kept)
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
