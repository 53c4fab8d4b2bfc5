//! The state directory's calls leave the runtime's worker threads: each writes and fsyncs (or
//! reads) files, and a slow disk must not hold up a task that shares the worker — the bound,
//! the loop's ticks, the other stacks' starts.

/// Runs `call` (a call into the state directory) on tokio's blocking threads and waits for it.
/// A panic in it is the caller's panic, as if it had been called in place.
pub(crate) async fn off_runtime<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(call).await {
        Ok(out) => out,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels a blocking call: nothing is left to do.
            Err(e) => panic!("a state directory call was cancelled: {e}"),
        },
    }
}

/// Takes the cycle lock off the runtime (the lock retries for a tenth of a second with a
/// thread sleep; a file system may hang): the guard; [`crate::CycleError::Busy`] naming the
/// holder; or [`crate::CycleError::Lock`] when the lock cannot be taken at all.
pub(crate) async fn acquire(
    lock: &std::sync::Arc<dyn crate::CycleLock>,
) -> Result<Box<dyn std::fmt::Debug + Send + Sync>, crate::CycleError> {
    let lock = lock.clone();
    off_runtime(move || lock.acquire())
        .await
        .map_err(|e| match e {
            felhom_marker::LockError::Held { .. } => {
                crate::CycleError::Busy(crate::error_chain(&e))
            }
            other => crate::CycleError::Lock(other),
        })
}
