//! `run`: the daemon.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::wire::{self, agent, wire_watched, Role};
use crate::{endpoint, errors, systemd};
use anyhow::Result;
use felhom_marker::HistoryStore;
use felhom_quiesce::CancellationToken;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) async fn run(config: Config) -> Result<ExitCode> {
    // First: a signal during the crash recovery must not kill the process mid-start.
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone())?;
    let metrics = Arc::new(Metrics::new(config.quiesce.max_quiesce));
    let watch = wire::watch(&config, metrics.clone())?;
    // SPEC §2 rule 3: a crashed cycle's stacks come back before anything else that could fail
    // — a broken agent setting or a busy status port must not keep them down.
    let agent = agent(&config);
    let counted = agent
        .as_ref()
        .ok()
        .cloned()
        .flatten()
        .map(|a| wire::counted(a, &metrics));
    let wired = wire_watched(
        &config,
        Role::Daemon,
        counted,
        watch.clone(),
        Some(&metrics),
    )?;
    // The daemon's start: crash recovery, once, before anything else.
    let daemon = wired.controller.start_daemon(&cancel).await;
    if let Err(e) = agent {
        watch.drain(super::DRAIN).await;
        return Err(e);
    }
    // SPEC §7: READY=1 only once the recovery is done and the status listener is up.
    restore_metrics(&config, &metrics);
    if let Some(addr) = config.status.listen.0 {
        let state = Arc::new(wire::state_view(&config)?);
        let served = endpoint::Served {
            controller: wired.controller.clone(),
            metrics: metrics.clone(),
            state,
        };
        if let Err(e) = endpoint::serve(addr, served, cancel.clone()).await {
            tracing::error!("the status endpoint is off: {}", errors::chain(e.as_ref()));
        }
    }
    systemd::ready();
    tracing::info!(pid = std::process::id(), "felhom-controller running");
    let stop = {
        let (cancel, watch) = (cancel.clone(), watch.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            watch.stopping();
        })
    };
    daemon.run(&cancel).await;
    // `run` returns only once cancelled; STOPPING=1 is then sent (or on its way).
    if let Err(e) = stop.await {
        tracing::debug!("the stop notifier: {e}");
    }
    watch.drain(super::DRAIN).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The last-cycle gauges from the history, so that a restart does not look like a guest that
/// never backed up.
fn restore_metrics(config: &Config, metrics: &Metrics) {
    let history = wire::state_dir(config).and_then(|s| Ok(s.recent(HISTORY_SCAN)?));
    match history {
        Ok(records) => {
            let success = records.iter().rev().find(|r| r.succeeded());
            metrics.restore(records.last(), success);
        }
        Err(e) => tracing::warn!(
            "reading the history for the metrics: {}",
            errors::chain(e.as_ref())
        ),
    }
}

/// How many records are searched for the last success at startup.
const HISTORY_SCAN: usize = 200;
