//! Single flight (SPEC §2 rule 4), as the cycle sees it; and whether the state may hold new
//! cycles at all.

use felhom_marker::{LockError, MarkerError};
use std::fmt::Debug;

/// Takes the cross-process cycle lock. The returned guard holds it until dropped.
///
/// Both methods may block (a file system): the controller calls them off the runtime's
/// worker threads.
pub trait CycleLock: Send + Sync {
    /// Takes the lock without waiting. [`LockError::Held`]: another holder, named — the
    /// cycle or recovery is busy elsewhere. Any other error is a lock that cannot be taken
    /// (logged, and a failed `recover`), never taken for a holder.
    fn acquire(&self) -> Result<Box<dyn Debug + Send + Sync>, LockError>;

    /// Whether a *new* cycle may begin with this state, as it is now: `Err` says why not
    /// (a state directory others may write to: [`MarkerError::UnsafeStateDir`]). A recovery
    /// runs all the same — the stacks a marker names come back whatever the directory's
    /// mode. Asked at each cycle and each recovery, so that a fix is seen without a restart.
    /// The default: always.
    fn fit_for_new_cycles(&self) -> Result<(), MarkerError> {
        Ok(())
    }
}

impl CycleLock for felhom_marker::StateDir {
    fn acquire(&self) -> Result<Box<dyn Debug + Send + Sync>, LockError> {
        felhom_marker::StateLock::acquire(self)
            .map(|lock| Box::new(lock) as Box<dyn Debug + Send + Sync>)
    }

    fn fit_for_new_cycles(&self) -> Result<(), MarkerError> {
        felhom_marker::StateDir::fit_for_new_cycles(self)
    }
}
