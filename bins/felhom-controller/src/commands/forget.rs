//! `forget <stack>`: drops a stranded stack from the state — the operator took it down on
//! purpose — under the cycle lock, so that no recovery is retrying it meanwhile. Its
//! containers are left as they are.

use crate::wire;
use anyhow::{bail, Result};
use felhom_marker::{LockError, StateLock, StrandedStore};
use felhom_ops::config::Config;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

/// How long `forget` waits for the cycle lock: a recovery retrying stranded stacks holds it
/// for a few minutes at most; a cycle holds it longer, and then it is better to try again.
const LOCK_WAIT: Duration = Duration::from_secs(120);

pub(crate) async fn forget(config: &Config, stack: &str) -> Result<ExitCode> {
    let state = wire::state_dir(config)?;
    let deadline = Instant::now() + LOCK_WAIT;
    let mut told = false;
    let _lock = loop {
        // Off the runtime's thread: the lock retries with a thread sleep, and a disk may hang.
        let taker = state.clone();
        match tokio::task::spawn_blocking(move || StateLock::acquire(&taker)).await? {
            Ok(lock) => break lock,
            Err(LockError::Held { pid, .. }) if Instant::now() < deadline => {
                if !std::mem::replace(&mut told, true) {
                    tell!("felhom-controller: waiting for the cycle lock (held by pid {pid})");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(LockError::Held { pid, .. }) => bail!(
                "a cycle or a recovery (pid {pid}) still holds the lock after {}s: try again \
                 once it ends",
                LOCK_WAIT.as_secs()
            ),
            Err(e) => return Err(e.into()),
        }
    };
    let owned = stack.to_owned();
    let Some(forgotten) = tokio::task::spawn_blocking(move || state.forget(&owned)).await?? else {
        tell!(
            "felhom-controller: {stack} is not stranded (`felhom-controller status` lists the \
             stranded stacks)"
        );
        return Ok(ExitCode::from(1));
    };
    say!(
        "forgot the stranded stack {stack} (stranded since {}, {} failed start(s)): it is no \
         longer retried nor reported; its containers are left as they are",
        forgotten.since.to_rfc3339(),
        forgotten.attempts
    );
    tracing::warn!(stack, "a stranded stack was forgotten by hand");
    Ok(ExitCode::SUCCESS)
}
