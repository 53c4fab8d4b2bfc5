//! Single flight (SPEC §2 rule 4), as the cycle sees it.

use std::fmt::Debug;

/// Takes the cross-process cycle lock. The returned guard holds it until dropped.
pub trait CycleLock: Send + Sync {
    /// Takes the lock without waiting, or says who holds it.
    fn acquire(&self) -> Result<Box<dyn Debug + Send + Sync>, String>;
}

impl CycleLock for felhom_marker::StateDir {
    fn acquire(&self) -> Result<Box<dyn Debug + Send + Sync>, String> {
        felhom_marker::StateLock::acquire(self)
            .map(|lock| Box::new(lock) as Box<dyn Debug + Send + Sync>)
            .map_err(|e| crate::error_chain(&e))
    }
}
