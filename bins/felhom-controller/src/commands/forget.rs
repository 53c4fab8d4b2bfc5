//! `forget <stack>`: drops a stranded stack from the state — the operator took it down on
//! purpose — under the cycle lock, so that no recovery is retrying it meanwhile. Its
//! containers are left as they are.

use crate::wire;
use anyhow::Result;
use felhom_ops::config::Config;
use std::process::ExitCode;

pub(crate) async fn forget(config: &Config, stack: &str) -> Result<ExitCode> {
    let state = wire::state_dir(config)?;
    let waiting =
        |pid: &str| tell!("felhom-controller: waiting for the cycle lock (held by pid {pid})");
    let Some(forgotten) = felhom_ops::forget_stranded(state, stack, waiting).await? else {
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
