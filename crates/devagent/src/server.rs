//! The HTTPS server: the accept loop, and the answers to the agent API (SPEC §3) and to the
//! control endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{DueMode, Fault};
use crate::events::EventKind;
use crate::state::{fault_list, AgentState, Backup, StartOutcome};

/// Request bodies beyond this are refused: the API's bodies are a few dozen bytes.
const MAX_REQUEST_BODY: usize = 64 * 1024;
/// Fault `oversized`: well past the 64 KiB a client must refuse.
const OVERSIZED_PADDING: usize = 100 * 1024;
/// A client that connects and never finishes the handshake must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a long-poll is held, whatever its `wait` asks: a client that asks for an hour
/// still hears from the agent every minute.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(60);

type Answer = Response<Full<Bytes>>;

/// Returned instead of an answer under fault `silent`: hyper then closes the connection
/// without writing anything.
#[derive(Debug, thiserror::Error)]
#[error("request deliberately left unanswered (fault silent)")]
struct Unanswered;

pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<AgentState>) {
    let mut shutdown = state.subscribe_shutdown();
    let stopping = async move {
        // An error means the state (and its sender) is gone: stop as well.
        let _ = shutdown.wait_for(|down| *down).await;
    };
    tokio::pin!(stopping);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(serve_connection(tcp, peer, acceptor.clone(), Arc::clone(&state)));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<AgentState>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

async fn handle(state: Arc<AgentState>, req: Request<Incoming>) -> Result<Answer, Unanswered> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let control = path == "/control" || path.starts_with("/control/");

    if !control && state.has_fault(&Fault::Silent) {
        tracing::info!(%method, %path, "fault silent: not answering");
        state.events.record(EventKind::RequestUnanswered {
            method: method.to_string(),
            path: path.clone(),
        });
        state.wait_while_silent().await;
        return Err(Unanswered);
    }

    let answer = if !authorized(&req, &state.token) {
        error(StatusCode::UNAUTHORIZED, "unauthorized")
    } else if control {
        control_answer(&state, req, &path).await
    } else {
        api_answer(&state, req, &path).await
    };

    let status = answer.status().as_u16();
    tracing::info!(%method, %path, status, "request");
    if !control {
        state.events.record(EventKind::Request {
            method: method.to_string(),
            path,
            status,
        });
    }
    Ok(answer)
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, presented)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && same_secret(presented.trim().as_bytes(), token.as_bytes())
}

/// Compares without returning at the first difference, so the time taken does not tell how
/// much of a guessed token was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_answer(state: &Arc<AgentState>, req: Request<Incoming>, path: &str) -> Answer {
    match (req.method(), path) {
        (&Method::GET, "/backup/due") => due_answer(state),
        (&Method::POST, "/backup") => match read_json(req, "POST /backup").await {
            Ok(body) => start_answer(state, &body),
            Err(answer) => answer,
        },
        (&Method::GET, "/backup/status") => status_answer(state, req.uri().query()).await,
        (_, "/backup/due" | "/backup/status") => not_allowed("GET"),
        (_, "/backup") => not_allowed("POST"),
        _ => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    }
}

fn due_answer(state: &AgentState) -> Answer {
    let due = state.due_answer();
    let mut body = json!({ "due": due.due, "reason": due.reason });
    if let Some(next) = due.next_due_at {
        body["next_due_at"] = json!(rfc3339(next));
    }
    json_answer(StatusCode::OK, &body)
}

fn start_answer(state: &Arc<AgentState>, body: &Value) -> Answer {
    let cycle_id = match body.get("cycle_id").and_then(Value::as_str) {
        Some(c) if !c.trim().is_empty() => c,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "POST /backup: the body must be {\"cycle_id\": \"<non-empty string>\"}",
            )
        }
    };
    match state.begin_backup(cycle_id) {
        StartOutcome::Started(id) => json_answer(
            StatusCode::ACCEPTED,
            &json!({ "id": id, "phase": "running" }),
        ),
        StartOutcome::AlreadyRunning(id) | StartOutcome::Conflict(id) => json_answer(
            StatusCode::CONFLICT,
            &json!({ "error": "a backup is already running", "id": id }),
        ),
        StartOutcome::Unavailable => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent cannot back up now (fault unavailable)",
        ),
    }
}

