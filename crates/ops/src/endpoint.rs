//! The status endpoint: `/status` (the live status as JSON) and `/metrics` (Prometheus text).
//!
//! It has no authentication: it carries no app output (every text of `/status` is one line of
//! the controller's own words, see `brief.rs`), listens on loopback unless
//! `status.allow_remote` says otherwise, and no client can keep the others out: a bounded
//! number of connections, each closed after one answer, and when all are taken a newcomer
//! closes a connection that is still waiting for its request, from the peer that holds the
//! most. The state directory is read off the runtime's workers: a disk that hangs holds up a
//! scrape, never the loop or the other answers.

use crate::brief;
use crate::inspection::Inspection;
use crate::metrics::{Metrics, CONTENT_TYPE};
use felhom_marker::StateView;
use felhom_quiesce::{Controller, Overview};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// `/status`: the controller's overview as the quiesce crate serialises it, plus the
/// stranded stacks; every text in it cut to its first line (an error's later lines, such as a
/// failed start's container log lines, stay in the journal and the state directory), and no
/// hook's output (issue 23: an app's output, kept in the record for `status --json`).
fn status_json(overview: &Overview) -> serde_json::Value {
    let mut doc =
        serde_json::to_value(overview).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    doc["stranded"] = json!(overview.stranded());
    brief::no_hook_output(&mut doc);
    brief::one_line_strings(&mut doc);
    doc
}

/// What the endpoint serves from: the live status, the metrics, the state directory.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The controller whose overview `/status` shows.
    pub controller: Controller,
    /// The registry `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// The state directory, read (never written) at each scrape.
    pub state: StateView,
}

impl Endpoint {
    /// The listener of `status.listen` (`None`: the endpoint is off). A port that cannot be
    /// bound leaves the endpoint off, with an error line, not the daemon; the address bound
    /// (a port 0 made real) is logged.
    pub async fn bind(listen: Option<std::net::SocketAddr>) -> Option<TcpListener> {
        let addr = listen?;
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                let at = listener.local_addr().unwrap_or(addr);
                tracing::info!(address = %at, "status endpoint on http://{at}/status and /metrics");
                Some(listener)
            }
            Err(e) => {
                tracing::error!("the status endpoint is off: status.listen: binding {addr}: {e}");
                None
            }
        }
    }

    /// Serves `/status` and `/metrics` on `listener` until `shutdown` completes (connections
    /// being answered then finish on their own, within their bound).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        accept(listener, self, Arc::new(Slots::default()), shutdown).await;
    }

    /// `/metrics`: the gauges that describe the present are set now — from the state
    /// directory (the marker's age, the stranded list, the stacks held down), read on a
    /// blocking thread, and from the overview — the rest were counted as things happened.
    async fn metrics(&self) -> String {
        let state = self.state.clone();
        let overview = self.controller.overview();
        match tokio::task::spawn_blocking(move || Inspection::files(&state)).await {
            Ok(look) => {
                self.metrics
                    .set_marker_age(look.marker_age.map(|a| a.seconds()));
                // The list's, and those the list could not take (a full disk): the daemon
                // shows them, their marker keeps them.
                let mut stranded = look.stranded_names();
                stranded.extend(overview.stranded());
                stranded.sort();
                stranded.dedup();
                self.metrics.set_stranded(stranded.len());
                self.metrics.set_stacks_quiesced(look.stacks_held());
                self.metrics
                    .set_cycles_refused(look.cycles_refused.is_some());
            }
            Err(e) => tracing::warn!("status endpoint: reading the state directory: {e}"),
        }
        self.metrics.overview(&overview);
        self.metrics.encode()
    }

    async fn respond(&self, path: &str) -> Result<Response<Full<Bytes>>, hyper::http::Error> {
        let (status, kind, body) = match path {
            "/status" => (
                StatusCode::OK,
                "application/json",
                status_json(&self.controller.overview()).to_string(),
            ),
            "/metrics" => (StatusCode::OK, CONTENT_TYPE, self.metrics().await),
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

/// The open connections, oldest first.
#[derive(Debug)]
struct Slots {
    open: std::sync::Mutex<Vec<Slot>>,
    next_id: AtomicU64,
    /// How many are open, for whoever waits for a number (the tests).
    count: watch::Sender<usize>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            open: std::sync::Mutex::default(),
            next_id: AtomicU64::default(),
            count: watch::Sender::new(0),
        }
    }
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
        self.count.send_replace(open.len());
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
        let mut open = self.slots.open();
        open.retain(|s| s.id != self.id);
        self.slots.count.send_replace(open.len());
    }
}

/// Accepts connections until `shutdown` completes, at most [`MAX_CONNECTIONS`] at once, each
/// bounded by [`HEADER_TIMEOUT`] and [`CONNECTION_LIFETIME`] and answering one request.
async fn accept(
    listener: TcpListener,
    endpoint: Endpoint,
    slots: Arc<Slots>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
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
            () = &mut shutdown => return,
        };
        let Some(mut admitted) = slots.admit(peer.ip()) else {
            tracing::debug!(
                "status endpoint: {MAX_CONNECTIONS} connections being answered, one refused"
            );
            drop(stream);
            continue;
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let waiting = admitted.waiting.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                waiting.store(false, Ordering::SeqCst);
                let (endpoint, path) = (endpoint.clone(), req.uri().path().to_owned());
                async move { endpoint.respond(&path).await }
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

#[cfg(test)]
mod tests;
