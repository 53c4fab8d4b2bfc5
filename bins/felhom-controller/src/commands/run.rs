//! `run`: the daemon.

use crate::config::Config;
use crate::wire::{agent, wire, Role};
use crate::{endpoint, errors};
use anyhow::Result;
use felhom_quiesce::CancellationToken;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn run(config: Config) -> Result<ExitCode> {
    // First: a signal during the crash recovery must not kill the process mid-start.
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    // SPEC §2 rule 3: a crashed cycle's stacks come back before anything else that could fail
    // — a broken agent setting or a busy status port must not keep them down.
    let agent = agent(&config);
    let wired = wire(
        &config,
        Role::Daemon,
        agent.as_ref().ok().cloned().flatten(),
        Arc::new(()),
    )?;
    if let Err(e) = agent {
        if let Err(problem) = wired.controller.recover(&cancel).await {
            tracing::error!("crash recovery: {problem}");
        }
        return Err(e);
    }
    if let Some(addr) = config.status.listen.0 {
        if let Err(e) = endpoint::serve(addr, wired.controller.clone(), cancel.clone()).await {
            tracing::error!("the status endpoint is off: {}", errors::chain(&e));
        }
    }
    tracing::info!(pid = std::process::id(), "felhom-controller running");
    wired.controller.run(&cancel).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
