//! Every answer of SPEC §3 against a real TLS server: status codes, phases, optional and
//! unknown fields, and bodies that break the contract.

mod support;

use std::time::Duration;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use felhom_agentapi::{AgentApi, AgentError, BackupPhase, BackupStart, IgnoredField};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use support::{assert_no_token, bounded, client_for, json, Reply, Seen, TlsServer, TOKEN};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test literal is RFC 3339")
        .with_timezone(&Utc)
}

/// A server that answers `reply` to authorized requests and `401` to others.
async fn agent(reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> TlsServer {
    TlsServer::start(move |seen: &Seen| {
        if seen.authorized() {
            reply(seen)
        } else {
            json(401, json!({"error": "unauthorized"}))
        }
    })
    .await
}

#[tokio::test]
async fn due_with_reason_and_next_due_at() {
    bounded(async {
        let server = agent(|_| {
            json(
                200,
                json!({"due": true, "reason": "nightly window", "next_due_at": "2024-05-02T02:00:00Z"}),
            )
        })
        .await;
        let due = server.client().backup_due().await.expect("due answers");
        assert!(due.due);
        assert_eq!(due.reason.as_deref(), Some("nightly window"));
        assert_eq!(due.next_due_at, Some(utc("2024-05-02T02:00:00Z")));

        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].target, "/backup/due");
        assert_eq!(
            seen[0].header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(seen[0].header("accept"), Some("application/json"));
    })
    .await;
}

#[tokio::test]
async fn not_due_with_only_the_required_field() {
    bounded(async {
        let server = agent(|_| json(200, json!({"due": false}))).await;
        let due = server.client().backup_due().await.expect("due answers");
        assert!(!due.due);
        assert_eq!(due.reason, None);
        assert_eq!(due.next_due_at, None);
    })
    .await;
}

#[tokio::test]
async fn due_with_a_time_that_is_not_rfc3339_is_still_due_and_names_the_field() {
    bounded(async {
        let server =
            agent(|_| json(200, json!({"due": true, "next_due_at": "tomorrow 2am"}))).await;
        let client = server.client();
        let checked = client.backup_due_checked().await.expect("due decides");
        assert!(
            checked.answer.due,
            "a bad next_due_at must not disable backups"
        );
        assert_eq!(checked.answer.next_due_at, None);
        assert_eq!(checked.ignored.len(), 1, "{:?}", checked.ignored);
        assert_eq!(
            checked.ignored[0].to_string(),
            "next_due_at: \"tomorrow 2am\" is not an RFC 3339 time"
        );
        // The plain request gets the same answer, without the list.
        assert_eq!(client.backup_due().await.expect("due"), checked.answer);
    })
    .await;
}

#[tokio::test]
async fn start_sends_the_cycle_id_and_202_is_a_new_backup() {
    bounded(async {
        let server = agent(|seen| {
            let body: serde_json::Value =
                serde_json::from_str(&seen.body).unwrap_or(serde_json::Value::Null);
            if seen.method == "POST"
                && seen.target == "/backup"
                && seen.header("content-type") == Some("application/json")
                && body == json!({"cycle_id": "cycle-42"})
            {
                json(202, json!({"id": "b-1", "phase": "running"}))
            } else {
                json(400, json!({"error": "not the request of the contract"}))
            }
        })
        .await;
        let started = server
            .client()
            .start_backup("cycle-42")
            .await
            .expect("the backup starts");
        assert_eq!(
            started,
            BackupStart {
                id: "b-1".to_owned(),
                adopted: false
            }
        );
    })
    .await;
}

#[tokio::test]
async fn start_answered_200_or_201_is_a_new_backup_too() {
    bounded(async {
        for status in [200, 201] {
            let server = agent(move |_| json(status, json!({"id": "b-2"}))).await;
            let started = server.client().start_backup("c").await.expect("2xx starts");
            assert_eq!(started.id, "b-2");
            assert!(!started.adopted);
        }
    })
    .await;
}

#[tokio::test]
async fn conflict_adopts_the_running_backup() {
    bounded(async {
        let server = agent(|_| {
            json(
                409,
                json!({"error": "a backup is already running", "id": "b-0"}),
            )
        })
        .await;
        let started = server.client().start_backup("c").await.expect("409 adopts");
        assert_eq!(
            started,
            BackupStart {
                id: "b-0".to_owned(),
                adopted: true
            }
        );
    })
    .await;
}

