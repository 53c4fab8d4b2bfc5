//! The real client: HTTPS with a pinned leaf, on hyper and rustls (ring).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::CertificateError;

use crate::types::HumanDuration;
use crate::verifier::{PinMismatch, PinVerifier};
use crate::{
    wire, AgentApi, AgentError, Answered, BackupPhase, BackupStart, BackupStatus, ConfigError, Due,
    IgnoredField, Pin, Token,
};

/// The largest answer body the client reads (SPEC §3). Larger is an error, not an allocation.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// How much of an unexpected answer's body goes into the error, for the operator.
const SNIPPET_CHARS: usize = 200;

const DUE: &str = "GET /backup/due";
const START: &str = "POST /backup";
const STATUS: &str = "GET /backup/status";

/// A phase name longer than this is not sent back in a long-poll's query (a plain request is
/// made instead): a phase comes from the agent, and a URL must not grow with whatever it sent.
const MAX_QUERY_PHASE: usize = 64;

/// Everything the client needs to reach one agent (the `[agent]` section of SPEC §5).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The agent's base URL, e.g. `https://10.0.0.1:8443`; must be `https://`. A path is kept
    /// as a prefix (`https://host/agent` → `https://host/agent/backup/due`).
    pub url: String,
    /// The bearer token.
    pub token: Token,
    /// The SHA-256 of the agent's leaf certificate.
    pub pin: Pin,
    /// Bound on establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Bound on a whole request: connect, TLS handshake, sending, and reading the answer.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// SPEC §5's `agent.connect_timeout`.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// SPEC §5's `agent.request_timeout`.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
}

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

    /// Turns hyper's error chain into the error an operator can act on. The interesting part
    /// (refused, pin, TLS) is buried a few `source()`s down, partly inside `io::Error`s.
    fn transport_error(
        &self,
        request: &'static str,
        error: hyper_util::client::legacy::Error,
    ) -> AgentError {
        let root: &(dyn StdError + 'static) = &error;
        if let Some(tls) = find::<rustls::Error>(root) {
            if let rustls::Error::InvalidCertificate(CertificateError::Other(other)) = tls {
                if let Some(mismatch) = other.0.downcast_ref::<PinMismatch>() {
                    return AgentError::PinMismatch {
                        request,
                        expected: mismatch.expected,
                        actual: mismatch.actual,
                    };
                }
            }
            return AgentError::Tls {
                request,
                detail: tls.to_string(),
            };
        }
        let connect = |detail: String| AgentError::Connect {
            request,
            url: self.inner.base.clone(),
            detail,
        };
        match find::<io::Error>(root).map(io::Error::kind) {
            Some(io::ErrorKind::ConnectionRefused) => {
                return connect("connection refused".to_owned())
            }
            Some(io::ErrorKind::TimedOut) if error.is_connect() => {
                return connect(format!(
                    "could not connect within {}",
                    HumanDuration(self.inner.connect_timeout)
                ))
            }
            _ => {}
        }
        let what = if error.is_connect() {
            "could not connect"
        } else {
            "the exchange failed"
        };
        AgentError::Transport {
            request,
            what,
            source: Box::new(error),
        }
    }

    /// The answer to a status the request does not expect.
    fn unexpected(
        &self,
        request: &'static str,
        status: StatusCode,
        body: Result<Bytes, AgentError>,
    ) -> AgentError {
        if status == StatusCode::UNAUTHORIZED {
            return AgentError::Unauthorized { request };
        }
        AgentError::Status {
            request,
            status,
            body: body
                .map(|b| self.snippet(&b))
                .unwrap_or_else(|e| format!("(body unreadable: {e})")),
        }
    }

    fn malformed(&self, request: &'static str, detail: &str) -> AgentError {
        AgentError::Malformed {
            request,
            detail: self.redact(detail),
        }
    }

    /// The start of a body, for an error message.
    fn snippet(&self, body: &[u8]) -> String {
        let text = self.redact(String::from_utf8_lossy(body).trim());
        if text.is_empty() {
            return "(empty body)".to_owned();
        }
        let mut cut: String = text.chars().take(SNIPPET_CHARS).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        cut
    }

    /// Removes the token from text that came from the agent: a misconfigured proxy or agent may
    /// echo the request headers into an error body, and error messages end up in logs.
    fn redact(&self, text: &str) -> String {
        text.replace(self.inner.token.secret(), "***")
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

/// Reads at most [`MAX_BODY`] bytes; an announced or actual larger body is refused without
/// buffering it.
async fn read_capped(
    request: &'static str,
    response: Response<Incoming>,
) -> Result<Bytes, AgentError> {
    let too_large = AgentError::BodyTooLarge {
        request,
        limit: MAX_BODY,
    };
    let announced = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large);
    }
    match Limited::new(response.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Err(source) => Err(AgentError::Transport {
            request,
            what: "reading the answer's body failed",
            source,
        }),
    }
}

