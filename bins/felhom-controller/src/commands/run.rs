//! `run`: the daemon.

use crate::wire;
use anyhow::Result;
use felhom_ops::config::{AgentSetting, Config};
use felhom_ops::{Metrics, NotifySocket, Service};
use felhom_quiesce::CancellationToken;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn run(mut config: Config, manager: NotifySocket) -> Result<ExitCode> {
    // First: a signal during the start-up recovery must not kill the process mid-start.
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    for note in config.notes() {
        tracing::warn!("{note}");
    }
    let metrics = Arc::new(Metrics::new(config.quiesce.max_quiesce));
    let observer = wire::observer(&config, metrics.clone(), Arc::new(manager));
    let setting = std::mem::replace(&mut config.agent, AgentSetting::Absent);
    let agent = wire::daemon_agent(setting, &metrics);
    let state = Arc::new(wire::state_dir(&config)?);
    let cycle = config.cycle_config().for_daemon();
    let controller = wire::controller(&config, cycle, agent, state.clone(), observer.clone())?;
    let listener = felhom_ops::Endpoint::bind(config.status.listen.0).await;
    let state = state.view();
    Service {
        controller,
        observer,
        state,
        listener,
    }
    .run(&cancel)
    .await;
    Ok(ExitCode::SUCCESS)
}
