//! The JSON bodies of SPEC §3 as they travel, and their conversion to the typed answers.
//!
//! Unknown fields are ignored so that a newer agent can add some. Only the fields that decide
//! are strict: `due` of `GET /backup/due`, `phase` and `id` of `GET /backup/status`, `id` of
//! `POST /backup`; a body without them, or with one of the wrong type, is refused. Every other
//! field is optional: one that is present but does not parse (a time that is not RFC 3339, a
//! number where a string belongs) is left out of the answer and listed in
//! [`Answered::ignored`] — one bad timestamp must not fail every status poll and keep the
//! stacks down while the agent says `snapshotted`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Answered, BackupPhase, BackupStatus, Due, IgnoredField};

/// The most an ignored field's reason shows of its value (bytes of the escaped text): enough
/// to recognise a format, too little to carry a log line's worth of whatever the agent sent.
const SHOWN_MAX: usize = 40;

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

/// Removes secrets (the token) from text the agent sent, before any of it is shown.
pub(crate) type Redact<'a> = &'a dyn Fn(&str) -> String;

/// The body of a `200` to `GET /backup/due`.
pub(crate) fn parse_due(body: &[u8], redact: Redact<'_>) -> Result<Answered<Due>, String> {
    let fields = object(body)?;
    let due = match required(&fields, "due")? {
        Value::Bool(due) => *due,
        other => return Err(wrong_type("due", "a boolean", other)),
    };
    let mut optional = Optional::new(&fields, redact);
    let answer = Due {
        due,
        reason: optional.string("reason"),
        next_due_at: optional.time("next_due_at"),
    };
    Ok(Answered {
        answer,
        ignored: optional.ignored,
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
pub(crate) fn parse_status(
    body: &[u8],
    redact: Redact<'_>,
) -> Result<Answered<BackupStatus>, String> {
    let fields = object(body)?;
    let phase = match required(&fields, "phase")? {
        Value::String(text) => phase(text),
        other => return Err(wrong_type("phase", "a string", other)),
    };
    let mut optional = Optional::new(&fields, redact);
    // `id` decides too (ours, another, none). One that is missing or not a string reads as
    // "no backup of ours": the caller then resumes the stacks (outcome `lost`) at once, where
    // refusing the body would keep them down, poll after poll, until `max_quiesce`.
    let id = match fields.get("id") {
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Null) => None,
        None => {
            optional.ignore("id", "missing: read as no backup of ours".to_owned());
            None
        }
        Some(other) => {
            let why = format!("{}, not a string: read as no backup of ours", kind(other));
            optional.ignore("id", why);
            None
        }
    };
    let answer = BackupStatus {
        id,
        phase,
        started_at: optional.time("started_at"),
        snapshot_at: optional.time("snapshot_at"),
        finished_at: optional.time("finished_at"),
        error: optional.string("error"),
    };
    Ok(Answered {
        answer,
        ignored: optional.ignored,
    })
}

fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())? {
        Value::Object(fields) => Ok(fields),
        other => Err(format!("the body is {}, not an object", kind(&other))),
    }
}

fn required<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a Value, String> {
    fields
        .get(name)
        .ok_or_else(|| format!("missing field `{name}`"))
}

/// Never shows the value: it may be anything, of any size.
fn wrong_type(name: &str, expected: &str, found: &Value) -> String {
    format!("`{name}` is {}, expected {expected}", kind(found))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn phase(text: &str) -> BackupPhase {
    match text {
        "idle" => BackupPhase::Idle,
        "running" => BackupPhase::Running,
        "snapshotted" => BackupPhase::Snapshotted,
        "done" => BackupPhase::Done,
        "failed" => BackupPhase::Failed,
        _ => BackupPhase::Unknown(text.to_owned()),
    }
}

/// Reads the optional fields of one body, noting each that is present but unusable. `null`
/// is the same as absent (the contract's `"id": null` style), not a fault.
struct Optional<'a> {
    fields: &'a Map<String, Value>,
    redact: Redact<'a>,
    ignored: Vec<IgnoredField>,
}

impl<'a> Optional<'a> {
    fn new(fields: &'a Map<String, Value>, redact: Redact<'a>) -> Self {
        Optional {
            fields,
            redact,
            ignored: Vec::new(),
        }
    }

    fn string(&mut self, name: &'static str) -> Option<String> {
        match self.fields.get(name)? {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            other => {
                self.ignore(name, format!("{}, not a string", kind(other)));
                None
            }
        }
    }

