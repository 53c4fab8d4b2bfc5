//! The status endpoint: `/status` (the live status as JSON) and `/metrics` (Prometheus text).

use anyhow::{Context, Result};
use felhom_marker::Outcome;
use felhom_quiesce::{max_downtime_ms, CancellationToken, Controller, Live};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;

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

fn metrics(live: &Live) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP felhom_cycles_total Quiesce cycles finished by this process, by outcome.\n",
    );
    out.push_str("# TYPE felhom_cycles_total counter\n");
    for outcome in [
        "done",
        "failed",
        "lost",
        "bounded",
        "cancelled",
        "recovered",
    ] {
        let n = live
            .cycles
            .iter()
            .find(|(o, _)| outcome_name(*o) == outcome)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        out.push_str(&format!(
            "felhom_cycles_total{{outcome=\"{outcome}\"}} {n}\n"
        ));
    }
    let stranded = live.stranded().len();
    out.push_str("# HELP felhom_stranded_stacks Stacks the last cycle could not start again.\n");
    out.push_str("# TYPE felhom_stranded_stacks gauge\n");
    out.push_str(&format!("felhom_stranded_stacks {stranded}\n"));
    out.push_str("# HELP felhom_cycle_running Whether a cycle runs now.\n# TYPE felhom_cycle_running gauge\n");
    out.push_str(&format!(
        "felhom_cycle_running {}\n",
        u8::from(live.phase.is_some())
    ));
    if let Some(last) = &live.last {
        out.push_str("# HELP felhom_last_cycle_max_downtime_seconds The longest downtime of a stack in the last cycle.\n");
        out.push_str("# TYPE felhom_last_cycle_max_downtime_seconds gauge\n");
        out.push_str(&format!(
            "felhom_last_cycle_max_downtime_seconds {:.3}\n",
            max_downtime_ms(last) as f64 / 1000.0
        ));
        out.push_str(
            "# HELP felhom_last_cycle_finished_timestamp_seconds When the last cycle finished.\n",
        );
        out.push_str("# TYPE felhom_last_cycle_finished_timestamp_seconds gauge\n");
        out.push_str(&format!(
            "felhom_last_cycle_finished_timestamp_seconds {}\n",
            last.finished_at.timestamp()
        ));
    }
    out
}

/// Serves `/status` and `/metrics` on `addr` (`status.listen`) until `cancel` fires.
pub(crate) async fn serve(
    addr: SocketAddr,
    controller: Controller,
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
            let controller = controller.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let live = controller.live();
                        async move {
                            let (status, kind, body) = match req.uri().path() {
                                "/status" => (
                                    StatusCode::OK,
                                    "application/json",
                                    status_json(&live).to_string(),
                                ),
                                "/metrics" => {
                                    (StatusCode::OK, "text/plain; version=0.0.4", metrics(&live))
                                }
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
    use felhom_marker::{CycleRecord, StackRecord};

    fn record(stranded: &[&str]) -> CycleRecord {
        let now = Utc::now();
        CycleRecord {
            cycle_id: "c-1".into(),
            started_at: now,
            finished_at: now,
            outcome: Outcome::Done,
            backup_id: Some("b-1".into()),
            snapshot_at: None,
            agent_phase: None,
            stacks: vec![
                StackRecord {
                    name: "a".into(),
                    services: vec![],
                    stop_started_at: None,
                    stopped_at: None,
                    started_at: None,
                    downtime_ms: Some(1500),
                },
                StackRecord {
                    name: "b".into(),
                    services: vec![],
                    stop_started_at: None,
                    stopped_at: None,
                    started_at: None,
                    downtime_ms: Some(2250),
                },
            ],
            stranded: stranded.iter().map(|s| (*s).to_owned()).collect(),
            errors: vec![],
        }
    }

    #[test]
    fn metrics_count_outcomes_and_report_stranded_and_downtime() {
        let live = Live {
            phase: None,
            last: Some(record(&["b"])),
            cycles: vec![(Outcome::Done, 3), (Outcome::Bounded, 1)],
            stranded_stacks: vec![felhom_marker::StrandedStack {
                name: "b".into(),
                services: vec!["app".into()],
                cycle_id: "c-1".into(),
                since: Utc::now(),
                attempts: 5,
                last_error: "exited (1)".into(),
            }],
            ..Live::default()
        };
        let text = metrics(&live);
        assert!(
            text.contains("felhom_cycles_total{outcome=\"done\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("felhom_cycles_total{outcome=\"bounded\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("felhom_cycles_total{outcome=\"failed\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("felhom_stranded_stacks 1\n"), "{text}");
        assert!(text.contains("felhom_cycle_running 0\n"), "{text}");
        assert!(
            text.contains("felhom_last_cycle_max_downtime_seconds 2.250\n"),
            "{text}"
        );
        let json = status_json(&live);
        assert_eq!(json["stranded"], serde_json::json!(["b"]));
        assert_eq!(json["cycles"]["done"], 3);
    }
}
