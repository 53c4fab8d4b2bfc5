//! A real TLS server on loopback for the client's tests: certificates made with rcgen, rustls
//! on the server side, hand-written HTTP/1.1 answers so that each test can send exactly the
//! bytes (good or broken) it needs.
#![allow(dead_code)] // each test file uses a different part

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use felhom_agentapi::{AgentClient, ClientConfig, Pin, Token};
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// The token the tests' clients send and the servers expect.
pub(crate) const TOKEN: &str = "tok-7f3e-SECRET-do-not-print";

/// Every test's outer bound: far above any configured timeout, only there to catch a hang.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(20);

/// Runs a test body under [`HANG_GUARD`].
pub(crate) async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, body)
        .await
        .expect("the test hung: no answer within the hang guard")
}

/// A self-signed certificate and its key.
pub(crate) struct Identity {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl Identity {
    pub(crate) fn generate() -> Identity {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("rcgen makes a certificate");
        Identity {
            cert: made.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der())),
        }
    }

    pub(crate) fn pin(&self) -> Pin {
        Pin::of_der(self.cert.as_ref())
    }
}

/// A normal server configuration: the certificate and its own key.
pub(crate) fn server_config(
    identity: &Identity,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())
        .expect("certificate and key match");
    Arc::new(config)
}

/// An impostor: shows `shown`'s certificate but signs the handshake with `signer`'s key.
/// rustls checks that a certificate and key match in `with_single_cert`, so the pair is served
/// through a resolver, which does not.
pub(crate) fn impostor_config(
    shown: &Identity,
    signer: &Identity,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let key = ring::sign::any_supported_type(&signer.key).expect("signing key");
    let certified = Arc::new(CertifiedKey::new(vec![shown.cert.clone()], key));
    assert!(
        certified.keys_match().is_err(),
        "the impostor's key must differ from the shown certificate's"
    );
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(certified)));
    Arc::new(config)
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) target: String,
    /// Names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request carries the tests' token.
    pub(crate) fn authorized(&self) -> bool {
        self.header("authorization") == Some(&format!("Bearer {TOKEN}"))
    }
}

/// What the server does with a request.
pub(crate) enum Reply {
    /// A complete answer with this status and JSON body.
    Json(u16, String),
    /// These bytes verbatim, then a clean TLS close.
    Raw(Vec<u8>),
    /// Nothing, ever: the connection stays open.
    Hang,
    /// These bytes, then nothing more, with the connection left open.
    RawThenHang(Vec<u8>),
}

/// A JSON answer.
pub(crate) fn json(status: u16, body: serde_json::Value) -> Reply {
    Reply::Json(status, body.to_string())
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// The TLS server; stops (and drops every connection) when dropped.
pub(crate) struct TlsServer {
    pub(crate) addr: SocketAddr,
    pub(crate) pin: Pin,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    /// A server with a fresh certificate, answering every request with `handler`.
    pub(crate) async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let identity = Identity::generate();
        let config = server_config(&identity, rustls::DEFAULT_VERSIONS);
        TlsServer::with_config(config, identity.pin(), handler).await
    }

    /// A server with the given TLS configuration; `pin` is what its clients get by default.
    pub(crate) async fn with_config(
        config: Arc<ServerConfig>,
        pin: Pin,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(serve(listener, acceptor, handler, Arc::clone(&seen)));
        TlsServer {
            addr,
            pin,
            seen,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A client for this server with the tests' token and the server's pin.
    pub(crate) fn client(&self) -> AgentClient {
        client_for(&self.url(), TOKEN, self.pin, Duration::from_secs(5))
    }

    /// The requests received so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }
}

/// A client with explicit settings; the connect timeout is 2 s.
pub(crate) fn client_for(
    url: &str,
    token: &str,
    pin: Pin,
    request_timeout: Duration,
) -> AgentClient {
    AgentClient::new(ClientConfig {
        url: url.to_owned(),
        token: Token::new(token.to_owned()),
        pin,
        connect_timeout: Duration::from_secs(2),
        request_timeout,
    })
    .expect("client config is valid")
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    // Connections live in the set so that aborting the server drops them all.
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let handler = Arc::clone(&handler);
        let seen = Arc::clone(&seen);
        connections.spawn(async move {
            // A refused handshake is an expected outcome of several tests.
            if let Ok(tls) = acceptor.accept(tcp).await {
                answer(tls, &*handler, &seen).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(
    mut tls: tokio_rustls::server::TlsStream<TcpStream>,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
) {
    let Some(request) = read_request(&mut tls).await else {
        return;
    };
    seen.lock().expect("seen lock").push(request.clone());
    let bytes = match handler(&request) {
        Reply::Json(status, body) => {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Whatever");
            format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        Reply::Raw(bytes) => bytes,
        Reply::Hang => {
            std::future::pending::<()>().await;
            return;
        }
        Reply::RawThenHang(bytes) => {
            let _ = tls.write_all(&bytes).await;
            let _ = tls.flush().await;
            std::future::pending::<()>().await;
            return;
        }
    };
    // The client may have given up already; that is its business.
    let _ = tls.write_all(&bytes).await;
    let _ = tls.shutdown().await;
}

/// Reads one HTTP/1.1 request with a `content-length` body (all this client sends).
async fn read_request(tls: &mut tokio_rustls::server::TlsStream<TcpStream>) -> Option<Seen> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A TCP server that accepts connections and never says a word (not even TLS).
pub(crate) struct SilentServer {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SilentServer {
    pub(crate) async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        SilentServer { addr, task }
    }
}

/// Asserts that no rendering of an error shows the tests' token.
pub(crate) fn assert_no_token(error: &felhom_agentapi::AgentError) {
    let shown = format!("{error} / {error:?}");
    assert!(!shown.contains(TOKEN), "the token leaked: {shown}");
}