fn base_url(url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        url: shown_url(url),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some(_) => {
            return Err(invalid(
                "only https:// is allowed: the agent is reached over pinned TLS",
            ))
        }
        None => return Err(invalid("no scheme: write https://host:port")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("no host: write https://host:port"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "credentials in the URL are not allowed: the token is sent in a header, never in the URL",
        ));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(invalid(
            "a query or fragment is not allowed in the base URL",
        ));
    }
    Ok(format!(
        "https://{}{}",
        authority.as_str(),
        uri.path().trim_end_matches('/')
    ))
}

/// What an error may show of `url`: its scheme and host, and `/…` for whatever followed —
/// user-info, a path, a query or a fragment may each hold a token.
fn shown_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not shown: no scheme)".to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let plain = |text: &str| {
        text.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
    };
    if !plain(scheme) || !plain(host) {
        return "(not shown)".to_owned();
    }
    let more = if host.len() < rest.len() { "/…" } else { "" };
    format!("{scheme}://{host}{more}")
}

fn authorization(token: &Token) -> Result<HeaderValue, ConfigError> {
    let secret = token.secret();
    if secret.trim().is_empty() {
        return Err(ConfigError::InvalidToken {
            reason: "the token is empty".to_owned(),
        });
    }
    // `HeaderValue`'s error says nothing about the value, but build our own message anyway so
    // that no future version can leak it.
    let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| {
        ConfigError::InvalidToken {
            reason: "the token contains characters that cannot be sent in an HTTP header"
                .to_owned(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Finds an error of type `T` in a chain, looking inside `io::Error`s too: their `source()`
/// skips the error they wrap, which is where tokio-rustls puts the `rustls::Error`.
fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if let Some(found) = find::<T>(inner) {
                return Some(found);
            }
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, token: &str) -> ClientConfig {
        ClientConfig {
            url: url.to_owned(),
            token: Token::new(token.to_owned()),
            pin: Pin::of_der(b"cert"),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }

    #[test]
    fn base_url_keeps_authority_and_prefix() {
        assert_eq!(
            base_url("https://10.0.0.1:8443").expect("valid"),
            "https://10.0.0.1:8443"
        );
        assert_eq!(
            base_url("https://agent.lan:8443/").expect("valid"),
            "https://agent.lan:8443"
        );
        assert_eq!(
            base_url("https://agent.lan/v1/").expect("valid"),
            "https://agent.lan/v1"
        );
    }

    #[test]
    fn base_url_refuses_what_cannot_be_pinned_or_would_leak() {
        // (the URL, why it is refused, how the error shows it)
        for (url, why, shown) in [
            (
                "http://10.0.0.1:8443",
                "only https://",
                "http://10.0.0.1:8443",
            ),
            ("10.0.0.1:8443", "scheme", "(not shown: no scheme)"),
            ("https://", "not a URL", "https://"),
            (
                "https://user:pw@10.0.0.1",
                "credentials",
                "https://10.0.0.1/…",
            ),
            ("https://10.0.0.1/?token=x", "query", "https://10.0.0.1/…"),
            ("https://10.0.0.1/#x", "fragment", "https://10.0.0.1/…"),
            ("not a url", "not a URL", "(not shown: no scheme)"),
        ] {
            let err = base_url(url).expect_err(url);
            assert!(err.to_string().contains(why), "{url}: {err}");
            assert!(
                err.to_string().starts_with(&format!("agent url {shown}: ")),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn token_must_fit_a_header() {
        assert!(authorization(&Token::new("abc.DEF-123_=".to_owned()))
            .expect("valid token")
            .is_sensitive());
        let err = authorization(&Token::new("  ".to_owned())).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        let err = authorization(&Token::new("line\nbreak-SECRET".to_owned())).expect_err("newline");
        assert!(err.to_string().contains("cannot be sent"), "{err}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn debug_shows_url_and_pin_but_not_the_token() {
        let client = AgentClient::new(config("https://127.0.0.1:8443", "tok-SECRET-42"))
            .expect("client builds");
        let debug = format!("{client:?}");
        assert!(debug.contains("https://127.0.0.1:8443"), "{debug}");
        assert!(debug.contains(&Pin::of_der(b"cert").to_string()), "{debug}");
        assert!(!debug.contains("tok-SECRET-42"), "{debug}");
        let config_debug = format!("{:?}", config("https://h", "tok-SECRET-42"));
        assert!(!config_debug.contains("tok-SECRET-42"), "{config_debug}");
        assert_eq!(client.url(), "https://127.0.0.1:8443");
    }

    #[test]
    fn long_poll_query_rounds_up_encodes_and_falls_back_to_plain() {
        let query = |phase: &BackupPhase, wait| long_poll_query(phase, wait);
        assert_eq!(
            query(&BackupPhase::Running, Duration::from_secs(10)),
            Some(("wait=10&phase=running".to_owned(), Duration::from_secs(10)))
        );
        assert_eq!(
            query(&BackupPhase::Snapshotted, Duration::from_millis(1500)),
            Some((
                "wait=2&phase=snapshotted".to_owned(),
                Duration::from_secs(2)
            ))
        );
        assert_eq!(
            query(
                &BackupPhase::Unknown("a b&c=d/é".to_owned()),
                Duration::from_secs(1)
            ),
            Some((
                "wait=1&phase=a%20b%26c%3Dd%2F%C3%A9".to_owned(),
                Duration::from_secs(1)
            ))
        );
        assert_eq!(query(&BackupPhase::Running, Duration::ZERO), None);
        assert_eq!(
            query(
                &BackupPhase::Unknown("x".repeat(65)),
                Duration::from_secs(5)
            ),
            None
        );
        assert!(query(
            &BackupPhase::Unknown("x".repeat(64)),
            Duration::from_secs(5)
        )
        .is_some());
    }

    #[test]
    fn new_refuses_http() {
        let err = AgentClient::new(config("http://127.0.0.1:8443", "t")).expect_err("http");
        assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("agent url http://127.0.0.1:8443: "),
            "{err}"
        );
    }

    #[test]
    fn a_refused_url_shows_no_user_info_path_query_or_fragment() {
        for (url, shown) in [
            ("https://user:s3cretTok@agent:8443", "https://agent:8443/…"),
            (
                "https://agent:8443/?token=s3cretTok",
                "https://agent:8443/…",
            ),
            ("https://agent:8443/#s3cretTok", "https://agent:8443/…"),
            ("http://agent/s3cretTok", "http://agent/…"),
            ("s3cretTok", "(not shown: no scheme)"),
            ("https://s3cret\nTok/x", "(not shown)"),
        ] {
            let err = AgentClient::new(config(url, "t")).expect_err(url);
            let ConfigError::InvalidUrl { url: field, .. } = &err else {
                panic!("{url}: {err:?}");
            };
            assert_eq!(field, shown, "{url}");
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(
                    !text.contains("s3cret") && !text.contains("Tok"),
                    "{url}: {text}"
                );
            }
        }
    }
}
