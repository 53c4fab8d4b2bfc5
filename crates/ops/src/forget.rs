//! `forget <stack>`: a stranded stack dropped from the state — the operator took it down on
//! purpose — under the cycle lock, so that no recovery is retrying it meanwhile. Its
//! containers are left as they are.

use felhom_marker::{LockError, MarkerError, StateDir, StateLock, StrandedStack, StrandedStore};
use std::time::Duration;
use tokio::time::Instant;

/// How long [`forget_stranded`] waits for the cycle lock: a recovery retrying stranded stacks
/// holds it for a few minutes at most; a cycle holds it longer, and then it is better to try
/// again.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Why a stranded stack could not be forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// Another process still held the cycle lock after [`LOCK_WAIT`].
    #[error(
        "a cycle or a recovery (pid {pid}) still holds the lock after {}s: try again once it ends",
        LOCK_WAIT.as_secs()
    )]
    Busy {
        /// The holder's pid, as it wrote it.
        pid: String,
    },
    /// The lock could not be taken for another reason.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The stranded list could not be read or written.
    #[error(transparent)]
    Stranded(#[from] MarkerError),
    /// A blocking task of the state directory ended without an answer.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// Drops `stack` from the stranded list of `state` under the cycle lock, waiting up to
/// [`LOCK_WAIT`] for it (`waiting` is told the holder's pid once). Returns its entry; `None`
/// when it was not stranded.
pub async fn forget_stranded(
    state: StateDir,
    stack: &str,
    waiting: impl FnOnce(&str),
) -> Result<Option<StrandedStack>, ForgetError> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut waiting = Some(waiting);
    let _lock = loop {
        // Off the runtime's thread: the lock retries with a thread sleep, and a disk may hang.
        let taker = state.clone();
        match tokio::task::spawn_blocking(move || StateLock::acquire(&taker)).await? {
            Ok(lock) => break lock,
            Err(LockError::Held { pid, .. }) if Instant::now() < deadline => {
                if let Some(tell) = waiting.take() {
                    tell(&pid);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(LockError::Held { pid, .. }) => return Err(ForgetError::Busy { pid }),
            Err(e) => return Err(e.into()),
        }
    };
    let owned = stack.to_owned();
    Ok(tokio::task::spawn_blocking(move || state.forget(&owned)).await??)
}