#[tokio::test]
async fn conflict_without_an_id_is_an_error() {
    bounded(async {
        let server = agent(|_| json(409, json!({"error": "a backup is already running"}))).await;
        let err = server
            .client()
            .start_backup("c")
            .await
            .expect_err("nothing to adopt");
        assert!(matches!(err, AgentError::Malformed { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("POST /backup: "), "{text}");
        assert!(text.contains("409 Conflict"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn unavailable_carries_the_agents_reason() {
    bounded(async {
        let server = agent(|_| json(503, json!({"error": "backup storage offline"}))).await;
        let err = server.client().start_backup("c").await.expect_err("503");
        match &err {
            AgentError::Unavailable { request, message } => {
                assert_eq!(*request, "POST /backup");
                assert_eq!(message, "backup storage offline");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "POST /backup: the agent cannot back up now: backup storage offline"
        );
    })
    .await;
}

#[tokio::test]
async fn unavailable_without_json_keeps_the_body_as_reason() {
    bounded(async {
        let server = agent(|_| Reply::Json(503, "maintenance until 3am".to_owned())).await;
        let err = server.client().start_backup("c").await.expect_err("503");
        assert!(
            matches!(&err, AgentError::Unavailable { message, .. } if message == "maintenance until 3am"),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn wrong_token_is_an_authentication_error_that_never_shows_the_token() {
    bounded(async {
        let server = agent(|_| json(200, json!({"due": false}))).await;
        let wrong = "wrong-SECRET-token-123";
        let client = client_for(&server.url(), wrong, server.pin, Duration::from_secs(5));

        let errors = [
            client.backup_due().await.expect_err("401"),
            client.start_backup("c").await.expect_err("401"),
            client.backup_status().await.expect_err("401"),
        ];
        for (err, request) in
            errors
                .iter()
                .zip(["GET /backup/due", "POST /backup", "GET /backup/status"])
        {
            assert!(
                matches!(err, AgentError::Unauthorized { request: r } if *r == request),
                "{err:?}"
            );
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("401"), "{shown}");
            assert!(!shown.contains(wrong), "the token leaked: {shown}");
        }
        // The server really checks: the right token gets through.
        server.client().backup_due().await.expect("right token");
    })
    .await;
}

#[tokio::test]
async fn unexpected_status_is_named_with_the_start_of_the_body() {
    bounded(async {
        let long = "x".repeat(500);
        let server = agent(move |_| Reply::Json(500, format!("database is locked {long}"))).await;
        let err = server.client().backup_status().await.expect_err("500");
        assert!(
            matches!(&err, AgentError::Status { status, .. } if status.as_u16() == 500),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(
                "GET /backup/status: unexpected status 500 Internal Server Error: database is locked"
            ),
            "{text}"
        );
        // 200 characters of body and an ellipsis, not the whole body.
        assert!(text.len() < 300, "{text}");
        assert!(text.ends_with('…'), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_body_that_echoes_the_token_is_redacted_in_errors() {
    bounded(async {
        let server = agent(|seen| {
            let echoed = seen.header("authorization").unwrap_or("").to_owned();
            let body = json!({"error": format!("proxy saw {echoed}"), "due": echoed});
            match seen.target.as_str() {
                "/backup" => json(503, body),
                "/backup/status" => json(200, body),
                _ => json(502, body),
            }
        })
        .await;
        let client = server.client();
        let errors = [
            client.backup_due().await.expect_err("502"),
            client.start_backup("c").await.expect_err("503"),
            client.backup_status().await.expect_err("no phase"),
        ];
        for err in &errors {
            assert_no_token(err);
        }
        assert!(
            errors[0].to_string().contains("Bearer ***"),
            "{}",
            errors[0]
        );
    })
    .await;
}

#[tokio::test]
async fn statuses_outside_the_contract_are_errors_for_each_request() {
    bounded(async {
        // 409 and 503 mean something only to POST /backup; a redirect is not followed.
        for status in [302, 404, 409, 503] {
            let server = agent(move |_| json(status, json!({"error": "x", "id": "b"}))).await;
            let client = server.client();
            for err in [
                client.backup_due().await.expect_err("not 2xx"),
                client.backup_status().await.expect_err("not 2xx"),
            ] {
                assert!(
                    matches!(&err, AgentError::Status { status: s, .. } if s.as_u16() == status),
                    "{status}: {err:?}"
                );
            }
        }
        let server = agent(|_| json(404, json!({}))).await;
        let err = server.client().start_backup("c").await.expect_err("404");
        assert!(
            err.to_string()
                .starts_with("POST /backup: unexpected status 404 Not Found"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn every_phase_of_the_contract() {
    bounded(async {
        for (text, phase) in [
            ("idle", BackupPhase::Idle),
            ("running", BackupPhase::Running),
            ("snapshotted", BackupPhase::Snapshotted),
            ("done", BackupPhase::Done),
            ("failed", BackupPhase::Failed),
        ] {
            let server = agent(move |_| json(200, json!({"id": "b-9", "phase": text}))).await;
            let status = server
                .client()
                .backup_status()
                .await
                .expect("status answers");
            assert_eq!(status.phase, phase, "{text}");
            assert_eq!(status.id.as_deref(), Some("b-9"));
        }
    })
    .await;
}

#[tokio::test]
async fn a_failed_backup_with_all_its_fields() {
    bounded(async {
        let server = agent(|_| {
            json(
                200,
                json!({
                    "id": "b-3",
                    "phase": "failed",
                    "started_at": "2024-05-01T02:00:00Z",
                    "snapshot_at": "2024-05-01T02:00:05.250+00:00",
                    "finished_at": "2024-05-01T04:10:00+02:00",
                    "error": "vzdump exited with 2",
                }),
            )
        })
        .await;
        let status = server
            .client()
            .backup_status()
            .await
            .expect("status answers");
        assert_eq!(status.phase, BackupPhase::Failed);
        assert_eq!(status.started_at, Some(utc("2024-05-01T02:00:00Z")));
        assert_eq!(status.snapshot_at, Some(utc("2024-05-01T02:00:05.250Z")));
        assert_eq!(status.finished_at, Some(utc("2024-05-01T02:10:00Z")));
        assert_eq!(status.error.as_deref(), Some("vzdump exited with 2"));
    })
    .await;
}

#[tokio::test]
async fn unknown_phase_is_kept_and_null_id_is_none() {
    bounded(async {
        let server = agent(|_| json(200, json!({"id": null, "phase": "verifying"}))).await;
        let status = server
            .client()
            .backup_status()
            .await
            .expect("status answers");
        assert_eq!(status.phase, BackupPhase::Unknown("verifying".to_owned()));
        assert_eq!(status.id, None);
    })
    .await;
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    bounded(async {
        let server = agent(|seen| match seen.target.as_str() {
            "/backup/due" => json(
                200,
                json!({"due": true, "window": {"from": "02:00"}, "hosts": [1, 2], "v": 2}),
            ),
            "/backup" => json(202, json!({"id": "b-4", "phase": "running", "eta": 60})),
            _ => json(
                200,
                json!({"id": "b-4", "phase": "running", "progress": 0.5, "node": {"name": "pve"}}),
            ),
        })
        .await;
        let client = server.client();
        assert!(client.backup_due().await.expect("due").due);
        assert_eq!(client.start_backup("c").await.expect("start").id, "b-4");
        assert_eq!(
            client.backup_status().await.expect("status").phase,
            BackupPhase::Running
        );
    })
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_clear_errors_for_each_request() {
    bounded(async {
        for body in [
            "{\"due\": tru",
            "not json",
            "",
            "[]",
            "{\"due\": \"yes\", \"id\": 5, \"phase\": 7}",
        ] {
            let server = agent(move |seen| {
                let status = if seen.target == "/backup" { 202 } else { 200 };
                Reply::Json(status, body.to_owned())
            })
            .await;
            let client = server.client();
            for (err, request) in [
                (
                    client.backup_due().await.expect_err(body),
                    "GET /backup/due",
                ),
                (
                    client.start_backup("c").await.expect_err(body),
                    "POST /backup",
                ),
                (
                    client.backup_status().await.expect_err(body),
                    "GET /backup/status",
                ),
            ] {
                assert!(
                    matches!(err, AgentError::Malformed { .. }),
                    "{body:?}: {err:?}"
                );
                assert!(
                    err.to_string()
                        .starts_with(&format!("{request}: malformed JSON: ")),
                    "{body:?}: {err}"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn status_without_a_phase_is_malformed() {
    bounded(async {
        let server = agent(|_| json(200, json!({"id": "b-5"}))).await;
        let err = server.client().backup_status().await.expect_err("no phase");
        assert!(err.to_string().contains("phase"), "{err}");
    })
    .await;
}

/// Every kind of bad value an optional field may hold. Only the time fields can be wrong as
/// strings; every field is wrong as anything else.
fn bad_values() -> Vec<(&'static str, Value)> {
    vec![
        ("an empty string", json!("")),
        ("a date without a time", json!("2024-05-01")),
        ("a time without a date", json!("02:00:00Z")),
        ("a time without an offset", json!("2024-05-01T02:00:00")),
        ("the basic format", json!("20240501T020000Z")),
        ("month 13", json!("2024-13-01T00:00:00Z")),
        ("words", json!("tomorrow 2am")),
        ("control characters", json!("2024\n05\u{1b}[31m\u{202e}")),
        ("a very long string", json!("9".repeat(20_000))),
        ("the token", json!(format!("Bearer {TOKEN}"))),
        ("an integer", json!(1_714_528_800)),
        ("a float", json!(1.5)),
        ("a boolean", json!(true)),
        ("an object", json!({"at": "2024-05-01T02:00:00Z"})),
        ("an array", json!(["2024-05-01T02:00:00Z"])),
    ]
}

/// Each field with each value that is bad for it: every bad value for the time fields, every
/// one but the strings for the string fields (any string is a valid `error` or `reason`).
fn bad_cases(
    times: &[&'static str],
    strings: &[&'static str],
) -> Vec<(&'static str, &'static str, Value)> {
    let mut cases = Vec::new();
    for (field, strings_are_bad) in times
        .iter()
        .map(|f| (*f, true))
        .chain(strings.iter().map(|f| (*f, false)))
    {
        for (what, value) in bad_values() {
            if strings_are_bad || !value.is_string() {
                cases.push((field, what, value));
            }
        }
    }
    cases
}

/// A server answering whatever body the test last put in the returned slot.
async fn answering_slot() -> (TlsServer, Arc<Mutex<String>>) {
    let slot = Arc::new(Mutex::new(String::new()));
    let body = Arc::clone(&slot);
    let server = agent(move |_| Reply::Json(200, body.lock().expect("slot").clone())).await;
    (server, slot)
}

/// What every ignored field's report must be: its field, short, printable, no token.
fn assert_reported(ignored: &[IgnoredField], field: &str, what: &str) {
    assert_eq!(ignored.len(), 1, "{field} = {what}: {ignored:?}");
    let report = &ignored[0];
    assert_eq!(report.field, field, "{what}: {report}");
    let text = report.to_string();
    assert!(text.len() <= 100, "{field} = {what}: too long: {text}");
    assert!(
        !text.chars().any(char::is_control),
        "{field} = {what}: {text:?}"
    );
    assert!(
        !text.contains(TOKEN),
        "{field} = {what}: the token leaked: {text}"
    );
}

#[tokio::test]
async fn every_bad_optional_status_field_is_ignored_and_reported() {
    bounded(async {
        let (server, slot) = answering_slot().await;
        let client = server.client();
        let good = "2024-05-01T02:00:00Z";
        let cases = bad_cases(&["started_at", "snapshot_at", "finished_at"], &["error"]);
        for (field, what, value) in cases {
            let mut body = json!({
                "id": "b-7", "phase": "snapshotted", "started_at": good,
                "snapshot_at": good, "finished_at": good, "error": "disk full",
            });
            body[field] = value;
            *slot.lock().expect("slot") = body.to_string();

            let checked = client
                .backup_status_wait(&BackupPhase::Running, Duration::ZERO)
                .await
                .unwrap_or_else(|e| panic!("{field} = {what}: {e}"));
            let status = &checked.answer;
            assert_eq!(status.phase, BackupPhase::Snapshotted, "{field} = {what}");
            assert_eq!(status.id.as_deref(), Some("b-7"), "{field} = {what}");
            let fields = [
                ("started_at", status.started_at.is_some()),
                ("snapshot_at", status.snapshot_at.is_some()),
                ("finished_at", status.finished_at.is_some()),
                ("error", status.error.is_some()),
            ];
            for (name, present) in fields {
                assert_eq!(
                    present,
                    name != field,
                    "{field} = {what}: {name} in {status:?}"
                );
            }
            assert_reported(&checked.ignored, field, what);
            if what == "words" {
                assert!(checked.ignored[0].reason.contains("tomorrow 2am"));
            }
            // The plain request answers the same, instead of failing every poll.
            assert_eq!(client.backup_status().await.expect("plain"), checked.answer);
        }
    })
    .await;
}

#[tokio::test]
async fn every_bad_optional_due_field_is_ignored_and_reported() {
    bounded(async {
        let (server, slot) = answering_slot().await;
        let client = server.client();
        for (field, what, value) in bad_cases(&["next_due_at"], &["reason"]) {
            let mut body = json!({
                "due": true, "reason": "window", "next_due_at": "2024-05-02T02:00:00Z",
            });
            body[field] = value;
            *slot.lock().expect("slot") = body.to_string();
            let checked = client
                .backup_due_checked()
                .await
                .unwrap_or_else(|e| panic!("{field} = {what}: {e}"));
            assert!(checked.answer.due, "{field} = {what}: still due");
            assert_eq!(checked.answer.reason.is_some(), field != "reason");
            assert_eq!(checked.answer.next_due_at.is_some(), field != "next_due_at");
            assert_reported(&checked.ignored, field, what);
        }
    })
    .await;
}

#[tokio::test]
async fn a_bad_phase_or_due_is_an_error_naming_the_request_and_a_bad_id_is_no_backup_of_ours() {
    bounded(async {
        let (server, slot) = answering_slot().await;
        let client = server.client();
        let mut bad_status = vec![(json!({"id": "b"}), "phase")];
        let mut odd_ids = vec![json!({"phase": "running"})];
        for wrong in [json!(7), json!(true), json!({}), json!([]), Value::Null] {
            bad_status.push((json!({"id": "b", "phase": wrong.clone()}), "phase"));
            if !wrong.is_null() {
                odd_ids.push(json!({"id": wrong, "phase": "running"}));
            }
        }
        // An `id` that is missing or not a string is no backup of ours (the caller resumes at
        // once, outcome `lost`), reported as ignored — never an error that keeps polling.
        for body in odd_ids {
            *slot.lock().expect("slot") = body.to_string();
            let status = client
                .backup_status_wait(&BackupPhase::Running, Duration::ZERO)
                .await
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(status.answer.id, None, "{body}");
            assert_eq!(status.answer.phase, BackupPhase::Running, "{body}");
            assert!(
                status.ignored.iter().any(|i| i.field == "id"),
                "{body}: {:?}",
                status.ignored
            );
        }
        for (body, field) in bad_status {
            *slot.lock().expect("slot") = body.to_string();
            for err in [
                client.backup_status().await.expect_err("strict"),
                client
                    .backup_status_wait(&BackupPhase::Running, Duration::ZERO)
                    .await
                    .expect_err("strict"),
            ] {
                assert!(
                    matches!(err, AgentError::Malformed { .. }),
                    "{body}: {err:?}"
                );
                let text = err.to_string();
                assert!(text.starts_with("GET /backup/status: "), "{body}: {text}");
                assert!(text.contains(&format!("`{field}`")), "{body}: {text}");
            }
        }
        for body in [
            json!({"reason": "x"}),
            json!({"due": "yes"}),
            json!({"due": 1}),
            json!({"due": null}),
        ] {
            *slot.lock().expect("slot") = body.to_string();
            let err = client.backup_due_checked().await.expect_err("strict");
            let text = err.to_string();
            assert!(text.starts_with("GET /backup/due: "), "{body}: {text}");
            assert!(text.contains("`due`"), "{body}: {text}");
        }
    })
    .await;
}

/// Any value in any optional field, over the real TLS server: the answer never fails, and
/// `phase`, `id` and the other fields come through.
#[test]
fn any_optional_field_value_never_fails_a_status_poll() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (server, slot) = runtime.block_on(answering_slot());
    let client = server.client();
    let value = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "\\PC{0,80}".prop_map(Value::from),
        "[0-9T:Z+. -]{0,30}".prop_map(Value::from),
        prop::collection::vec("\\PC{0,8}", 0..3).prop_map(Value::from),
    ];
    let fields = prop::sample::select(vec!["started_at", "snapshot_at", "finished_at", "error"]);
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&(fields, value), |(field, value)| {
            let body = json!({"id": "b-1", "phase": "done", "finished_at": "2024-05-01T02:00:00Z", field: value});
            *slot.lock().expect("slot") = body.to_string();
            let checked = runtime
                .block_on(bounded(client.backup_status_wait(&BackupPhase::Running, Duration::ZERO)))
                .map_err(|e| TestCaseError::fail(format!("{body}: {e}")))?;
            prop_assert_eq!(&checked.answer.phase, &BackupPhase::Done);
            prop_assert_eq!(checked.answer.id.as_deref(), Some("b-1"));
            if field != "finished_at" {
                prop_assert!(checked.answer.finished_at.is_some());
            }
            prop_assert!(checked.ignored.iter().all(|i| i.field == field), "{:?}", checked.ignored);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
