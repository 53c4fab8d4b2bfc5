//! The status endpoint: `/status` (the live status as JSON) and `/metrics` (Prometheus text).

use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::status::Look;
use anyhow::{Context, Result};
use felhom_marker::{Outcome, StateDir};
use felhom_quiesce::{CancellationToken, Controller, Live};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// An outcome as the history and the status JSON spell it (its serde name).
pub(crate) fn outcome_name(outcome: Outcome) -> String {
    match serde_json::to_value(outcome) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{outcome:?}"),
    }
}

/// `/status`: the live status as the quiesce crate serialises it, plus the stranded stacks.
fn status_json(live: &Live) -> serde_json::Value {
    let mut doc = serde_json::to_value(live).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    doc["stranded"] = json!(live.stranded());
    doc
}

/// What the endpoint serves from: the live status, the metrics, the state directory.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub controller: Controller,
    pub metrics: Arc<Metrics>,
    pub state: Arc<StateDir>,
}

impl Served {
    /// `/metrics`: the gauges that describe the present are read now (the marker's age, the
    /// stranded list, the stacks held down), the rest were counted as things happened.
    fn metrics(&self) -> String {
        let look = Look::files(&self.state);
        let live = self.controller.live();
        self.metrics.set_marker_age(look.marker_age);
        self.metrics
            .set_stranded(look.stranded_names(live.last.as_ref()).len());
        let held = match &look.marker {
            Ok(Some(m)) => m.stacks.len(),
            _ => 0,
        };
        self.metrics.set_stacks_quiesced(held);
        self.metrics.set_cycle_running(live.phase.is_some());
        // The engine's reachability is set from the stacks calls' answers (counted.rs).
        self.metrics.encode()
    }
}

/// Serves `/status` and `/metrics` on `addr` (`status.listen`) until `cancel` fires.
pub(crate) async fn serve(
    addr: SocketAddr,
    served: Served,
    cancel: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("status.listen: binding {addr}"))?;
    tracing::info!("status endpoint on http://{addr}/status and /metrics");
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("status endpoint: {e}");
                        continue;
                    }
                },
                () = cancel.cancelled() => return,
            };
            let served = served.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let served = served.clone();
                        async move {
                            let (status, kind, body) = match req.uri().path() {
                                "/status" => (
                                    StatusCode::OK,
                                    "application/json",
                                    status_json(&served.controller.live()).to_string(),
                                ),
                                "/metrics" => (StatusCode::OK, CONTENT_TYPE, served.metrics()),
                                _ => (
                                    StatusCode::NOT_FOUND,
                                    "text/plain",
                                    "not found\n".to_owned(),
                                ),
                            };
                            Response::builder()
                                .status(status)
                                .header("content-type", kind)
                                .body(Full::new(Bytes::from(body)))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!("status endpoint connection: {e}");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use felhom_marker::CycleRecord;

    #[test]
    fn the_status_json_names_the_stranded_stacks_and_counts_by_outcome() {
        let now = Utc::now();
        let record = CycleRecord {
            cycle_id: "c-1".into(),
            started_at: now,
            finished_at: now,
            outcome: Outcome::Done,
            backup_id: None,
            snapshot_at: None,
            agent_phase: None,
            stacks: vec![],
            stranded: vec!["b".into()],
            errors: vec![],
        };
        let live = Live {
            phase: None,
            last: Some(record),
            cycles: vec![(Outcome::Done, 3), (Outcome::Bounded, 1)],
            next_check_at: None,
        };
        let json = status_json(&live);
        assert_eq!(json["stranded"], serde_json::json!(["b"]));
        assert_eq!(json["cycles"]["done"], 3);
    }
}
