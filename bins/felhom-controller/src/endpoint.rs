//! The status endpoint: `/status` (the live status as JSON) and `/metrics` (Prometheus text).

use anyhow::{Context, Result};
use felhom_marker::Outcome;
use felhom_quiesce::{max_downtime_ms, CancellationToken, Controller, Live};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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

/// The most connections served at once; one more is closed at once. The endpoint is for a
/// local scraper and a person: a few are plenty, and a pile of idle connections must not take
/// the file descriptors the resume needs.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request's headers, also the first one: an idle
/// connection is closed after this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives, whatever it does.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

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
    tokio::spawn(accept(listener, controller, cancel));
    Ok(())
}

/// Accepts connections until `cancel` fires, at most [`MAX_CONNECTIONS`] at once, each
/// bounded by [`HEADER_TIMEOUT`] and [`CONNECTION_LIFETIME`].
async fn accept(listener: TcpListener, controller: Controller, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("status endpoint: {e}");
                    // Out of file descriptors, typically: let some close before trying again.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("status endpoint: {MAX_CONNECTIONS} connections open, one refused");
            drop(stream);
            continue;
        };
        let controller = controller.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let live = controller.live();
                async move { respond(req.uri().path(), &live) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(io, service);
            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("status endpoint connection: {e}"),
                Err(_) => tracing::debug!("status endpoint connection: open too long, closed"),
            }
        });
    }
}

fn respond(path: &str, live: &Live) -> Result<Response<Full<Bytes>>, hyper::http::Error> {
    let (status, kind, body) = match path {
        "/status" => (
            StatusCode::OK,
            "application/json",
            status_json(live).to_string(),
        ),
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", metrics(live)),
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

    struct NoLock;
    impl felhom_quiesce::CycleLock for NoLock {
        fn acquire(&self) -> Result<Box<dyn std::fmt::Debug + Send + Sync>, String> {
            Ok(Box::new(()))
        }
    }

    /// Whether the server closed `stream` (a read ends) within `limit`.
    async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(limit, stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn idle_connections_are_limited_and_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpStream;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let controller = felhom_quiesce::Controller::new(
            felhom_quiesce::Parts {
                agent: None,
                stacks: Arc::new(felhom_stacks::fake::FakeStacks::default()),
                marker: Arc::new(felhom_marker::fake::FakeState::default()),
                history: Arc::new(felhom_marker::fake::FakeState::default()),
                stranded: Arc::new(felhom_marker::fake::FakeState::default()),
                lock: Arc::new(NoLock),
                observer: Arc::new(()),
            },
            felhom_quiesce::CycleConfig::default(),
        );
        tokio::spawn(accept(listener, controller, cancel.clone()));
        // Idle connections that never send a byte take every slot...
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...so one more is closed at once, not kept open beside them.
        let mut extra = TcpStream::connect(addr).await.expect("connect");
        assert!(closed_within(&mut extra, Duration::from_secs(3)).await);
        // Each idle one is closed after the header timeout (bound generous: it catches a hang).
        for stream in &mut idle {
            assert!(closed_within(stream, HEADER_TIMEOUT * 3).await);
        }
        // And the endpoint answers again.
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(b"GET /status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        cancel.cancel();
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
