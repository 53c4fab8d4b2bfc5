//! A unix-socket proxy to the real Docker engine that a test switches off and on, so that the
//! controller under test sees "the engine is away" (a reboot where dockerd is slow, a docker
//! restart) without the shared engine, and the other tests on it, being disturbed.
//!
//! Point the controller at it with `DOCKER_HOST=unix://<path>` ([`EngineProxy::docker_host`]).
//! Bytes are forwarded as they are (`copy_bidirectional`), so HTTP/1.1 keep-alive, the
//! streaming `/events` endpoint and hijacked connections all work.
//!
//! Beyond on and off, it plays a slow or hung engine ([`EngineProxy::hold`]: requests whose
//! request line matches are held, for a while or until [`EngineProxy::release`]) and a proxy
//! that resets long-lived connections ([`EngineProxy::cut_streams`]: every open event stream
//! is cut while other calls go on). Both rely on one request per connection, as clients of a
//! unix socket make them (bollard keeps no idle connections there).
//!
//! This file holds the proxy, switched from the test's thread, and its own thread that binds
//! and accepts; `connection` is what one connection does.

mod connection;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::watch;

use connection::{forward, Control, Hold};

/// The real engine's socket.
pub const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// How long [`EngineProxy::on`] / [`EngineProxy::off`] wait for the proxy's thread to have
/// done it: only a hang takes this long.
const SWITCH_BOUND: Duration = Duration::from_secs(10);

/// What the test wants the proxy to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    On,
    Off,
    Gone,
}

/// Why the proxy could not be started or switched.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The proxy's runtime or thread could not be made.
    #[error("starting the engine proxy's thread: {0}")]
    Start(#[source] io::Error),
    /// The socket path could not be bound.
    #[error("binding the engine proxy's socket {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The proxy's thread did not answer within its bound, or is gone.
    #[error("the engine proxy on {path} did not switch {to} within {SWITCH_BOUND:?}")]
    Stuck {
        /// The socket path.
        path: PathBuf,
        /// "on" or "off".
        to: &'static str,
    },
}

