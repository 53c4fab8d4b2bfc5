//! Deliveries to real HTTP receivers on 127.0.0.1: what arrives, what is retried, what is
//! bounded, and that nothing of a URL beyond `scheme://host` reaches a log line.

use bytes::Bytes;
use felhom_notify::{Endpoint, Event, EventKind, Notifier, NotifyConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Generous: only catches a hang, never measures.
const HANG: Duration = Duration::from_secs(30);

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// An HTTP receiver on 127.0.0.1 that answers each request with the next of `statuses`
/// (the last one repeated) and reports what it got.
async fn receiver(statuses: Vec<u16>) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (tx, statuses, served) = (tx.clone(), statuses.clone(), served.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (tx, statuses, served) = (tx.clone(), statuses.clone(), served.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let _ = tx.send(Received {
                            method: parts.method.to_string(),
                            path: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        });
                        let n = served.fetch_add(1, Ordering::SeqCst);
                        let status = statuses[n.min(statuses.len() - 1)];
                        let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *res.status_mut() = http::StatusCode::from_u16(status).expect("status");
                        Ok::<_, std::convert::Infallible>(res)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// A receiver on 127.0.0.1 that accepts connections and holds them, answering nothing; counts
/// the connections.
async fn silent_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, accepted)
}

/// Runs `deliver`, which must only spawn (it returns within a generous second, where a
/// delivery that blocked would take seconds of retries), then waits for the deliveries to end.
async fn spawns_then_drains(notifier: &Notifier, deliver: impl FnOnce(&Notifier)) {
    let before = Instant::now();
    deliver(notifier);
    assert!(
        before.elapsed() < Duration::from_secs(1),
        "sending only spawns"
    );
    assert!(notifier.drain(HANG).await, "every delivery ended in time");
}

/// A log capture for the current thread (the tests run on a current-thread runtime, so the
/// spawned deliveries log through it too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn url(key: &'static str, base: &str, path: &str) -> Endpoint {
    Endpoint::parse(key, &format!("{base}{path}")).expect("valid test URL")
}

/// A notifier with only a webhook, `http://<addr><path>`.
fn webhook_notifier(addr: SocketAddr, path: &str, timeout: Duration) -> Notifier {
    Notifier::new(NotifyConfig {
        webhook: Some(url("webhook", &format!("http://{addr}"), path)),
        ..config(timeout)
    })
    .expect("notifier")
}

fn config(timeout: Duration) -> NotifyConfig {
    NotifyConfig {
        timeout,
        ..NotifyConfig::default()
    }
}

fn stranded_event() -> Event {
    let mut e = Event::new(EventKind::Stranded, "nextcloud did not start again");
    e.cycle_id = Some("c-20261130-0300".into());
    e.outcome = Some("done".into());
    e.stacks = vec!["immich".into(), "nextcloud".into()];
    e.stranded = vec!["nextcloud".into()];
    e
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(HANG, rx.recv())
        .await
        .expect("the receiver got a request in time")
        .expect("receiver running")
}

#[tokio::test]
async fn the_webhook_gets_every_field_and_ntfy_a_title_and_message() {
    let (addr, mut rx) = receiver(vec![200]).await;
    let base = format!("http://{addr}");
    let notifier = Notifier::new(NotifyConfig {
        webhook: Some(url("webhook", &base, "/hook/SECRET")),
        ntfy: Some(url("ntfy", &base, "/guest-17?auth=SECRET")),
        ..config(Duration::from_secs(5))
    })
    .expect("notifier");
    let event = stranded_event();
    notifier.send(event.clone());
    assert!(notifier.drain(HANG).await, "both deliveries ended");

    let mut got = [next(&mut rx).await, next(&mut rx).await];
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let (ntfy, hook) = (&got[0], &got[1]);

    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/hook/SECRET");
    assert_eq!(hook.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&hook.body).expect("JSON body");
    let fields: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields.len(), 8, "exactly SPEC's fields, got {fields:?}");
    assert_eq!(json["event"], "stranded");
    assert_eq!(json["host"], event.host.as_str());
    assert_eq!(json["cycle_id"], "c-20261130-0300");
    assert_eq!(json["outcome"], "done");
    assert_eq!(json["stacks"], serde_json::json!(["immich", "nextcloud"]));
    assert_eq!(json["stranded"], serde_json::json!(["nextcloud"]));
    assert_eq!(json["message"], "nextcloud did not start again");
    let at = json["at"].as_str().expect("at is a string");
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("at is RFC 3339");
    assert_eq!(at.timestamp_millis(), event.at.timestamp_millis());
    let back: Event = serde_json::from_slice(&hook.body).expect("an Event");
    assert_eq!(back.stranded, event.stranded);

    assert_eq!(ntfy.method, "POST");
    assert_eq!(ntfy.path, "/guest-17?auth=SECRET");
    let title = ntfy.headers["title"].to_str().expect("ascii title");
    assert!(
        title.contains("stranded") && title.contains(&event.host),
        "{title}"
    );
    assert_eq!(ntfy.headers["priority"], "high");
    assert!(ntfy.headers.contains_key("tags"));
    let text = String::from_utf8_lossy(&ntfy.body);
    assert!(text.starts_with("nextcloud did not start again"), "{text}");
    assert!(text.contains("stranded: nextcloud"), "{text}");
}

