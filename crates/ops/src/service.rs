//! [`Service`]: the daemon as its service manager and its operator see it, around the
//! controller's loop. The order of its start is a rule (SPEC §2 rule 3, §7): nothing that can
//! fail for an unrelated reason — a status port taken, an agent setting that cannot be used, a
//! notification target — comes between the process's start and the loop, whose first work is
//! the crash recovery; `READY=1` comes as soon as the status listener is up and the loop runs,
//! not after the recovery (which waits as long as the engine is away).

use crate::endpoint::Endpoint;
use crate::metrics::Metrics;
use crate::observer::OpsObserver;
use felhom_marker::StateView;
use felhom_quiesce::{error_chain, CancellationToken, Controller};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long the daemon waits, before it exits, for notifications still being delivered (the
/// stacks are back by then; this only delays the exit).
pub const DRAIN: Duration = Duration::from_secs(5);

/// How many records are searched for the last success at the start.
const HISTORY_SCAN: usize = 200;

/// The daemon's parts, built by whoever embeds it (the binary: from the config).
#[derive(Debug)]
pub struct Service {
    /// The controller, built for the daemon (`CycleConfig::for_daemon`).
    pub controller: Controller,
    /// The controller's observer (the same one its collaborators were given); its registry
    /// ([`OpsObserver::metrics`]) is the one the endpoint serves.
    pub observer: Arc<OpsObserver>,
    /// The state directory, as the endpoint and the restored gauges read it.
    pub state: StateView,
    /// The status endpoint's bound socket; `None`: off (`status.listen = ""`, or it could
    /// not be bound, which the caller logged).
    pub listener: Option<TcpListener>,
}

impl Service {
    /// Runs the daemon until `cancel` fires and any stacks it stopped are back: `STOPPING=1`
    /// from the first cancel on (also during the start-up recovery), the status endpoint,
    /// `READY=1`, then the controller's loop — recovery first.
    pub async fn run(self, cancel: &CancellationToken) {
        let Service {
            controller,
            observer,
            state,
            listener,
        } = self;
        let metrics = observer.metrics().clone();
        let stopping = {
            let (cancel, observer) = (cancel.clone(), observer.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                observer.stopping();
            })
        };
        restore(&metrics, &state).await;
        if let Some(listener) = listener {
            let endpoint = Endpoint {
                controller: controller.clone(),
                metrics: metrics.clone(),
                state,
            };
            tokio::spawn(endpoint.serve(listener, cancel.clone().cancelled_owned()));
        }
        observer.ready();
        tracing::info!(pid = std::process::id(), "felhom-controller running");
        controller.run(cancel).await;
        // `run` returns only once cancelled; STOPPING=1 is then sent (or on its way).
        if let Err(e) = stopping.await {
            tracing::debug!("the stop notifier: {e}");
        }
        observer.drain(DRAIN).await;
        tracing::info!("stopped");
    }
}

/// The last-cycle gauges from the history, so that a restart does not look like a guest that
/// never backed up. Read off the runtime's workers; a failure is a warning.
async fn restore(metrics: &Metrics, state: &StateView) {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || state.history(HISTORY_SCAN)).await {
        Ok(Ok(records)) => {
            let success = records.iter().rev().find(|r| r.succeeded());
            metrics.restore(records.last(), success);
        }
        Ok(Err(e)) => tracing::warn!("reading the history for the metrics: {}", error_chain(&e)),
        Err(e) => tracing::warn!("reading the history for the metrics: {e}"),
    }
}
