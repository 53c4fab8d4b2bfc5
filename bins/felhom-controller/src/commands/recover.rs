//! `recover [--if-stale]`: restarts the stacks named in a marker and clears it; tries the
//! stranded stacks again at once.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::wire::{self, agent, wire, Role};
use crate::{errors, status};
use anyhow::Result;
use felhom_quiesce::{CancellationToken, CycleError};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn recover(config: Config, if_stale: bool) -> Result<ExitCode> {
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    if if_stale {
        let look = status::Look::at(&wire::state_view(&config)?);
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
            errors::chain(e.as_ref())
        );
        None
    });
    let watch = wire::watch(&config, Arc::new(Metrics::new(config.quiesce.max_quiesce)))?;
    let wired = wire(&config, Role::Command, agent, watch.clone())?;
    let controller = &wired.controller;
    let recovery = match controller.recover(&cancel).await {
        Ok(recovery) => recovery,
        // Between the look and the lock a daemon began a cycle: that one is alive.
        Err(CycleError::Busy(holder)) if if_stale => {
            println!("nothing to recover: the lock was taken meanwhile ({holder})");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    let mut still = recovery.stranded;
    let mut marker_problem = None;
    for problem in recovery.problems {
        match problem {
            CycleError::StrandedList(_) => {
                tracing::error!("the stranded stacks: {}", errors::chain(&problem));
                still = vec!["(unknown: the stranded list cannot be read)".to_owned()];
            }
            other => marker_problem = marker_problem.or(Some(other)),
        }
    }
    if let Some(e) = marker_problem {
        return Err(e.into());
    }
    let recovered = recovery.record;
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
    watch.drain(super::DRAIN).await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
