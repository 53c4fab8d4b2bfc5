//! Every answer of SPEC §3 against a real TLS server: status codes, phases, optional and
//! unknown fields, and bodies that break the contract.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use felhom_agentapi::{AgentApi, AgentError, BackupPhase, BackupStart};
use serde_json::json;
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
async fn due_with_a_time_that_is_not_rfc3339_names_the_field() {
    bounded(async {
        let server =
            agent(|_| json(200, json!({"due": false, "next_due_at": "tomorrow 2am"}))).await;
        let err = server.client().backup_due().await.expect_err("bad time");
        assert!(matches!(err, AgentError::Malformed { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("GET /backup/due: malformed JSON: next_due_at"),
            "{text}"
        );
        assert!(text.contains("tomorrow 2am"), "{text}");
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
