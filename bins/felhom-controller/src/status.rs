//! `status`: what the state directory and the agent say, for people (`status` command) and for
//! machines (the status endpoint: `/status` JSON and `/metrics` for Prometheus).

use crate::config::Config;
use anyhow::{Context, Result};
use felhom_marker::{CycleRecord, HistoryStore, Marker, StateDir, StateLock};
use felhom_quiesce::{CancellationToken, Controller, Live};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::process::ExitCode;

/// The marker as it is on disk, read without touching it (no move-aside from here: `status`
/// never changes state).
fn read_marker(state_dir: &std::path::Path) -> Result<Option<Marker>, String> {
    let path = state_dir.join("marker.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} does not parse: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

fn max_downtime_ms(record: &CycleRecord) -> u64 {
    record
        .stacks
        .iter()
        .filter_map(|s| s.downtime_ms)
        .max()
        .unwrap_or(0)
}

pub(crate) async fn print(config: &Config, as_json: bool) -> Result<ExitCode> {
    let state = StateDir::open(&config.quiesce.state_dir)
        .with_context(|| format!("quiesce.state_dir {}", config.quiesce.state_dir.display()))?;
    let marker = read_marker(state.path());
    let holder = StateLock::holder(&state).unwrap_or_else(|e| Some(format!("unknown ({e})")));
    let history = state.recent(10).context("reading the history")?;
    let stranded: Vec<String> = history
        .last()
        .map(|r| r.stranded.clone())
        .unwrap_or_default();
    let due = match crate::agent_client(config) {
        Ok(Some(client)) => {
            use felhom_agentapi::AgentApi;
            Some(client.backup_due().await.map_err(|e| e.to_string()))
        }
        Ok(None) => None,
        Err(e) => Some(Err(format!("{e:#}"))),
    };
    if as_json {
        let doc = json!({
            "marker": match &marker { Ok(m) => json!(m), Err(e) => json!({ "error": e }) },
            "lock_holder_pid": holder,
            "stranded": stranded,
            "history": history,
            "due": match &due {
                None => json!(null),
                Some(Ok(d)) => json!({ "due": d.due, "reason": d.reason, "next_due_at": d.next_due_at }),
                Some(Err(e)) => json!({ "error": e }),
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &marker {
        Ok(None) => println!("marker:   none"),
        Ok(Some(m)) => println!(
            "marker:   cycle {} in phase {:?} (pid {}, since {}), stacks: {}",
            m.cycle_id,
            m.phase,
            m.pid,
            m.started_at.to_rfc3339(),
            m.stacks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => println!("marker:   {e}"),
    }
    match holder {
        Some(pid) => println!("cycle:    running (lock held by pid {pid})"),
        None => println!("cycle:    none running"),
    }
    if stranded.is_empty() {
        println!("stranded: none");
    } else {
        println!(
            "stranded: {} — start them by hand and check their logs",
            stranded.join(", ")
        );
    }
    match &due {
        None => println!("due:      no agent configured"),
        Some(Ok(d)) => println!(
            "due:      {}{}{}",
            if d.due { "now" } else { "not now" },
            d.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            d.next_due_at
                .map(|t| format!(", next at {}", t.to_rfc3339()))
                .unwrap_or_default()
        ),
        Some(Err(e)) => println!("due:      {e}"),
    }
    if history.is_empty() {
        println!("last cycles: none");
    } else {
        println!("last cycles:");
        for r in history.iter().rev() {
            println!(
                "  {}  {:<9}  {} stack(s), max downtime {:.1}s{}{}",
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                format!("{:?}", r.outcome).to_lowercase(),
                r.stacks.len(),
                max_downtime_ms(r) as f64 / 1000.0,
                r.backup_id
                    .as_ref()
                    .map(|b| format!(", backup {b}"))
                    .unwrap_or_default(),
                if r.stranded.is_empty() {
                    String::new()
                } else {
                    format!(", STRANDED {}", r.stranded.join(","))
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status_json(live: &Live) -> serde_json::Value {
    json!({
        "phase": live.phase.map(|p| format!("{p:?}")),
        "last": live.last,
        "cycles": live.cycles.iter().map(|(o, n)| (format!("{o:?}").to_lowercase(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
        "stranded": live.last.as_ref().map(|r| r.stranded.clone()).unwrap_or_default(),
        "next_check_at": live.next_check_at,
    })
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
            .find(|(o, _)| format!("{o:?}").to_lowercase() == outcome)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        out.push_str(&format!(
            "felhom_cycles_total{{outcome=\"{outcome}\"}} {n}\n"
        ));
    }
    let stranded = live.last.as_ref().map(|r| r.stranded.len()).unwrap_or(0);
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

/// Serves `/status` and `/metrics` on `status.listen` until `cancel` fires.
pub(crate) async fn serve(
    config: &Config,
    controller: Controller,
    cancel: CancellationToken,
) -> Result<()> {
    let addr: std::net::SocketAddr = config.status.listen.parse().context("status.listen")?;
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
    use felhom_marker::{Outcome, StackRecord};

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
            next_check_at: None,
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

    #[test]
    fn status_reads_the_marker_without_touching_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(read_marker(dir.path()), Ok(None)));
        std::fs::write(dir.path().join("marker.json"), b"{not json").expect("write");
        let err = read_marker(dir.path()).expect_err("corrupt");
        assert!(err.contains("marker.json"), "{err}");
        // Still there: `status` never moves a marker aside.
        assert!(dir.path().join("marker.json").exists());
    }
}
