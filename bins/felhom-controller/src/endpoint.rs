//! The status endpoint: `/status` (the live status as JSON) and `/metrics` (Prometheus text).
//!
//! It has no authentication: it carries no app output (every text of `/status` is one line of
//! the controller's own words, see `brief.rs`), listens on loopback unless
//! `status.allow_remote` says otherwise, and no client can keep the others out: a bounded
//! number of connections, each closed after one answer, and when all are taken a newcomer
//! closes a connection that is still waiting for its request, from the peer that holds the
//! most.

use crate::brief;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::status::Look;
use anyhow::{Context, Result};
use felhom_marker::StateView;
use felhom_quiesce::{CancellationToken, Controller, Overview};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// `/status`: the controller's overview as the quiesce crate serialises it, plus the
/// stranded stacks; every text in it cut to its first line (an error's later lines, such as a
/// failed start's container log lines, stay in the journal and the state directory).
fn status_json(overview: &Overview) -> serde_json::Value {
    let mut doc =
        serde_json::to_value(overview).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    doc["stranded"] = json!(overview.stranded());
    brief::one_line_strings(&mut doc);
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

/// The most connections open at once. The endpoint is for a scraper and a person: a few are
/// plenty, and a pile of connections must not take the file descriptors the resume needs.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request's headers: a connection that sends none is
/// closed after this (or sooner, to make room).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives, whatever it does. It serves one request (no keep-alive):
/// a connection held open between requests would keep a slot from a scraper.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

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
    tokio::spawn(accept(listener, served, Arc::new(Slots::default()), cancel));
    Ok(())
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct Slots {
    open: std::sync::Mutex<Vec<Slot>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    peer: IpAddr,
    /// Until its request's head has arrived: until then it may be closed to make room.
    waiting: Arc<AtomicBool>,
    evict: Option<oneshot::Sender<()>>,
}

/// A connection's place among the [`Slots`], given up when dropped.
#[derive(Debug)]
struct Admitted {
    id: u64,
    slots: Arc<Slots>,
    waiting: Arc<AtomicBool>,
    evicted: oneshot::Receiver<()>,
}

impl Slots {
    fn open(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `peer`. When all [`MAX_CONNECTIONS`] are taken, the
    /// one to close is a connection still waiting for its request, of the peer that holds the
    /// most connections, the oldest of them: a client looping on connections then only ever
    /// displaces itself, and a scraper, which sends its request at once, gets in. `None` when
    /// every open connection is being answered (which takes milliseconds).
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let mut open = self.open();
        if open.len() >= MAX_CONNECTIONS {
            let held_by = |ip: IpAddr| open.iter().filter(|s| s.peer == ip).count();
            let victim = open
                .iter()
                .enumerate()
                .filter(|(_, s)| s.waiting.load(Ordering::SeqCst))
                // The most held first; of those, the oldest (`max_by_key` keeps the last max).
                .rev()
                .max_by_key(|(_, s)| held_by(s.peer))
                .map(|(i, _)| i)?;
            let mut slot = open.remove(victim);
            if let Some(evict) = slot.evict.take() {
                let _ = evict.send(());
            }
        }
        let (evict, evicted) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let waiting = Arc::new(AtomicBool::new(true));
        open.push(Slot {
            id,
            peer,
            waiting: waiting.clone(),
            evict: Some(evict),
        });
        Some(Admitted {
            id,
            slots: self.clone(),
            waiting,
            evicted,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open().len()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.slots.open().retain(|s| s.id != self.id);
    }
}

/// Accepts connections until `cancel` fires, at most [`MAX_CONNECTIONS`] at once, each
/// bounded by [`HEADER_TIMEOUT`] and [`CONNECTION_LIFETIME`] and answering one request.
async fn accept(
    listener: TcpListener,
    served: Served,
    slots: Arc<Slots>,
    cancel: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
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
        let Some(mut admitted) = slots.admit(peer.ip()) else {
            tracing::debug!(
                "status endpoint: {MAX_CONNECTIONS} connections being answered, one refused"
            );
            drop(stream);
            continue;
        };
        let served = served.clone();
        tokio::spawn(async move {
            let waiting = admitted.waiting.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                waiting.store(false, Ordering::SeqCst);
                let response = respond(req.uri().path(), &served);
                async move { response }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(io, service);
            tokio::select! {
                served = tokio::time::timeout(CONNECTION_LIFETIME, connection) => match served {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!("status endpoint connection: {e}"),
                    Err(_) => tracing::debug!("status endpoint connection: open too long, closed"),
                },
                _ = &mut admitted.evicted => {
                    tracing::debug!("status endpoint connection: no request yet, closed to make room");
                }
            }
            drop(admitted);
        });
        // The new connection's task reads its request before the next accept may pick it to
        // make room.
        tokio::task::yield_now().await;
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
mod tests;
