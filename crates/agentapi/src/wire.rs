//! The JSON bodies of SPEC §3 as they travel, and their conversion to the typed answers.
//!
//! Unknown fields are ignored (serde's default) so that a newer agent can add some. Times are
//! RFC 3339 by contract; one that does not parse is refused with the field's name rather than
//! silently dropped, because a wrong agent is better found at `check` than guessed around.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{BackupPhase, BackupStatus, Due};

#[derive(Deserialize)]
struct DueWire {
    due: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    next_due_at: Option<String>,
}

#[derive(Deserialize)]
struct StartedWire {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct RefusalWire {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct StatusWire {
    #[serde(default)]
    id: Option<String>,
    phase: String,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    snapshot_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// The body of a `200` to `GET /backup/due`.
pub(crate) fn parse_due(body: &[u8]) -> Result<Due, String> {
    let wire: DueWire = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(Due {
        due: wire.due,
        reason: wire.reason,
        next_due_at: time("next_due_at", wire.next_due_at)?,
    })
}

/// The backup id in the body of a `2xx` or a `409` to `POST /backup`.
pub(crate) fn parse_started_id(body: &[u8]) -> Result<String, String> {
    let wire: StartedWire = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    match wire.id {
        Some(id) if !id.is_empty() => Ok(id),
        Some(_) => Err("\"id\" is empty".to_owned()),
        None => Err("no \"id\" of the backup".to_owned()),
    }
}

/// The agent's reason in an error body (`{"error": ...}`); lenient, because it only decorates
/// an error that is already certain.
pub(crate) fn parse_refusal(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<RefusalWire>(body) {
        Ok(wire) => (wire.error, wire.id),
        Err(_) => (None, None),
    }
}

/// The body of a `200` to `GET /backup/status`.
pub(crate) fn parse_status(body: &[u8]) -> Result<BackupStatus, String> {
    let wire: StatusWire = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(BackupStatus {
        id: wire.id,
        phase: phase(wire.phase),
        started_at: time("started_at", wire.started_at)?,
        snapshot_at: time("snapshot_at", wire.snapshot_at)?,
        finished_at: time("finished_at", wire.finished_at)?,
        error: wire.error,
    })
}

fn phase(text: String) -> BackupPhase {
    match text.as_str() {
        "idle" => BackupPhase::Idle,
        "running" => BackupPhase::Running,
        "snapshotted" => BackupPhase::Snapshotted,
        "done" => BackupPhase::Done,
        "failed" => BackupPhase::Failed,
        _ => BackupPhase::Unknown(text),
    }
}

fn time(field: &str, text: Option<String>) -> Result<Option<DateTime<Utc>>, String> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| format!("{field}: {t:?} is not an RFC 3339 time ({e})"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const PHASES: [&str; 5] = ["idle", "running", "snapshotted", "done", "failed"];

    /// JSON-ish text: fragments of real bodies, recombined, so that the parser sees near-misses
    /// (wrong types, missing quotes, nulls) and not only noise.
    fn jsonish() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("\"id\"".to_owned()),
            Just("\"phase\"".to_owned()),
            Just("\"due\"".to_owned()),
            Just("\"started_at\"".to_owned()),
            Just("\"2024-05-01T02:00:00Z\"".to_owned()),
            Just("\"running\"".to_owned()),
            "-?[0-9]{1,30}(\\.[0-9]{1,5})?(e[0-9]{1,4})?",
            "\"[^\"\\\\]{0,12}\"",
            "\\PC{0,4}",
        ];
        prop::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in jsonish()) {
            let _ = parse_due(body.as_bytes());
            let _ = parse_status(body.as_bytes());
            let _ = parse_started_id(body.as_bytes());
            let _ = parse_refusal(body.as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_due(&body);
            let _ = parse_status(&body);
            let _ = parse_started_id(&body);
        }

        #[test]
        fn valid_status_round_trips(
            id in prop::option::of("[a-zA-Z0-9_-]{1,40}"),
            phase_text in prop_oneof![
                prop::sample::select(PHASES.to_vec()).prop_map(str::to_owned),
                "[a-z_]{1,20}",
            ],
            started in prop::option::of(0i64..4_000_000_000),
            extra in "[a-z]{1,10}",
        ) {
            let started_at = started.map(|s| {
                DateTime::from_timestamp(s, 0).expect("in range").to_rfc3339()
            });
            let body = json!({
                "id": id,
                "phase": phase_text,
                "started_at": started_at,
                format!("x_{extra}"): {"nested": [1, 2, 3]},
            });
            let status = parse_status(body.to_string().as_bytes()).expect("valid body parses");
            prop_assert_eq!(&status.id, &id);
            let expected = match phase_text.as_str() {
                "idle" => BackupPhase::Idle,
                "running" => BackupPhase::Running,
                "snapshotted" => BackupPhase::Snapshotted,
                "done" => BackupPhase::Done,
                "failed" => BackupPhase::Failed,
                other => BackupPhase::Unknown(other.to_owned()),
            };
            prop_assert_eq!(status.phase, expected);
            prop_assert_eq!(status.started_at.map(|t| t.timestamp()), started);
        }

        #[test]
        fn valid_due_round_trips(due in any::<bool>(), reason in prop::option::of("\\PC{0,30}")) {
            let body = json!({"due": due, "reason": reason, "unknown": 1});
            let parsed = parse_due(body.to_string().as_bytes()).expect("valid body parses");
            prop_assert_eq!(parsed.due, due);
            prop_assert_eq!(parsed.reason, reason);
            prop_assert_eq!(parsed.next_due_at, None);
        }
    }

    #[test]
    fn null_id_and_null_times_are_none() {
        let status =
            parse_status(br#"{"id": null, "phase": "idle", "finished_at": null}"#).expect("parses");
        assert_eq!(status.id, None);
        assert_eq!(status.phase, BackupPhase::Idle);
        assert_eq!(status.finished_at, None);
    }

    #[test]
    fn a_bad_time_names_its_field() {
        let err = parse_status(br#"{"id": "b1", "phase": "done", "finished_at": "yesterday"}"#)
            .expect_err("not RFC 3339");
        assert!(err.starts_with("finished_at: \"yesterday\""), "{err}");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let due = parse_due(br#"{"due": false, "next_due_at": "2024-05-01T04:00:00+02:00"}"#)
            .expect("parses");
        let expected = DateTime::parse_from_rfc3339("2024-05-01T02:00:00Z")
            .expect("literal")
            .with_timezone(&Utc);
        assert_eq!(due.next_due_at, Some(expected));
    }

    #[test]
    fn started_id_must_be_present_and_non_empty() {
        assert_eq!(parse_started_id(br#"{"id": "b7"}"#), Ok("b7".to_owned()));
        assert!(parse_started_id(br#"{"error": "busy"}"#).is_err());
        assert!(parse_started_id(br#"{"id": ""}"#).is_err());
        assert!(parse_started_id(br#"{"id": null}"#).is_err());
        assert!(parse_started_id(br#"{"id": 7}"#).is_err());
    }
}
