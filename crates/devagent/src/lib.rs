//! The development agent: a stand-in for the host-side backup agent that serves the agent API
//! v1 (SPEC §3) over HTTPS, so tests, demos and developers can run a whole quiesce cycle without
//! a Proxmox host.
//!
//! It is deliberately independent of `felhom-agentapi`: a server written from the contract
//! catches the client's mistakes instead of sharing them.
//!
//! - **TLS**: a self-signed certificate generated at start (SANs `localhost`, `127.0.0.1`) or
//!   loaded from PEM files; [`DevAgent::pin`] is what the controller pins.
//! - **Backup**: `POST /backup` starts a real job: wait `snapshot_delay`, copy the source
//!   directory to `<out_dir>/<id>/snapshot/` (phase `snapshotted`), wait `archive_delay`, write
//!   `<out_dir>/<id>.tar` of the copy (phase `done`).
//! - **Faults** ([`Fault`]) and the **due mode** ([`DueMode`]) are set at start, through
//!   [`DevAgent::set_faults`] / [`DevAgent::set_due`], or over HTTPS on the control endpoint
//!   (bearer token required, not affected by fault `silent`):
//!   - `GET|POST /control/faults` — body `{"faults": ["status500:3", {"kind": "conflict", "id": "b-x"}]}`,
//!     replaces the active set; answers `{"faults": ["status500:3", "conflict:b-x"]}`.
//!   - `GET|POST /control/due` — body `{"due": "every:30s"}`; answers `{"due": "every:30s"}`.
//!   - `GET /control/events` — `{"events": [<Event>...]}`.
//! - **Long-poll** (SPEC §3's optional extension): `GET /backup/status?wait=<seconds>&phase=<p>`
//!   is held while the reported phase is `p`, at most `wait` (capped at 60 s), woken by the
//!   change itself; the fault [`Fault::NoLongPoll`] turns it off, for an agent without it.
//! - **Timeline**: every answered API request, every held long-poll and every backup step is
//!   an [`Event`], kept in memory ([`DevAgent::events`], [`DevAgent::wait_for_event`]) and
//!   appended as a JSON line to `events_file` when set. Control requests are logged but are
//!   not part of the timeline.
//!
//! # Features
//!
//! None: the library ([`DevAgent`]) and the binary `felhom-devagent` are always the whole
//! server (hyper, rustls, a real backup command).
#![deny(missing_docs)]

mod backup;
mod config;
mod error;
mod events;
mod server;
mod state;
mod tls;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use config::{AgentConfig, DueMode, Fault};
pub use error::DevAgentError;
pub use events::{Event, EventKind};

use events::EventLog;
use state::{AgentState, Settings};
use tls::TlsIdentity;

/// A running development agent. Dropping it stops the server too; [`DevAgent::shutdown`]
/// also waits until it has stopped.
pub struct DevAgent {
    state: Arc<AgentState>,
    addr: SocketAddr,
    pin: String,
    certificate_pem: String,
    server: Option<JoinHandle<()>>,
}

impl fmt::Debug for DevAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAgent")
            .field("url", &self.url())
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