/// `GET /backup/status`, held first when it is a long-poll (`?wait=<seconds>&phase=<phase>`)
/// and the extension is on. The faults that break the answer (`status500`, `nonjson`) answer at
/// once, as a broken agent would; those that shape it (`forget`, `oversized`) are read when the
/// answer is made, after the hold.
async fn status_answer(state: &AgentState, query: Option<&str>) -> Answer {
    if let Some(delay) = state.slow_status() {
        tokio::time::sleep(delay).await;
    }
    if state.take_status500() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected internal error (fault status500)",
        );
    }
    if state.has_fault(&Fault::NonJson) {
        let mut answer = Response::new(Full::new(Bytes::from_static(
            b"<html><body>502 Bad Gateway (this is not JSON: fault nonjson)</body></html>\n",
        )));
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/html"),
        );
        return answer;
    }
    if let Some((phase, wait)) = query.and_then(long_poll) {
        if state.has_fault(&Fault::NoLongPoll) {
            tracing::debug!(%phase, ?wait, "fault no_long_poll: answering at once");
        } else {
            state.hold_status(&phase, wait).await;
        }
    }
    let mut body = status_body(state.reported().as_ref());
    if state.has_fault(&Fault::Oversized) {
        body["padding"] = json!("x".repeat(OVERSIZED_PADDING));
    }
    json_answer(StatusCode::OK, &body)
}

/// The long-poll parameters of a status query: the phase the client last saw and how long to
/// hold at most (capped at [`MAX_HOLD`]). `None` — a plain request — when either is missing or
/// `wait` is not a non-negative number of seconds or is zero: an odd query is answered at once
/// rather than refused, as an agent without the extension would.
fn long_poll(query: &str) -> Option<(String, Duration)> {
    let (mut phase, mut wait) = (None, None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decoded(name).as_str() {
            "phase" => phase = Some(percent_decoded(value)),
            "wait" => wait = Some(percent_decoded(value)),
            _ => {}
        }
    }
    let seconds = wait?.trim().parse::<f64>().ok()?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    let wait = Duration::try_from_secs_f64(seconds).map_or(MAX_HOLD, |w| w.min(MAX_HOLD));
    Some((phase?, wait))
}

/// Decodes a query component (`application/x-www-form-urlencoded`: `%XX`, and `+` for a
/// space); a `%` not followed by two hex digits is kept as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_body(backup: Option<&Backup>) -> Value {
    let Some(b) = backup else {
        return json!({ "id": null, "phase": "idle" });
    };
    let mut body = json!({
        "id": b.id,
        "phase": b.phase.as_str(),
        "started_at": rfc3339(b.started_at),
    });
    if let Some(t) = b.snapshot_at {
        body["snapshot_at"] = json!(rfc3339(t));
    }
    if let Some(t) = b.finished_at {
        body["finished_at"] = json!(rfc3339(t));
    }
    if let Some(e) = &b.error {
        body["error"] = json!(e);
    }
    body
}

async fn control_answer(state: &AgentState, req: Request<Incoming>, path: &str) -> Answer {
    match (req.method(), path) {
        (&Method::GET, "/control/faults") => faults_answer(state),
        (&Method::POST, "/control/faults") => {
            let body = match read_json(req, "POST /control/faults").await {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            match parse_faults(&body) {
                Ok(faults) => {
                    state.set_faults(faults);
                    faults_answer(state)
                }
                Err(reason) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("POST /control/faults: {reason}"),
                ),
            }
        }
        (&Method::GET, "/control/due") => due_mode_answer(state),
        (&Method::POST, "/control/due") => {
            let body = match read_json(req, "POST /control/due").await {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            let parsed = match body.get("due").and_then(Value::as_str) {
                Some(text) => text.parse::<DueMode>().map_err(|e| e.to_string()),
                None => Err("the body must be {\"due\": \"always|never|once|every:30s\"}".into()),
            };
            match parsed {
                Ok(due) => {
                    state.set_due(due);
                    due_mode_answer(state)
                }
                Err(reason) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("POST /control/due: {reason}"),
                ),
            }
        }
        (&Method::GET, "/control/events") => json_answer(
            StatusCode::OK,
            &json!({ "events": state.events.snapshot() }),
        ),
        (_, "/control/faults" | "/control/due") => not_allowed("GET, POST"),
        (_, "/control/events") => not_allowed("GET"),
        _ => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    }
}

