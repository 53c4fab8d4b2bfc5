//! The cycle history: a bounded JSON-lines file of [`CycleRecord`]s.

use crate::model::CycleRecord;
use crate::store::MarkerError;

/// Appends cycle records and reads the latest ones.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait HistoryStore: Send + Sync {
    /// Appends one record durably, dropping the oldest ones past the history's bound.
    fn append(&self, record: &CycleRecord) -> Result<(), MarkerError>;
    /// The last `n` records, oldest first. Lines that do not parse are skipped.
    fn recent(&self, n: usize) -> Result<Vec<CycleRecord>, MarkerError>;
}
