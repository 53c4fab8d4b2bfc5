//! Delivery: spawned, bounded per try, retried with backoff, never an error for the caller.

use crate::config::{Endpoint, EventKind, NotifyConfig};
use crate::event::Event;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinSet;

/// Tries per delivery: the first, then two more after 1 s and 2 s. A receiver that is down for
/// longer than that is the receiver's problem; the next event tries again.
const TRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How much of a receiver's answer is read (its status decides; the body is only read so that
/// the connection can be used again), and for how long at most.
const ANSWER_LIMIT: usize = 16 * 1024;
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Why a [`Notifier`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifierError {
    /// Deliveries are spawned on the tokio runtime the notifier is built in.
    #[error("the notifier must be built inside a tokio runtime")]
    NoRuntime,
    /// The TLS client configuration could not be built.
    #[error("TLS set-up for notifications: {detail}")]
    Tls {
        /// rustls's message.
        detail: String,
    },
}

/// Sends the events of `[notify]`. Cheap to clone; every clone shares the in-flight deliveries.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
    runtime: Handle,
    in_flight: Arc<Mutex<JoinSet<()>>>,
}

struct Inner {
    config: NotifyConfig,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NotifyConfig's Debug shows its URLs redacted.
        f.debug_struct("Notifier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Builds the notifier inside the current tokio runtime. `https://` targets are verified
    /// against the system's root certificates (Debian's `ca-certificates`); with none found,
    /// https deliveries fail (a warning says so now) while `http://` ones still work.
    pub fn new(config: NotifyConfig) -> Result<Notifier, NotifierError> {
        let runtime = Handle::try_current().map_err(|_| NotifierError::NoRuntime)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NotifierError::Tls {
                detail: e.to_string(),
            })?
            .with_root_certificates(system_roots())
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        // The https connector needs the inner one to accept `https://` URIs.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new()).build(https);
        Ok(Notifier {
            inner: Arc::new(Inner { config, http }),
            runtime,
            in_flight: Arc::new(Mutex::new(JoinSet::new())),
        })
    }

    /// Whether events of `kind` are sent (listed in `events`).
    pub fn wants(&self, kind: EventKind) -> bool {
        self.inner.config.events.contains(&kind)
    }

    /// Sends `event` to `webhook` and `ntfy` in the background if its kind is in `events`;
    /// returns at once. Failures are logged as warnings, never returned.
    pub fn send(&self, event: Event) {
        if !self.wants(event.event) {
            tracing::debug!(event = %event.event, "not in notify.events; not sent");
            return;
        }
        let event = Arc::new(event);
        if let Some(url) = self.inner.config.webhook.clone() {
            match serde_json::to_vec(&*event) {
                Ok(json) => self.spawn(Delivery {
                    what: "webhook",
                    method: Method::POST,
                    uri: url.uri().clone(),
                    shown: url,
                    headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    body: Bytes::from(json),
                }),
                Err(e) => tracing::warn!(error = %e, "webhook event could not be serialized"),
            }
        }
        if let Some(url) = self.inner.config.ntfy.clone() {
            let (priority, tags) = event.ntfy_priority_and_tags();
            self.spawn(Delivery {
                what: "ntfy",
                method: Method::POST,
                uri: url.uri().clone(),
                shown: url,
                headers: vec![
                    (
                        HeaderName::from_static("title"),
                        header_text(&event.title()),
                    ),
                    (
                        HeaderName::from_static("priority"),
                        HeaderValue::from_static(priority),
                    ),
                    (
                        HeaderName::from_static("tags"),
                        HeaderValue::from_static(tags),
                    ),
                    (
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    ),
                ],
                body: Bytes::from(event.text()),
            });
        }
    }

    /// The dead-man's switch: `GET <ping>` when a cycle ended well (`success`), else
    /// `GET <ping>/fail`, in the background; returns at once. Sent after every cycle whatever
    /// `events` says, so that the outside service notices both failures and silence.
    pub fn ping(&self, success: bool) {
        let Some(url) = self.inner.config.ping.clone() else {
            return;
        };
        let uri = if success {
            url.uri().clone()
        } else {
            url.fail_uri()
        };
        self.spawn(Delivery {
            what: if success { "ping" } else { "ping/fail" },
            method: Method::GET,
            uri,
            shown: url,
            headers: Vec::new(),
            body: Bytes::new(),
        });
    }

