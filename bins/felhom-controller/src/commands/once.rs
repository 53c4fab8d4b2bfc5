//! `once [--force]`: one cycle now if due.

use crate::config::Config;
use crate::wire::{agent, wire, Role};
use anyhow::Result;
use felhom_quiesce::{CancellationToken, Once};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn once(config: Config, force: bool) -> Result<ExitCode> {
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    let wired = wire(&config, Role::Command, agent(&config)?, Arc::new(()))?;
    match wired.controller.run_once(force, &cancel).await? {
        Once::NotDue(due) => {
            println!(
                "not due{}{}",
                due.reason.map(|r| format!(": {r}")).unwrap_or_default(),
                due.next_due_at
                    .map(|t| format!(" (next due at {t})"))
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Once::Ran(record) => {
            super::print_record(&record)?;
            if super::left_undone(&wired.controller) {
                return Ok(ExitCode::from(1));
            }
            Ok(super::exit_for(&record))
        }
    }
}
