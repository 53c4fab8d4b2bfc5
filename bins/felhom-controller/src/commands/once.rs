//! `once [--force]`: one cycle now if due.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::wire::{self, agent, wire, Role};
use anyhow::Result;
use felhom_quiesce::{CancellationToken, IfDue};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn once(config: Config, force: bool) -> Result<ExitCode> {
    // First: a signal from here on resumes whatever is down, then the process exits.
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    let watch = wire::watch(&config, Arc::new(Metrics::new(config.quiesce.max_quiesce)))?;
    let wired = wire(&config, Role::Command, agent(&config)?, watch.clone())?;
    let code = match wired.controller.run_if_due(force, &cancel).await? {
        IfDue::NotDue(due) => {
            println!(
                "not due{}{}",
                due.reason.map(|r| format!(": {r}")).unwrap_or_default(),
                due.next_due_at
                    .map(|t| format!(" (next due at {t})"))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        IfDue::Ran(record) => {
            super::print_record(&record)?;
            if super::left_undone(&wired.controller) {
                ExitCode::from(1)
            } else {
                super::exit_for(&record)
            }
        }
    };
    // The record is out; the notifications of the cycle get a bounded time to leave.
    watch.drain(super::DRAIN).await;
    Ok(code)
}
