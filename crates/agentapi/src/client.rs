//! The real client: HTTPS with a pinned leaf, on hyper and rustls (ring).
//!
//! This file holds the client and its requests; `config` what it is given and makes of it,
//! `failure` how what went wrong becomes an error.

mod config;
mod failure;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::verifier::PinVerifier;
use crate::{
    wire, AgentApi, AgentError, Answered, BackupPhase, BackupStart, BackupStatus, ConfigError, Due,
    IgnoredField, Pin, Token,
};

pub use config::ClientConfig;

use config::{authorization, base_url};
use failure::read_capped;

/// The largest answer body the client reads (SPEC §3). Larger is an error, not an allocation.
pub(crate) const MAX_BODY: usize = 64 * 1024;

const DUE: &str = "GET /backup/due";
const START: &str = "POST /backup";
const STATUS: &str = "GET /backup/status";

/// A phase name longer than this is not sent back in a long-poll's query (a plain request is
/// made instead): a phase comes from the agent, and a URL must not grow with whatever it sent.
const MAX_QUERY_PHASE: usize = 64;

/// The agent API client: one connection pool, pinned TLS, bearer token on every request.
///
/// Cloning is cheap and clones share the pool. `Debug` shows the URL and the pin, never the
/// token.
#[derive(Clone)]
pub struct AgentClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    inner: Arc<Inner>,
}

struct Inner {
    /// `https://authority[/prefix]`, no trailing slash, never credentials.
    base: String,
    pin: Pin,
    token: Token,
    /// `Bearer <token>`, marked sensitive so that hyper and `http` keep it out of `Debug`.
    authorization: HeaderValue,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl AgentClient {
    /// Builds the client. Refuses a URL that is not `https://` (or carries credentials, a query
    /// or a fragment) and a token that cannot be sent in a header. Makes no connection.
    pub fn new(config: ClientConfig) -> Result<AgentClient, ConfigError> {
        let base = base_url(&config.url)?;
        let authorization = authorization(&config.token)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = PinVerifier::new(config.pin, provider.signature_verification_algorithms);
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls {
                detail: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();

        let mut tcp = HttpConnector::new();
        // The https connector needs the inner one to accept `https://` URIs.
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new()).build(https);

        Ok(AgentClient {
            http,
            inner: Arc::new(Inner {
                base,
                pin: config.pin,
                token: config.token,
                authorization,
                connect_timeout: config.connect_timeout,
                request_timeout: config.request_timeout,
            }),
        })
    }

    /// The agent's base URL as the client uses it (no trailing slash).
    pub fn url(&self) -> &str {
        &self.inner.base
    }

    /// One exchange, bounded as a whole by `request_timeout` plus `held` (how long the agent
    /// may hold a long-poll's answer). The body's read result is kept apart from the status so
    /// that an unexpected status is reported as such even when its body is unreadable.
    async fn exchange(
        &self,
        request: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        held: Duration,
    ) -> Result<(StatusCode, Result<Bytes, AgentError>), AgentError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.inner.base))
            .header(header::AUTHORIZATION, self.inner.authorization.clone())
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let req = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| AgentError::Other {
                request,
                detail: format!("building the request: {e}"),
            })?;

        let exchange = async {
            let response = self
                .http
                .request(req)
                .await
                .map_err(|e| self.transport_error(request, e))?;
            let status = response.status();
            Ok((status, read_capped(request, response).await))
        };
        let bound = self.inner.request_timeout.saturating_add(held);
        tokio::time::timeout(bound, exchange)
            .await
            .unwrap_or(Err(AgentError::Timeout {
                request,
                after: bound,
            }))
    }

    /// `GET /backup/status`, plain or (with a phase and a wait) as a long-poll.
    async fn status(
        &self,
        long_poll: Option<(&BackupPhase, Duration)>,
    ) -> Result<Answered<BackupStatus>, AgentError> {
        let (path, held) = match long_poll.and_then(|(phase, wait)| long_poll_query(phase, wait)) {
            Some((query, held)) => (format!("/backup/status?{query}"), held),
            None => ("/backup/status".to_owned(), Duration::ZERO),
        };
        self.get(STATUS, &path, held, wire::parse_status).await
    }

    /// A `GET` whose `2xx` body `parse` reads; what it ignored is logged at debug.
    async fn get<T>(
        &self,
        request: &'static str,
        path: &str,
        held: Duration,
        parse: fn(&[u8], wire::Redact<'_>) -> Result<Answered<T>, String>,
    ) -> Result<Answered<T>, AgentError> {
        let (status, body) = self
            .exchange(request, Method::GET, path, None, held)
            .await?;
        if !status.is_success() {
            return Err(self.unexpected(request, status, body));
        }
        let answer =
            parse(&body?, &|text| self.redact(text)).map_err(|d| self.malformed(request, &d))?;
        Ok(noted(request, answer))
    }
}

