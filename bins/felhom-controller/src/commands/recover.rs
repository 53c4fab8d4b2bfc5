//! `recover [--if-stale]`: restarts the stacks named in a marker and clears it; tries the
//! stranded stacks again at once.

use crate::{errors, wire};
use anyhow::Result;
use felhom_ops::config::Config;
use felhom_ops::{Inspection, NotifySocket, DRAIN};
use felhom_quiesce::{CancellationToken, CycleError};
use std::process::ExitCode;

pub(crate) async fn recover(
    config: Config,
    manager: NotifySocket,
    if_stale: bool,
) -> Result<ExitCode> {
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    if if_stale {
        let look = Inspection::of(&wire::state_view(&config)?);
        if let Some(why) = look.why_not_stale(config.quiesce.max_quiesce) {
            say!("nothing to recover: {why}");
            return Ok(ExitCode::SUCCESS);
        }
        tracing::warn!(
            "a stale marker that no process holds: recovering it (the daemon is dead or wedged)"
        );
    }
    // The agent is only asked how the marker's backup ended: a broken agent setting must not
    // keep the stacks down.
    let agent = wire::agent_if_usable(&config);
    let (controller, observer) = wire::command_controller(&config, manager, agent)?;
    let recovery = match controller.recover(&cancel).await {
        Ok(recovery) => recovery,
        // Between the look and the lock a daemon began a cycle: that one is alive.
        Err(CycleError::Busy(holder)) if if_stale => {
            say!("nothing to recover: the lock was taken meanwhile ({holder})");
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
    let mut ok = true;
    match recovery.record {
        Some(record) => {
            super::print_record(&record)?;
            ok &= record.stranded.is_empty();
        }
        None => say!("no marker: nothing to recover"),
    }
    if !still.is_empty() {
        tell!(
            "felhom-controller: still stranded: {} — start them by hand and check their logs \
             (`felhom-controller forget <stack>` for one taken down on purpose)",
            still.join(", ")
        );
        ok = false;
    }
    ok &= !super::left_undone(&controller);
    observer.drain(DRAIN).await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
