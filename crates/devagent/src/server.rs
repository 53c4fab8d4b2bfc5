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
        (&Method::GET, "/backup/status") => status_answer(state).await,
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

async fn status_answer(state: &AgentState) -> Answer {
    if let Some(delay) = state.slow_status() {
        tokio::time::sleep(delay).await;
    }
    if state.take_status500() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected internal error (fault status500)",
        );
    }
    let faults = state.faults();
    if faults.contains(&Fault::NonJson) {
        let mut answer = Response::new(Full::new(Bytes::from_static(
            b"<html><body>502 Bad Gateway (this is not JSON: fault nonjson)</body></html>\n",
        )));
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/html"),
        );
        return answer;
    }
    let latest = if faults.contains(&Fault::Forget) {
        None
    } else {
        state.latest()
    };
    let mut body = status_body(latest.as_ref());
    if faults.contains(&Fault::Oversized) {
        body["padding"] = json!("x".repeat(OVERSIZED_PADDING));
    }
    json_answer(StatusCode::OK, &body)
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
