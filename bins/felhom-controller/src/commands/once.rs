//! `once [--force]`: one cycle now if due.

use crate::config::Config;
use crate::wire::{agent, wire};
use anyhow::Result;
use felhom_quiesce::{CancellationToken, Once};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn once(config: Config, force: bool) -> Result<ExitCode> {
    let wired = wire(&config, agent(&config)?, Arc::new(()))?;
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
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
            Ok(super::exit_for(&record))
        }
    }
}
