//! The agent API (SPEC §3) over real HTTPS with curl: answers, authentication, the whole backup
//! and its archive, the timeline, the due modes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use felhom_devagent::{DueMode, EventKind};
use serde_json::Value;
use support::{bounded, curl, start_agent, TOKEN};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time string: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_any_backup_status_is_idle_and_due_follows_the_mode() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let due = fx.get("/backup/due").await;
        assert_eq!(due.code, 200, "{due:?}");
        let due = due.json();
        assert_eq!(due["due"], Value::Bool(true), "{due}");
        assert!(due["reason"].is_string(), "{due}");

        let status = fx.status().await;
        assert_eq!(status, serde_json::json!({ "id": null, "phase": "idle" }));

        fx.agent.set_due(DueMode::Never);
        let due = fx.get("/backup/due").await.json();
        assert_eq!(due["due"], Value::Bool(false), "{due}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_refused_with_401_on_every_path() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let url = fx.agent.url();
        let requests = [
            ("GET", "/backup/due", None),
            ("GET", "/backup/status", None),
            ("POST", "/backup", Some(r#"{"cycle_id":"c-1"}"#)),
            ("GET", "/control/events", None),
            (
                "POST",
                "/control/faults",
                Some(r#"{"faults":["unavailable"]}"#),
            ),
            ("GET", "/no/such/path", None),
        ];
        for (method, path, body) in requests {
            for token in [None, Some("wrong-token"), Some("test-token-5f3")] {
                let reply = curl(&url, token, method, path, body, 10).await;
                assert_eq!(reply.code, 401, "{method} {path} with {token:?}: {reply:?}");
                assert_eq!(reply.json(), serde_json::json!({ "error": "unauthorized" }));
            }
        }
        // The scheme must be Bearer: the right token under another scheme is still refused.
        let mut cmd = tokio::process::Command::new("/usr/bin/curl");
        let out = cmd
            .args([
                "-sk",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(["-H", &format!("Authorization: Basic {TOKEN}")])
            .arg(format!("{url}/backup/due"))
            .output()
            .await
            .expect("run curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

        // Nothing was started or changed by the refused requests.
        assert_eq!(fx.status().await["phase"], "idle");
        assert!(fx.agent.faults().is_empty());
        assert!(!fx
            .agent
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::BackupRequested { .. })));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        for path in ["/", "/backup/other", "/backups", "/control/nothing"] {
            let reply = fx.get(path).await;
            assert_eq!(reply.code, 404, "GET {path}: {reply:?}");
            assert!(reply.json()["error"].is_string());
        }
        assert_eq!(fx.post("/backup/due", "{}").await.code, 405);
        assert_eq!(fx.post("/backup/status", "{}").await.code, 405);
        assert_eq!(fx.get("/backup").await.code, 405);
        assert_eq!(fx.status().await["phase"], "idle");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_backup_refuses_a_body_that_does_not_parse() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        for body in [
            "not json",
            "{}",
            r#"{"cycle_id": 5}"#,
            r#"{"cycle_id": ""}"#,
            r#"["cycle_id"]"#,
        ] {
            let reply = fx.post("/backup", body).await;
            assert_eq!(reply.code, 400, "body {body:?}: {reply:?}");
            let error = reply.json()["error"].as_str().map(str::to_owned);
            assert!(
                error.as_deref().is_some_and(|e| e.contains("POST /backup")),
                "{reply:?}"
            );
        }
        let huge = format!(r#"{{"cycle_id":"{}"}}"#, "c".repeat(70 * 1024));
        assert_eq!(fx.post("/backup", &huge).await.code, 413);
        assert_eq!(fx.status().await["phase"], "idle", "nothing started");
    })
    .await;
}

/// Reads a tar archive into path → (kind, content) where content is the file's bytes or the
/// symlink's target.
fn unpack(archive: &Path) -> BTreeMap<String, (char, Vec<u8>)> {
    use std::io::Read;
    let mut entries = BTreeMap::new();
    let mut reader = tar::Archive::new(std::fs::File::open(archive).expect("open the archive"));
    for entry in reader.entries().expect("read the archive") {
        let mut entry = entry.expect("an archive entry");
        let path = entry.path().expect("entry path").display().to_string();
        let kind = entry.header().entry_type();
        let value = if kind.is_file() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read entry");
            ('f', data)
        } else if kind.is_symlink() {
            let target = entry.link_name().expect("link").expect("target");
            ('l', target.display().to_string().into_bytes())
        } else if kind.is_dir() {
            ('d', Vec::new())
        } else {
            ('?', Vec::new())
        };
        entries.insert(path.trim_end_matches('/').to_owned(), value);
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_backup_goes_running_snapshotted_done_and_its_archive_holds_the_source() {
    bounded(async {
        let fx = start_agent(|cfg| {
            cfg.snapshot_delay = Duration::from_millis(1000);
            cfg.archive_delay = Duration::from_millis(2000);
            cfg.events_file = Some(cfg.out_dir.with_file_name("events.jsonl"));
        })
        .await;
        let events_path = fx.dir.path().join("events.jsonl");
        let agent = &fx.agent;
        let url = agent.url();
        let call = |method: &'static str, path: &'static str, body: Option<&'static str>| {
            let url = url.clone();
            async move { curl(&url, Some(TOKEN), method, path, body, 10).await }
        };

        assert_eq!(call("GET", "/backup/due", None).await.json()["due"], true);
        let started = call("POST", "/backup", Some(r#"{"cycle_id":"cycle-42"}"#)).await;
        assert_eq!(started.code, 202, "{started:?}");
        let started = started.json();
        assert_eq!(started["phase"], "running");
        let id = started["id"].as_str().expect("an id").to_owned();

        let mut seen: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            let status = call("GET", "/backup/status", None).await.json();
            assert_eq!(status["id"], id.as_str(), "{status}");
            let phase = status["phase"].as_str().expect("phase").to_owned();
            if seen.last() != Some(&phase) {
                seen.push(phase.clone());
            }
            if phase == "done" {
                break status;
            }
            assert!(tokio::time::Instant::now() < deadline, "seen {seen:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(seen, ["running", "snapshotted", "done"]);
        let (started_at, snapshot_at, finished_at) = (
            time(&status["started_at"]),
            time(&status["snapshot_at"]),
            time(&status["finished_at"]),
        );
        assert!(snapshot_at - started_at >= chrono::Duration::milliseconds(1000));
        assert!(finished_at - snapshot_at >= chrono::Duration::milliseconds(2000));
        assert!(status.get("error").is_none(), "{status}");

        // The archive restores to exactly the source tree.
        let archive = fx.out().join(format!("{id}.tar"));
        let entries = unpack(&archive);
        let expected: BTreeMap<String, (char, Vec<u8>)> = [
            (".env", ('f', b"SECRET=s3cr3t\n".to_vec())),
            ("postgres", ('d', Vec::new())),
            ("postgres/PG_VERSION", ('f', b"16\n".to_vec())),
            ("postgres/base", ('d', Vec::new())),
            ("postgres/base/1234", ('f', vec![7u8; 20_000])),
            ("version", ('l', b"postgres/PG_VERSION".to_vec())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(entries, expected);
        let mut reader = tar::Archive::new(std::fs::File::open(&archive).expect("open"));
        let restored = fx.dir.path().join("restored");
        reader.unpack(&restored).expect("the archive unpacks");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(restored.join(".env"))
            .expect("restored .env")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "modes survive the round trip");

        // The timeline: the backup's steps in order, with times that match the status.
        let events = agent.events();
        let steps: Vec<&EventKind> = events
            .iter()
            .map(|e| &e.kind)
            .filter(|k| !matches!(k, EventKind::Request { .. }))
            .collect();
        assert_eq!(
            steps,
            [
                &EventKind::BackupRequested {
                    id: id.clone(),
                    cycle_id: "cycle-42".into()
                },
                &EventKind::SnapshotTaken { id: id.clone() },
                &EventKind::ArchiveFinished {
                    id: id.clone(),
                    path: std::fs::canonicalize(&archive).expect("archive path"),
                },
            ]
        );
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at), "{events:?}");
        let at = |pred: &dyn Fn(&EventKind) -> bool| {
            events
                .iter()
                .find(|e| pred(&e.kind))
                .map(|e| e.at)
                .expect("event present")
        };
        let snapshot_event = at(&|k| matches!(k, EventKind::SnapshotTaken { .. }));
        assert!((snapshot_event - snapshot_at).num_milliseconds().abs() < 1000);
        assert_eq!(
            events.first().map(|e| &e.kind),
            Some(&EventKind::Request {
                method: "GET".into(),
                path: "/backup/due".into(),
                status: 200
            })
        );
        assert!(events.iter().any(|e| e.kind
            == EventKind::Request {
                method: "POST".into(),
                path: "/backup".into(),
                status: 202
            }));

        // The events file holds the same timeline, one JSON object per line.
        let text = std::fs::read_to_string(&events_path).expect("events file");
        let from_file: Vec<felhom_devagent::Event> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
            .collect();
        assert_eq!(from_file, agent.events());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_while_a_backup_runs_answers_409_with_the_running_id() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.snapshot_delay = Duration::from_millis(1500)).await;
        let first = fx.post("/backup", r#"{"cycle_id":"c-1"}"#).await;
        assert_eq!(first.code, 202, "{first:?}");
        let id = first.json()["id"].as_str().expect("id").to_owned();

        let second = fx.post("/backup", r#"{"cycle_id":"c-2"}"#).await;
        assert_eq!(second.code, 409, "{second:?}");
        assert_eq!(
            second.json(),
            serde_json::json!({ "error": "a backup is already running", "id": id })
        );

        fx.wait_for_phase("done", Duration::from_secs(30)).await;
        let third = fx.post("/backup", r#"{"cycle_id":"c-3"}"#).await;
        assert_eq!(third.code, 202, "after done a new backup starts: {third:?}");
        assert_ne!(third.json()["id"], id.as_str());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_once_turns_false_after_a_start_and_setting_it_rearms() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.due = DueMode::Once).await;
        assert_eq!(fx.get("/backup/due").await.json()["due"], true);
        // A refused start does not spend it.
        assert_eq!(fx.post("/backup", "{}").await.code, 400);
        assert_eq!(fx.get("/backup/due").await.json()["due"], true);

        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-1"}"#).await.code, 202);
        let due = fx.get("/backup/due").await.json();
        assert_eq!(due["due"], false, "{due}");
        fx.wait_for_phase("done", Duration::from_secs(30)).await;
        assert_eq!(fx.get("/backup/due").await.json()["due"], false);

        fx.agent.set_due(DueMode::Once);
        assert_eq!(fx.get("/backup/due").await.json()["due"], true);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_every_is_due_at_once_then_reports_the_next_time() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.due = DueMode::Every(Duration::from_secs(3600))).await;
        let due = fx.get("/backup/due").await.json();
        assert_eq!(due["due"], true, "{due}");
        assert!(due.get("next_due_at").is_none(), "{due}");

        let before = Utc::now();
        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-1"}"#).await.code, 202);
        let after = Utc::now();
        let due = fx.get("/backup/due").await.json();
        assert_eq!(due["due"], false, "{due}");
        let next = time(&due["next_due_at"]);
        let hour = chrono::Duration::seconds(3600);
        assert!(next >= before + hour && next <= after + hour, "{due}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_whose_source_vanished_fails_naming_the_path() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        std::fs::remove_dir_all(fx.source()).expect("remove the source");
        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-1"}"#).await.code, 202);
        let (status, _) = fx.wait_for_phase("failed", Duration::from_secs(30)).await;
        let error = status["error"].as_str().expect("an error").to_owned();
        assert!(error.contains("snapshot"), "{error}");
        assert!(error.contains("source"), "names the source path: {error}");
        assert!(status["finished_at"].is_string(), "{status}");
        assert!(fx.agent.events().iter().any(|e| matches!(
            &e.kind,
            EventKind::BackupFailed { error: logged, .. } if *logged == error
        )));
        // A failed backup is over: the next one may start.
        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-2"}"#).await.code, 202);
    })
    .await;
}