    fn time(&mut self, name: &'static str) -> Option<DateTime<Utc>> {
        let text = self.string(name)?;
        match DateTime::parse_from_rfc3339(&text) {
            Ok(time) => Some(time.with_timezone(&Utc)),
            Err(_) => {
                let shown = shown((self.redact)(&text).as_str());
                self.ignore(name, format!("{shown} is not an RFC 3339 time"));
                None
            }
        }
    }

    fn ignore(&mut self, field: &'static str, reason: String) {
        self.ignored.push(IgnoredField { field, reason });
    }
}

/// The start of a string the agent sent, quoted, safe for a log line: printable ASCII as is,
/// everything else escaped (`\n`, `\u{202e}`), at most [`SHOWN_MAX`] bytes of it, `…` when cut.
fn shown(text: &str) -> String {
    let mut out = String::from("\"");
    let mut used = 0;
    for c in text.chars() {
        let piece = match c {
            '"' | '\\' => format!("\\{c}"),
            c if c == ' ' || c.is_ascii_graphic() => c.to_string(),
            c => c.escape_default().to_string(),
        };
        if used + piece.len() > SHOWN_MAX {
            out.push('…');
            break;
        }
        used += piece.len();
        out.push_str(&piece);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const PHASES: [&str; 5] = ["idle", "running", "snapshotted", "done", "failed"];
    const OPTIONAL_STATUS: [&str; 4] = ["started_at", "snapshot_at", "finished_at", "error"];

    fn keep(text: &str) -> String {
        text.to_owned()
    }

    fn due(body: &[u8]) -> Result<Answered<Due>, String> {
        parse_due(body, &keep)
    }

    fn status(body: &[u8]) -> Result<Answered<BackupStatus>, String> {
        parse_status(body, &keep)
    }

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

    /// Any JSON value that is not a string (nor null): the wrong type for every optional field.
    fn not_a_string() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN nor infinities", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        let nested = leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        nested.prop_filter("not a string", |v| !v.is_string())
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in jsonish()) {
            let _ = due(body.as_bytes());
            let _ = status(body.as_bytes());
            let _ = parse_started_id(body.as_bytes());
            let _ = parse_refusal(body.as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = due(&body);
            let _ = status(&body);
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
            let parsed = status(body.to_string().as_bytes()).expect("valid body parses");
            prop_assert!(parsed.ignored.is_empty());
            let status = parsed.answer;
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
        fn valid_due_round_trips(due_now in any::<bool>(), reason in prop::option::of("\\PC{0,30}")) {
            let body = json!({"due": due_now, "reason": reason, "unknown": 1});
            let parsed = due(body.to_string().as_bytes()).expect("valid body parses");
            prop_assert_eq!(parsed.answer.due, due_now);
            prop_assert_eq!(parsed.answer.reason, reason);
            prop_assert_eq!(parsed.answer.next_due_at, None);
            prop_assert!(parsed.ignored.is_empty());
        }

        /// Whatever one optional field holds, `phase` and `id` still decide, the field is
        /// either used or named once in `ignored`, and its reason stays short.
        #[test]
        fn a_bad_optional_status_field_never_fails_the_answer(
            field in prop::sample::select(OPTIONAL_STATUS.to_vec()),
            value in prop_oneof![not_a_string(), "\\PC{0,200}".prop_map(Value::String)],
        ) {
            let body = json!({"id": "b-1", "phase": "snapshotted", field: value.clone()});
            let parsed = status(body.to_string().as_bytes()).expect("phase and id decide");
            prop_assert_eq!(parsed.answer.id.as_deref(), Some("b-1"));
            prop_assert_eq!(&parsed.answer.phase, &BackupPhase::Snapshotted);
            let used = match field {
                "started_at" => parsed.answer.started_at.is_some(),
                "snapshot_at" => parsed.answer.snapshot_at.is_some(),
                "finished_at" => parsed.answer.finished_at.is_some(),
                _ => parsed.answer.error.is_some(),
            };
            let named = parsed.ignored.iter().filter(|i| i.field == field).count();
            prop_assert_eq!(parsed.ignored.len(), named, "only that field: {:?}", parsed.ignored);
            prop_assert_eq!(used, named == 0, "used or ignored, not both: {:?}", parsed.ignored);
            if !value.is_string() {
                prop_assert_eq!(named, 1, "a {} is never used", kind(&value));
            }
            for ignored in &parsed.ignored {
                prop_assert!(ignored.reason.len() <= SHOWN_MAX + 40, "{}", ignored);
                prop_assert!(!ignored.reason.chars().any(char::is_control), "{}", ignored);
            }
        }

        #[test]
        fn a_bad_optional_due_field_never_fails_the_answer(
            field in prop::sample::select(vec!["reason", "next_due_at"]),
            value in prop_oneof![not_a_string(), "\\PC{0,200}".prop_map(Value::String)],
        ) {
            let body = json!({"due": true, field: value});
            let parsed = due(body.to_string().as_bytes()).expect("due decides");
            prop_assert!(parsed.answer.due);
            prop_assert!(parsed.ignored.iter().all(|i| i.field == field));
        }
    }

    #[test]
    fn null_id_and_null_times_are_none_and_not_ignored() {
        let parsed =
            status(br#"{"id": null, "phase": "idle", "finished_at": null, "error": null}"#)
                .expect("parses");
        assert_eq!(parsed.answer.id, None);
        assert_eq!(parsed.answer.phase, BackupPhase::Idle);
        assert_eq!(parsed.answer.finished_at, None);
        assert!(parsed.ignored.is_empty(), "{:?}", parsed.ignored);
    }

    #[test]
    fn a_bad_time_is_ignored_with_its_field_and_value_named() {
        let parsed = status(br#"{"id": "b1", "phase": "done", "finished_at": "yesterday"}"#)
            .expect("only phase and id decide");
        assert_eq!(parsed.answer.phase, BackupPhase::Done);
        assert_eq!(parsed.answer.finished_at, None);
        assert_eq!(
            parsed.ignored,
            [IgnoredField {
                field: "finished_at",
                reason: "\"yesterday\" is not an RFC 3339 time".to_owned()
            }]
        );
    }

    #[test]
    fn the_shown_value_is_short_escaped_and_redacted() {
        assert_eq!(shown("2024-05-01"), "\"2024-05-01\"");
        assert_eq!(shown("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(shown("x\ny\u{202e}"), "\"x\\ny\\u{202e}\"");
        let long = shown(&"9".repeat(500));
        assert_eq!(long, format!("\"{}…\"", "9".repeat(SHOWN_MAX)));

        let secret = "tok-SECRET";
        let redact = |text: &str| text.replace(secret, "***");
        let body = json!({"id": "b", "phase": "running", "started_at": format!("Bearer {secret}")});
        let parsed = parse_status(body.to_string().as_bytes(), &redact).expect("parses");
        assert_eq!(parsed.ignored.len(), 1);
        let text = parsed.ignored[0].to_string();
        assert_eq!(text, "started_at: \"Bearer ***\" is not an RFC 3339 time");
    }

    #[test]
    fn an_id_that_is_missing_or_not_a_string_is_no_backup_of_ours() {
        for body in [
            r#"{"phase": "done"}"#,
            r#"{"id": 5, "phase": "done"}"#,
            r#"{"id": ["b"], "phase": "done"}"#,
        ] {
            let parsed = status(body.as_bytes()).expect(body);
            assert_eq!(parsed.answer.id, None, "{body}");
            assert_eq!(parsed.answer.phase, BackupPhase::Done, "{body}");
            assert_eq!(parsed.ignored.len(), 1, "{body}");
            assert_eq!(parsed.ignored[0].field, "id", "{body}");
        }
    }

    #[test]
    fn the_deciding_fields_are_strict() {
        for (body, names) in [
            (r#"{"id": "b"}"#, "missing field `phase`"),
            (r#"{"id": "b", "phase": 7}"#, "`phase` is a number"),
            (r#"{"id": "b", "phase": null}"#, "`phase` is null"),
            (r#"[]"#, "the body is an array, not an object"),
        ] {
            let err = status(body.as_bytes()).expect_err(body);
            assert!(err.contains(names), "{body}: {err}");
        }
        for (body, names) in [
            (r#"{"reason": "x"}"#, "missing field `due`"),
            (r#"{"due": "yes"}"#, "`due` is a string"),
            (r#"{"due": null}"#, "`due` is null"),
            (r#""due""#, "the body is a string, not an object"),
        ] {
            let err = due(body.as_bytes()).expect_err(body);
            assert!(err.contains(names), "{body}: {err}");
        }
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let parsed =
            due(br#"{"due": false, "next_due_at": "2024-05-01T04:00:00+02:00"}"#).expect("parses");
        let expected = DateTime::parse_from_rfc3339("2024-05-01T02:00:00Z")
            .expect("literal")
            .with_timezone(&Utc);
        assert_eq!(parsed.answer.next_due_at, Some(expected));
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
