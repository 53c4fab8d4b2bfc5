//! The control endpoint (`/control/...`): the faults, the due mode and the timeline, read and
//! set over HTTPS; not part of the API, and not affected by fault `silent`.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{error, json_answer, not_allowed, read_json, Answer};
use crate::config::{DueMode, Fault};
use crate::state::{fault_list, AgentState};

pub(super) async fn control_answer(
    state: &AgentState,
    req: Request<Incoming>,
    path: &str,
) -> Answer {
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
