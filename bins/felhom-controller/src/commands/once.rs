//! `once [--force]`: one cycle now if due.

use crate::wire;
use anyhow::Result;
use felhom_agentapi::AgentApi;
use felhom_ops::config::Config;
use felhom_ops::{NotifySocket, DRAIN};
use felhom_quiesce::{CancellationToken, IfDue};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn once(config: Config, manager: NotifySocket, force: bool) -> Result<ExitCode> {
    // First: a signal from here on resumes whatever is down, then the process exits.
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    let agent = wire::agent_client(&config)?.map(|c| Arc::new(c) as Arc<dyn AgentApi>);
    let (controller, observer) = wire::command_controller(&config, manager, agent)?;
    let code = match controller.run_if_due(force, &cancel).await? {
        IfDue::NotDue(due) => {
            say!(
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
            if super::left_undone(&controller) {
                ExitCode::from(1)
            } else {
                super::exit_for(&record)
            }
        }
    };
    // The record is out; the notifications of the cycle get a bounded time to leave.
    observer.drain(DRAIN).await;
    Ok(code)
}
