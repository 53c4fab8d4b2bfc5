//! `recover`: restarts the stacks named in a marker and clears it; tries the stranded stacks
//! again at once.

use crate::config::Config;
use crate::errors;
use crate::wire::{agent, wire, Role};
use anyhow::Result;
use felhom_quiesce::{CancellationToken, CycleError};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn recover(config: Config) -> Result<ExitCode> {
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    // The agent is only asked how the marker's backup ended: a broken agent setting must not
    // keep the stacks down.
    let agent = agent(&config).unwrap_or_else(|e| {
        tracing::warn!(
            "the agent cannot be asked about the backup: {}",
            errors::chain(&e)
        );
        None
    });
    let wired = wire(&config, Role::Command, agent, Arc::new(()))?;
    let controller = &wired.controller;
    let recovered = controller.recover(&cancel).await?;
    let still = match controller.retry_stranded(&cancel).await {
        Ok(still) => still,
        Err(e @ CycleError::Busy(_)) => return Err(e.into()),
        Err(e) => {
            tracing::error!("the stranded stacks: {e}");
            vec!["(unknown: the stranded list cannot be read)".to_owned()]
        }
    };
    let mut ok = true;
    match recovered {
        Some(record) => {
            super::print_record(&record)?;
            ok &= record.stranded.is_empty();
        }
        None => println!("no marker: nothing to recover"),
    }
    if !still.is_empty() {
        eprintln!(
            "felhom-controller: still stranded: {} — start them by hand and check their logs",
            still.join(", ")
        );
        ok = false;
    }
    ok &= !super::left_undone(controller);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