    /// Waits up to `bound` for the deliveries in flight (at shutdown); abandons the rest with a
    /// warning. True when every one ended (delivered or given up).
    pub async fn drain(&self, bound: Duration) -> bool {
        let mut set = std::mem::take(&mut *self.tasks());
        let drained =
            tokio::time::timeout(bound, async { while set.join_next().await.is_some() {} })
                .await
                .is_ok();
        if !drained {
            tracing::warn!(
                abandoned = set.len(),
                "notifications still being delivered at shutdown were abandoned after {}",
                humantime::format_duration(bound)
            );
        }
        drained
    }

    fn tasks(&self) -> MutexGuard<'_, JoinSet<()>> {
        // A poisoned lock only means a panic elsewhere while spawning; the set is still whole.
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&self, delivery: Delivery) {
        let inner = Arc::clone(&self.inner);
        let mut tasks = self.tasks();
        // Reap the finished ones so that a long-running daemon does not accumulate them.
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(async move { inner.deliver(delivery).await }, &self.runtime);
    }
}

/// One request to one target, as many tries as it takes up to [`TRIES`].
struct Delivery {
    what: &'static str,
    method: Method,
    uri: http::Uri,
    /// The target as logged (its `Display` is redacted).
    shown: Endpoint,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

/// Why one try failed, and whether another could do better.
struct Failure {
    reason: String,
    retry: bool,
}

impl Inner {
    async fn deliver(&self, d: Delivery) {
        let timeout = self.config.timeout;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=TRIES {
            let failure = match tokio::time::timeout(timeout, self.try_once(&d)).await {
                Ok(Ok(())) => {
                    tracing::debug!(to = %d.shown, attempt, "{} delivered", d.what);
                    return;
                }
                Ok(Err(failure)) => failure,
                Err(_) => Failure {
                    reason: format!("no answer within {}", humantime::format_duration(timeout)),
                    retry: true,
                },
            };
            if !failure.retry || attempt == TRIES {
                tracing::warn!(
                    to = %d.shown,
                    attempts = attempt,
                    "{} notification not delivered: {}",
                    d.what,
                    failure.reason
                );
                return;
            }
            tracing::debug!(to = %d.shown, attempt, reason = %failure.reason, "{} try failed; retrying", d.what);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    async fn try_once(&self, d: &Delivery) -> Result<(), Failure> {
        let mut req = Request::builder()
            .method(d.method.clone())
            .uri(d.uri.clone())
            .header(
                USER_AGENT,
                concat!("felhom-controller/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &d.headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(d.body.clone())).map_err(|e| Failure {
            reason: format!("request could not be built: {e}"),
            retry: false,
        })?;
        let res = self.http.request(req).await.map_err(|e| Failure {
            reason: chain(&e),
            retry: true,
        })?;
        let status = res.status();
        // Read a short answer so that the connection can be used again; a long or endless one
        // is cut (the connection is then closed): the status is all that counts.
        let answer = http_body_util::Limited::new(res.into_body(), ANSWER_LIMIT).collect();
        let _ = tokio::time::timeout(ANSWER_WAIT, answer).await;
        if status.is_success() {
            return Ok(());
        }
        // A 4xx other than these is a wrong URL or token: trying again would only repeat it.
        let retry = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        Err(Failure {
            reason: format!("the receiver answered {status}"),
            retry,
        })
    }
}

/// The system's root certificates; a certificate that cannot be used is skipped.
fn system_roots() -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "no system root certificates found (is ca-certificates installed?): \
             https notifications will fail"
        );
    }
    roots
}

/// An error and its causes on one line, each cause once (hyper's `Display`s leave out their
/// sources, which hold the useful part: "connection refused", a certificate error).
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A header value from text: characters a header cannot carry become `?`.
fn header_text(text: &str) -> HeaderValue {
    let ascii: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&ascii).unwrap_or_else(|_| HeaderValue::from_static("felhom"))
}