#[async_trait]
impl AgentApi for AgentClient {
    async fn backup_due(&self) -> Result<Due, AgentError> {
        self.backup_due_checked().await.map(|a| a.answer)
    }

    async fn backup_due_checked(&self) -> Result<Answered<Due>, AgentError> {
        self.get(DUE, "/backup/due", Duration::ZERO, wire::parse_due)
            .await
    }

    async fn start_backup(&self, cycle_id: &str) -> Result<BackupStart, AgentError> {
        let payload =
            serde_json::to_vec(&serde_json::json!({ "cycle_id": cycle_id })).map_err(|e| {
                AgentError::Other {
                    request: START,
                    detail: format!("encoding the request body: {e}"),
                }
            })?;
        let (status, body) = self
            .exchange(
                START,
                Method::POST,
                "/backup",
                Some(payload),
                Duration::ZERO,
            )
            .await?;
        // Any 2xx with an id is a start: the contract says 202, but an agent answering 200 or
        // 201 has plainly started the backup, and refusing it would leave that backup untracked.
        if status.is_success() {
            let id = wire::parse_started_id(&body?).map_err(|d| self.malformed(START, &d))?;
            return Ok(BackupStart { id, adopted: false });
        }
        match status {
            StatusCode::CONFLICT => {
                let id = wire::parse_started_id(&body?).map_err(|d| {
                    self.malformed(
                        START,
                        &format!("409 Conflict (a backup is already running) without its id: {d}"),
                    )
                })?;
                Ok(BackupStart { id, adopted: true })
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let body = body.unwrap_or_default();
                let message = match wire::parse_refusal(&body) {
                    (Some(error), _) => self.redact(&error),
                    (None, _) => self.snippet(&body),
                };
                Err(AgentError::Unavailable {
                    request: START,
                    message,
                })
            }
            _ => Err(self.unexpected(START, status, body)),
        }
    }

    async fn backup_status(&self) -> Result<BackupStatus, AgentError> {
        self.status(None).await.map(|a| a.answer)
    }

    async fn backup_status_wait(
        &self,
        last_phase: &BackupPhase,
        wait: Duration,
    ) -> Result<Answered<BackupStatus>, AgentError> {
        self.status(Some((last_phase, wait))).await
    }
}

/// Logs what an answer's body had that was ignored — at debug only: the caller gets the list
/// and decides how loudly, and how often, to say it (a warning per cycle, not per poll).
fn noted<T>(request: &'static str, answer: Answered<T>) -> Answered<T> {
    if !answer.ignored.is_empty() {
        let fields: Vec<String> = answer.ignored.iter().map(IgnoredField::to_string).collect();
        tracing::debug!(
            request,
            ignored = %fields.join("; "),
            "optional fields of the answer ignored"
        );
    }
    answer
}

/// The query of a long-poll and how long the agent may hold it, or `None` for a plain request:
/// a zero wait, or a phase too long to send back.
fn long_poll_query(last_phase: &BackupPhase, wait: Duration) -> Option<(String, Duration)> {
    let name = last_phase.name();
    if wait.is_zero() || name.len() > MAX_QUERY_PHASE {
        return None;
    }
    // The contract counts in whole seconds; rounding up never asks for less than the caller's.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Some((
        format!("wait={seconds}&phase={}", percent_encoded(name)),
        Duration::from_secs(seconds),
    ))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters: a phase of a newer
/// agent may hold anything.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("url", &self.inner.base)
            .field("pin", &self.inner.pin)
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
