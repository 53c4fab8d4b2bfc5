//! `recover [--if-stale]`: restarts the stacks named in a marker, clears it.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::wire::{self, agent, wire};
use crate::{errors, status};
use anyhow::Result;
use felhom_quiesce::CycleError;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn recover(config: Config, if_stale: bool) -> Result<ExitCode> {
    if if_stale {
        let state = wire::state_dir(&config)?;
        let look = status::Look::at(&state);
        if let Some(why) = look.leave_alone(config.quiesce.max_quiesce) {
            println!("nothing to recover: {why}");
            return Ok(ExitCode::SUCCESS);
        }
        tracing::warn!(
            "a stale marker that no process holds: recovering it (the daemon is dead or wedged)"
        );
    }
    // The agent is only asked how the marker's backup ended: a broken agent setting must not
    // keep the stacks down.
    let agent = agent(&config).unwrap_or_else(|e| {
        tracing::warn!(
            "the agent cannot be asked about the backup: {}",
            errors::chain(&e)
        );
        None
    });
    let watch = wire::watch(&config, Arc::new(Metrics::new(config.quiesce.max_quiesce)))?;
    let wired = wire(&config, agent, watch.clone())?;
    let recovered = wired.controller.recover().await;
    let code = match recovered {
        Ok(Some(record)) => {
            super::print_record(&record)?;
            if record.stranded.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Ok(None) => {
            println!("no marker: nothing to recover");
            ExitCode::SUCCESS
        }
        // Between the look and the lock a daemon began a cycle: that one is alive.
        Err(CycleError::Busy(holder)) if if_stale => {
            println!("nothing to recover: the lock was taken meanwhile ({holder})");
            ExitCode::SUCCESS
        }
        Err(e) => return Err(e.into()),
    };
    watch.drain(super::DRAIN).await;
    Ok(code)
}