/// The running proxy; switched off and its socket removed when dropped.
#[derive(Debug)]
pub struct EngineProxy {
    path: PathBuf,
    wanted: watch::Sender<Wanted>,
    /// One answer per switch: `Ok` once the proxy is as wanted.
    done: mpsc::Receiver<Result<(), ProxyError>>,
    accepted: Arc<AtomicU64>,
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl EngineProxy {
    /// Starts a proxy on the unix socket `path` to the real engine ([`ENGINE_SOCKET`]),
    /// switched on.
    pub fn start(path: impl Into<PathBuf>) -> Result<EngineProxy, ProxyError> {
        EngineProxy::start_to(path, ENGINE_SOCKET)
    }

    /// Starts a proxy on the unix socket `path` to the socket `upstream`, switched on.
    pub fn start_to(
        path: impl Into<PathBuf>,
        upstream: impl Into<PathBuf>,
    ) -> Result<EngineProxy, ProxyError> {
        let path = path.into();
        let upstream = upstream.into();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(ProxyError::Start)?;
        let (wanted, wanted_rx) = watch::channel(Wanted::On);
        let (done_tx, done) = mpsc::channel();
        let accepted = Arc::new(AtomicU64::new(0));
        let control = Arc::new(Control {
            holds: watch::channel(Vec::new()).0,
            cuts: watch::channel(0).0,
            streams: AtomicU64::new(0),
        });
        let serve = Serve {
            path: path.clone(),
            upstream,
            accepted: Arc::clone(&accepted),
            control: Arc::clone(&control),
            done: done_tx,
        };
        let thread = std::thread::Builder::new()
            .name("engine-proxy".into())
            .spawn(move || runtime.block_on(serve.run(wanted_rx)))
            .map_err(ProxyError::Start)?;
        let proxy = EngineProxy {
            path,
            wanted,
            done,
            accepted,
            control,
            thread: Some(thread),
        };
        proxy.answer("on")?;
        Ok(proxy)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `unix://<path>`, the `DOCKER_HOST` that points a client at the proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// "The engine is away": every open connection is cut and the socket path is removed, so
    /// that a new connection is refused (`ENOENT`), as while dockerd is down. Returns once
    /// that is so.
    pub fn off(&self) -> Result<(), ProxyError> {
        self.switch(Wanted::Off, "off")
    }

    /// "The engine is back": the socket is bound again and forwards. Returns once a client
    /// can connect.
    pub fn on(&self) -> Result<(), ProxyError> {
        self.switch(Wanted::On, "on")
    }

    /// How many connections the proxy has accepted so far: a test can check that its client
    /// really went through the proxy.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// "The engine is slow" (or hung): from now on, every request whose request line (e.g.
    /// `POST /containers/<id>/start HTTP/1.1`) contains `pattern` waits `delay` before it is
    /// forwarded, or with `None` until [`EngineProxy::release`]. The empty pattern holds every
    /// request, `/_ping` included: an engine that answers nothing, as a hung dockerd behind
    /// socket activation.
    pub fn hold(&self, pattern: &str, delay: Option<Duration>) {
        self.control.holds.send_modify(|holds| {
            holds.push(Hold {
                pattern: pattern.to_owned(),
                delay,
            });
        });
    }

    /// Drops every hold: held requests go on to the engine.
    pub fn release(&self) {
        self.control.holds.send_modify(Vec::clear);
    }

    /// Cuts every event stream (`GET /events`) open now, as a proxy or a restarting socket
    /// unit resets a long-lived connection; other calls, and streams opened later, go on.
    pub fn cut_streams(&self) {
        self.control.cuts.send_modify(|n| *n += 1);
    }

    /// How many event streams clients have opened through the proxy so far.
    pub fn streams(&self) -> u64 {
        self.control.streams.load(Ordering::SeqCst)
    }

    fn switch(&self, to: Wanted, name: &'static str) -> Result<(), ProxyError> {
        if *self.wanted.borrow() == to {
            return Ok(());
        }
        if self.wanted.send(to).is_err() {
            return Err(self.stuck(name));
        }
        self.answer(name)
    }

    fn answer(&self, name: &'static str) -> Result<(), ProxyError> {
        match self.done.recv_timeout(SWITCH_BOUND) {
            Ok(result) => result,
            Err(_) => Err(self.stuck(name)),
        }
    }

    fn stuck(&self, to: &'static str) -> ProxyError {
        ProxyError::Stuck {
            path: self.path.clone(),
            to,
        }
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        let _ = self.wanted.send(Wanted::Gone);
        if let Some(thread) = self.thread.take() {
            // The thread ends at once: it only cuts its connections and removes its socket.
            let _ = thread.join();
        }
        // In case the thread could not (it removes the socket itself when it goes off).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The proxy's side, on its own thread.
struct Serve {
    path: PathBuf,
    upstream: PathBuf,
    accepted: Arc<AtomicU64>,
    control: Arc<Control>,
    done: mpsc::Sender<Result<(), ProxyError>>,
}

impl Serve {
    async fn run(self, mut wanted: watch::Receiver<Wanted>) {
        loop {
            let now = *wanted.borrow_and_update();
            match now {
                Wanted::Gone => return,
                // Reached only from a failed bind: nothing is bound, so it is off already.
                Wanted::Off => {
                    let _ = self.done.send(Ok(()));
                }
                Wanted::On => match self.bind() {
                    Ok(listener) => {
                        let _ = self.done.send(Ok(()));
                        // Returns (having answered) once it is no longer wanted on.
                        self.serve(listener, &mut wanted).await;
                        if *wanted.borrow() == Wanted::Gone {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = self.done.send(Err(e));
                    }
                },
            }
            if wanted.changed().await.is_err() {
                return;
            }
        }
    }

    fn bind(&self) -> Result<UnixListener, ProxyError> {
        // A socket file left by an earlier proxy on this path (a crashed test) is stale.
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ProxyError::Bind {
                    path: self.path.clone(),
                    source,
                })
            }
        }
        UnixListener::bind(&self.path).map_err(|source| ProxyError::Bind {
            path: self.path.clone(),
            source,
        })
    }

    /// Accepts and forwards until the wanted state is no longer "on"; then every connection
    /// is cut.
    async fn serve(&self, listener: UnixListener, wanted: &mut watch::Receiver<Wanted>) {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                changed = wanted.changed() => {
                    if changed.is_err() || *wanted.borrow() != Wanted::On {
                        break;
                    }
                }
                accepted = listener.accept() => {
                    // A failed accept (a client gone before it was taken) ends only that one.
                    if let Ok((client, _)) = accepted {
                        self.accepted.fetch_add(1, Ordering::SeqCst);
                        connections.spawn(forward(
                            client,
                            self.upstream.clone(),
                            Arc::clone(&self.control),
                        ));
                    }
                }
                // Reaps finished connections, so the set does not grow with a long test.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        // The path goes first, so that a new client is refused at once.
        let _ = std::fs::remove_file(&self.path);
        // Aborting drops both ends of each connection: the client sees its connection cut.
        connections.shutdown().await;
        if *wanted.borrow() != Wanted::Gone {
            let _ = self.done.send(Ok(()));
        }
    }
}