#[tokio::test]
async fn done_is_sent_only_when_asked() {
    let (addr, mut rx) = receiver(vec![200]).await;
    let hook = url("webhook", &format!("http://{addr}"), "/hook");
    let quiet = Notifier::new(NotifyConfig {
        webhook: Some(hook.clone()),
        ..config(Duration::from_secs(5))
    })
    .expect("notifier");
    assert!(!quiet.wants(EventKind::Done));
    quiet.send(Event::new(EventKind::Done, "backup done"));
    assert!(quiet.drain(HANG).await);
    assert!(rx.try_recv().is_err(), "done is not in the default events");

    let asked = Notifier::new(NotifyConfig {
        webhook: Some(hook),
        events: vec![EventKind::Done],
        ..config(Duration::from_secs(5))
    })
    .expect("notifier");
    asked.send(Event::new(EventKind::Failed, "not asked for"));
    asked.send(Event::new(EventKind::Done, "backup done"));
    assert!(asked.drain(HANG).await);
    let got = next(&mut rx).await;
    let json: serde_json::Value = serde_json::from_slice(&got.body).expect("JSON");
    assert_eq!(json["event"], "done");
    assert!(rx.try_recv().is_err(), "failed was not asked for");
}

#[tokio::test]
async fn the_ping_fires_on_success_and_fail_whatever_events_says() {
    let (addr, mut rx) = receiver(vec![200]).await;
    let notifier = Notifier::new(NotifyConfig {
        ping: Some(url("ping", &format!("http://{addr}"), "/ping/uuid-SECRET")),
        events: Vec::new(),
        ..config(Duration::from_secs(5))
    })
    .expect("notifier");
    for (success, path) in [
        (true, "/ping/uuid-SECRET"),
        (false, "/ping/uuid-SECRET/fail"),
    ] {
        notifier.ping(success);
        assert!(notifier.drain(HANG).await);
        let got = next(&mut rx).await;
        assert_eq!((got.method.as_str(), got.path.as_str()), ("GET", path));
    }
}

