//! The agent API (SPEC §3): `GET /backup/due`, `POST /backup`, `GET /backup/status` (with the
//! long-poll extension), each shaped by the faults that are on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{error, json_answer, not_allowed, read_json, rfc3339, Answer};
use crate::config::Fault;
use crate::state::{AgentState, Backup, StartOutcome};

/// Fault `oversized`: well past the 64 KiB a client must refuse.
const OVERSIZED_PADDING: usize = 100 * 1024;
/// The longest a long-poll is held, whatever its `wait` asks: a client that asks for an hour
/// still hears from the agent every minute.
const MAX_HOLD: Duration = Duration::from_secs(60);

pub(super) async fn api_answer(
    state: &Arc<AgentState>,
    req: Request<Incoming>,
    path: &str,
) -> Answer {
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
    if state.has_fault(&Fault::BadFields) && !body["id"].is_null() {
        body["started_at"] = json!("");
        body["snapshot_at"] = json!("soon");
        body["finished_at"] = json!(17);
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
