//! `recover`: restarts the stacks named in a marker, clears it.

use crate::config::Config;
use crate::errors;
use crate::wire::{agent, wire};
use anyhow::Result;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn recover(config: Config) -> Result<ExitCode> {
    // The agent is only asked how the marker's backup ended: a broken agent setting must not
    // keep the stacks down.
    let agent = agent(&config).unwrap_or_else(|e| {
        tracing::warn!(
            "the agent cannot be asked about the backup: {}",
            errors::chain(&e)
        );
        None
    });
    let wired = wire(&config, agent, Arc::new(()))?;
    match wired.controller.recover().await? {
        Some(record) => {
            super::print_record(&record)?;
            Ok(if record.stranded.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        None => {
            println!("no marker: nothing to recover");
            Ok(ExitCode::SUCCESS)
        }
    }
}