#[tokio::test]
async fn a_server_error_is_retried_and_a_client_error_is_not() {
    let (addr, mut rx) = receiver(vec![503, 502, 200]).await;
    let notifier = webhook_notifier(addr, "/hook", Duration::from_secs(5));
    notifier.send(Event::new(EventKind::Failed, "agent failed"));
    assert!(notifier.drain(HANG).await);
    for _ in 0..3 {
        next(&mut rx).await;
    }
    assert!(
        rx.try_recv().is_err(),
        "delivered on the third try, no fourth"
    );

    let logs = Logs::default();
    let _guard = logs.install();
    let (addr, mut rx) = receiver(vec![404]).await;
    let notifier = webhook_notifier(addr, "/wrong/SECRET", Duration::from_secs(5));
    notifier.send(Event::new(EventKind::Failed, "agent failed"));
    assert!(notifier.drain(HANG).await);
    next(&mut rx).await;
    assert!(rx.try_recv().is_err(), "a 404 is not retried");
    let text = logs.text();
    assert!(text.contains("404"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
}

#[tokio::test]
async fn a_receiver_that_is_down_is_retried_then_given_up_without_delaying_the_caller() {
    let logs = Logs::default();
    let _guard = logs.install();
    // A port that was just free: nothing listens there, the connection is refused.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let notifier = Notifier::new(NotifyConfig {
        webhook: Some(url(
            "webhook",
            &format!("http://{addr}"),
            "/hook/SECRET?token=SECRET",
        )),
        ntfy: Some(url("ntfy", &format!("http://{addr}"), "/topic-SECRET")),
        ping: Some(url("ping", &format!("http://{addr}"), "/SECRET")),
        ..config(Duration::from_secs(2))
    })
    .expect("notifier");
    spawns_then_drains(&notifier, |n| {
        n.send(Event::new(EventKind::Failed, "agent failed"));
        n.ping(false);
    })
    .await;
    let text = logs.text();
    let shown = format!("http://{addr}/…");
    assert!(text.contains(&shown), "the target is named: {text}");
    assert_eq!(
        text.matches("not delivered").count(),
        3,
        "one warning per target: {text}"
    );
    assert!(text.contains("attempts=3"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "the cause: {text}");
    assert!(!text.contains("SECRET"), "a URL leaked: {text}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_bounded_by_the_timeout_per_try() {
    let logs = Logs::default();
    let _guard = logs.install();
    let (addr, accepted) = silent_receiver().await;
    let notifier = webhook_notifier(addr, "/SECRET", Duration::from_millis(300));
    // Bounded: 3 × 300 ms + 1 s + 2 s of backoff.
    spawns_then_drains(&notifier, |n| {
        n.send(Event::new(EventKind::Stranded, "x did not start"))
    })
    .await;
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "one connection per try");
    let text = logs.text();
    assert!(text.contains("no answer within 300ms"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
}

#[tokio::test]
async fn drain_is_bounded_and_abandons_what_is_left() {
    let (addr, _) = silent_receiver().await;
    let notifier = webhook_notifier(addr, "/", Duration::from_secs(60));
    notifier.send(Event::new(EventKind::Failed, "x"));
    assert!(
        !notifier.drain(Duration::from_millis(200)).await,
        "a delivery still waiting is reported as abandoned"
    );
}

#[tokio::test]
async fn https_to_a_certificate_outside_the_system_roots_is_refused() {
    let logs = Logs::default();
    let _guard = logs.install();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.key_pair.serialize_der(),
    ));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (handshakes, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, r) = (handshakes.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut tls) = acceptor.accept(stream).await {
                r.fetch_add(1, Ordering::SeqCst);
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
            }
        }
    });
    let notifier = Notifier::new(NotifyConfig {
        webhook: Some(url("webhook", &format!("https://{addr}"), "/SECRET")),
        ..config(Duration::from_secs(5))
    })
    .expect("notifier");
    notifier.send(Event::new(EventKind::Failed, "x"));
    assert!(notifier.drain(HANG).await);
    assert!(
        handshakes.load(Ordering::SeqCst) >= 1,
        "the client connected"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 0, "no handshake completed");
    let text = logs.text();
    assert!(
        text.contains("certificate"),
        "the cause is the certificate: {text}"
    );
    assert!(!text.contains("SECRET"), "{text}");
}

#[tokio::test]
async fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let err = std::thread::spawn(|| Notifier::new(NotifyConfig::default()).map(|_| ()))
        .join()
        .expect("no panic");
    assert!(err.is_err());
}

/// A receiver on 127.0.0.1 that answers every request `200 OK` with a body that never ends
/// (chunks for as long as the client reads); counts the requests.
async fn endless_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                // The request's head and its (small) body, then the endless answer.
                let mut buf = vec![0u8; 64 * 1024];
                if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head).await.is_err() {
                    return;
                }
                let chunk = format!("1000\r\n{}\r\n", "x".repeat(0x1000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    (addr, requests)
}

#[tokio::test]
async fn an_endless_answer_is_read_bounded_and_the_delivery_counts() {
    let logs = Logs::default();
    let _guard = logs.install();
    let (addr, requests) = endless_receiver().await;
    // A try's bound well past the answer's read bound.
    let notifier = webhook_notifier(addr, "/hook", Duration::from_secs(5));
    spawns_then_drains(&notifier, |n| n.send(stranded_event())).await;
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "delivered at the first try, not retried: {}",
        logs.text()
    );
    let text = logs.text();
    assert!(text.contains("webhook delivered"), "{text}");
    assert!(!text.contains("not delivered"), "{text}");
}
