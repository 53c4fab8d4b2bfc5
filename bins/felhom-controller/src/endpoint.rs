//! The status endpoint: `/status` (the live status as JSON) and `/metrics` (Prometheus text).

use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::status::Look;
use anyhow::{Context, Result};
use felhom_marker::StateView;
use felhom_quiesce::{CancellationToken, Controller, Overview};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// `/status`: the controller's overview as the quiesce crate serialises it, plus the
/// stranded stacks.
fn status_json(overview: &Overview) -> serde_json::Value {
    let mut doc =
        serde_json::to_value(overview).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    doc["stranded"] = json!(overview.stranded());
    doc
}

/// What the endpoint serves from: the live status, the metrics, the state directory.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub controller: Controller,
    pub metrics: Arc<Metrics>,
    pub state: Arc<StateView>,
}

impl Served {
    /// `/metrics`: the gauges that describe the present are read now (the marker's age, the
    /// stranded list, the stacks held down), the rest were counted as things happened.
    fn metrics(&self) -> String {
        let look = Look::files(&self.state);
        let overview = self.controller.overview();
        self.metrics.set_marker_age(look.marker_age);
        self.metrics.set_stranded(look.stranded.len());
        let held = match &look.marker {
            Ok(Some(m)) => m.stacks.len(),
            _ => 0,
        };
        self.metrics.set_stacks_quiesced(held);
        self.metrics.set_cycle_running(overview.phase.is_some());
        // The engine's reachability is set from the stacks calls' answers (counted.rs).
        self.metrics.encode()
    }
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
    served: Served,
    cancel: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("status.listen: binding {addr}"))?;
    tracing::info!("status endpoint on http://{addr}/status and /metrics");
    tokio::spawn(accept(listener, served, cancel));
    Ok(())
}

/// Accepts connections until `cancel` fires, at most [`MAX_CONNECTIONS`] at once, each
/// bounded by [`HEADER_TIMEOUT`] and [`CONNECTION_LIFETIME`].
async fn accept(listener: TcpListener, served: Served, cancel: CancellationToken) {
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
        let served = served.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(req.uri().path(), &served);
                async move { response }
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

fn respond(path: &str, served: &Served) -> Result<Response<Full<Bytes>>, hyper::http::Error> {
    let (status, kind, body) = match path {
        "/status" => (
            StatusCode::OK,
            "application/json",
            status_json(&served.controller.overview()).to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use felhom_marker::{CycleRecord, Outcome, StrandedStack};

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
            waiting_for_engine: vec![],
            errors: vec![],
        };
        let overview = Overview {
            phase: None,
            last: Some(record),
            cycles: vec![(Outcome::Done, 3), (Outcome::Bounded, 1)],
            next_check_at: None,
            // The persisted list (SPEC §2 rule 6), which the daemon keeps in its live status.
            stranded_stacks: vec![StrandedStack {
                name: "b".into(),
                services: vec!["app".into()],
                cycle_id: "c-1".into(),
                since: now,
                attempts: 5,
                last_error: "it exited".into(),
                containers: vec![],
            }],
            ..Overview::default()
        };
        let json = status_json(&overview);
        assert_eq!(json["stranded"], serde_json::json!(["b"]));
        assert_eq!(json["cycles"]["done"], 3);
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
            felhom_quiesce::Collaborators::in_memory(
                None,
                Arc::new(felhom_stacks::fake::FakeStacks::default()),
                Arc::new(felhom_marker::fake::FakeState::default()),
            ),
            felhom_quiesce::CycleConfig::default(),
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = StateView::open(tmp.path().join("state")).expect("state dir");
        let served = Served {
            controller,
            metrics: Arc::new(Metrics::new(Duration::from_secs(1800))),
            state: Arc::new(state),
        };
        tokio::spawn(accept(listener, served, cancel.clone()));
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
}