impl DevAgent {
    /// Checks the configuration, sets up TLS, binds the socket and starts serving.
    ///
    /// Must be called inside a tokio runtime; the server runs on it.
    pub async fn start(cfg: AgentConfig) -> Result<DevAgent, DevAgentError> {
        if cfg.token.trim().is_empty() {
            return Err(DevAgentError::EmptyToken);
        }
        let (source, out_dir) = directories(&cfg)?;
        let events_file = events_file(cfg.events_file.as_ref())?;
        let identity = match &cfg.tls {
            Some((cert, key)) => TlsIdentity::load(cert, key)?,
            None => TlsIdentity::generate()?,
        };
        let (listener, addr) = bind(cfg.listen).await?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "listening beyond loopback: anyone who can reach it and has the token can drive backups");
        }

        let state = Arc::new(AgentState::new(
            Settings {
                token: cfg.token,
                source,
                out_dir,
                snapshot_delay: cfg.snapshot_delay,
                archive_delay: cfg.archive_delay,
                due: cfg.due,
                faults: cfg.faults,
            },
            EventLog::new(events_file),
        ));
        let acceptor = TlsAcceptor::from(Arc::clone(&identity.server_config));
        let server = tokio::spawn(server::serve(listener, acceptor, Arc::clone(&state)));
        let agent = DevAgent {
            state,
            addr,
            pin: identity.pin.clone(),
            certificate_pem: identity.leaf_pem(),
            server: Some(server),
        };
        tracing::info!(url = %agent.url(), pin = %agent.pin, due = %cfg.due,
            faults = %state::fault_list(&agent.faults()), "development agent listening");
        Ok(agent)
    }

    /// The base URL, e.g. `https://127.0.0.1:8443` (a wildcard listen address shows as
    /// loopback, which is where a local client reaches it).
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("https://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pin of the served certificate: SHA-256 of the leaf's DER, lowercase hex pairs
    /// separated by colons.
    pub fn pin(&self) -> String {
        self.pin.clone()
    }

    /// The served leaf certificate as PEM (e.g. for `curl --cacert`).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The bearer token requests must carry.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.state.set_faults(faults);
    }

    /// Removes every fault (a hanging backup then goes on; silent requests are dropped).
    pub fn clear_faults(&self) {
        self.state.set_faults(Vec::new());
    }

    /// The active faults (a `Status500` shows how many 500s are left).
    pub fn faults(&self) -> Vec<Fault> {
        self.state.faults()
    }

    /// Changes when the agent says due; `Once` and `Every` start over from now.
    pub fn set_due(&self, due: DueMode) {
        self.state.set_due(due);
    }

    /// The timeline so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.state.events.snapshot()
    }

    /// The first event of the timeline that `matches` accepts: one already recorded, or else
    /// the first to come. Woken by each new event (no polling); unbounded, so wrap it in a
    /// timeout.
    pub async fn wait_for_event(&self, matches: impl Fn(&Event) -> bool) -> Event {
        self.state.events.wait_for(matches).await
    }

    /// Stops accepting, drops open connections and aborts running backups, then waits for the
    /// server to end. (A copy or tar already under way on a worker thread ends on its own.)
    pub async fn shutdown(mut self) {
        self.state.shut_down();
        if let Some(server) = self.server.take() {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "the server task ended abnormally");
            }
        }
        tracing::info!(url = %self.url(), "development agent stopped");
    }
}

/// The source and the output directories, checked (the output made if missing) and
/// absolute: the events name archives for readers in other working directories, and a source
/// given as a symlink is backed up as the directory it points to.
fn directories(cfg: &AgentConfig) -> Result<(PathBuf, PathBuf), DevAgentError> {
    let source_error = |reason: String| DevAgentError::Source {
        path: cfg.source.clone(),
        reason,
    };
    let out_dir_error = |source| DevAgentError::OutDir {
        path: cfg.out_dir.clone(),
        source,
    };
    let source_meta = std::fs::metadata(&cfg.source).map_err(|e| source_error(e.to_string()))?;
    if !source_meta.is_dir() {
        return Err(source_error("not a directory".into()));
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(out_dir_error)?;
    let source = std::fs::canonicalize(&cfg.source).map_err(|e| source_error(e.to_string()))?;
    let out_dir = std::fs::canonicalize(&cfg.out_dir).map_err(out_dir_error)?;
    Ok((source, out_dir))
}

/// The events file, if one is set, opened for appending.
fn events_file(path: Option<&PathBuf>) -> Result<Option<(PathBuf, File)>, DevAgentError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| DevAgentError::EventsFile {
            path: path.clone(),
            source,
        })?;
    Ok(Some((path.clone(), file)))
}

/// The listening socket, and the address it is bound to.
async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), DevAgentError> {
    let bind_error = |source| DevAgentError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, addr))
}

impl Drop for DevAgent {
    fn drop(&mut self) {
        self.state.shut_down();
    }
}