fn faults_answer(state: &AgentState) -> Answer {
    let faults = state.faults();
    let texts: Vec<String> = faults.iter().map(Fault::to_string).collect();
    tracing::debug!(faults = %fault_list(&faults), "faults read");
    json_answer(StatusCode::OK, &json!({ "faults": texts }))
}

fn due_mode_answer(state: &AgentState) -> Answer {
    json_answer(
        StatusCode::OK,
        &json!({ "due": state.due_mode().to_string() }),
    )
}

/// `{"faults": [...]}` where each fault is its text form (`"status500:3"`) or an object
/// (`{"kind": "status500", "count": 3}`); both go through the one text parser.
fn parse_faults(body: &Value) -> Result<Vec<Fault>, String> {
    let list = body
        .get("faults")
        .and_then(Value::as_array)
        .ok_or("the body must be {\"faults\": [...]}")?;
    list.iter().map(parse_fault).collect()
}

fn parse_fault(value: &Value) -> Result<Fault, String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Object(map) => {
            let kind = map
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("fault {value}: needs a string `kind`"))?;
            let arg_key = match kind {
                "status500" => Some("count"),
                "conflict" => Some("id"),
                "slow_status" => Some("delay"),
                _ => None,
            };
            match arg_key {
                None => kind.to_owned(),
                Some(key) => match map.get(key) {
                    Some(Value::String(s)) => format!("{kind}:{s}"),
                    Some(Value::Number(n)) => format!("{kind}:{n}"),
                    _ => return Err(format!("fault {value}: needs `{key}`")),
                },
            }
        }
        other => {
            return Err(format!(
                "fault {other}: expected a string like \"status500:3\" or an object like \
                 {{\"kind\": \"status500\", \"count\": 3}}"
            ))
        }
    };
    text.parse::<Fault>().map_err(|e| e.to_string())
}

/// Reads a JSON body, or the answer that refuses it.
async fn read_json(req: Request<Incoming>, request: &str) -> Result<Value, Answer> {
    let bytes = match Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("{request}: the body is over {MAX_REQUEST_BODY} bytes"),
            ))
        }
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("{request}: reading the body: {e}"),
            ))
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("{request}: the body is not JSON: {e}"),
        )
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn json_answer(status: StatusCode, body: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body.to_string())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    answer
}

fn error(status: StatusCode, message: &str) -> Answer {
    json_answer(status, &json!({ "error": message }))
}

fn not_allowed(allow: &'static str) -> Answer {
    let mut answer = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    answer
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_poll_query_needs_a_phase_and_a_positive_wait() {
        let secs = Duration::from_secs;
        assert_eq!(
            long_poll("wait=10&phase=running"),
            Some(("running".to_owned(), secs(10)))
        );
        assert_eq!(
            long_poll("phase=snapshotted&x=1&wait=0.25"),
            Some(("snapshotted".to_owned(), Duration::from_millis(250)))
        );
        assert_eq!(
            long_poll("wait=3600&phase=running"),
            Some(("running".to_owned(), MAX_HOLD))
        );
        assert_eq!(
            long_poll("wait=1e300&phase=running"),
            Some(("running".to_owned(), MAX_HOLD))
        );
        assert_eq!(
            long_poll("wait=5&phase=a%20b%26c+d%C3%A9"),
            Some(("a b&c d\u{e9}".to_owned(), secs(5)))
        );
        for plain in [
            "",
            "wait=10",
            "phase=running",
            "wait=0&phase=running",
            "wait=-1&phase=running",
            "wait=soon&phase=running",
            "wait=NaN&phase=running",
            "wait=inf&phase=running",
        ] {
            assert_eq!(long_poll(plain), None, "{plain}");
        }
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        assert_eq!(percent_decoded("%+1"), "% 1");
        assert_eq!(percent_decoded("%41%62"), "Ab");
        assert_eq!(percent_decoded("%FF"), "\u{fffd}");
    }
}
