//! The HTTPS server: the accept loop, and the answers to the agent API (SPEC §3) and to the
//! control endpoint.
//!
//! This file holds the server and what every answer shares; `api` answers the agent API,
//! `control` the control endpoint.

mod api;
mod control;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::Fault;
use crate::events::EventKind;
use crate::state::AgentState;

use api::api_answer;
use control::control_answer;

/// Request bodies beyond this are refused: the API's bodies are a few dozen bytes.
const MAX_REQUEST_BODY: usize = 64 * 1024;
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
