//! Every fault mode, observed over real HTTPS with curl.

mod support;

use std::time::Duration;

use felhom_devagent::{EventKind, Fault};
use serde_json::Value;
use support::{bounded, curl, start_agent, TOKEN};

const START: &str = r#"{"cycle_id":"c-1"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_ends_the_backup_failed_without_ever_reporting_snapshotted() {
    bounded(async {
        let fx = start_agent(|cfg| {
            cfg.snapshot_delay = Duration::from_millis(800);
            cfg.faults = vec![Fault::FailBackup];
        })
        .await;
        let started = fx.post("/backup", START).await;
        assert_eq!(started.code, 202, "{started:?}");
        let id = started.json()["id"].clone();
        let (status, seen) = fx.wait_for_phase("failed", Duration::from_secs(30)).await;
        assert_eq!(seen, ["running", "failed"]);
        assert_eq!(status["id"], id);
        assert_eq!(status["error"], "injected failure");
        assert!(status.get("snapshot_at").is_none(), "{status}");
        assert!(fx.agent.events().iter().any(|e| matches!(
            &e.kind,
            EventKind::BackupFailed { error, .. } if error == "injected failure"
        )));
        assert!(!fx
            .agent
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::SnapshotTaken { .. })));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_keeps_the_backup_running_until_cleared() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::Hang]).await;
        let started = fx.post("/backup", START).await;
        assert_eq!(started.code, 202);
        let id = started.json()["id"].clone();

        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            let status = fx.status().await;
            assert_eq!(status["phase"], "running", "{status}");
            assert_eq!(status["id"], id);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let again = fx.post("/backup", r#"{"cycle_id":"c-2"}"#).await;
        assert_eq!(again.code, 409, "the hung backup still counts as running");
        assert_eq!(again.json()["id"], id);

        fx.agent.clear_faults();
        let (status, _) = fx.wait_for_phase("done", Duration::from_secs(30)).await;
        assert_eq!(status["id"], id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status500_answers_500_n_times_then_recovers() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::Status500(3)]).await;
        for n in 1..=3 {
            let reply = fx.get("/backup/status").await;
            assert_eq!(reply.code, 500, "status request {n}: {reply:?}");
            assert!(reply.json()["error"].is_string());
        }
        assert_eq!(fx.get("/backup/status").await.code, 200);
        assert_eq!(fx.get("/backup/status").await.code, 200);
        assert!(fx.agent.faults().is_empty(), "{:?}", fx.agent.faults());
        // Only status is affected.
        fx.agent.set_faults(vec![Fault::Status500(1)]);
        assert_eq!(fx.get("/backup/due").await.code, 200);
        assert_eq!(fx.agent.faults(), [Fault::Status500(1)]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonjson_answers_a_status_body_that_is_not_json() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::NonJson]).await;
        let reply = fx.get("/backup/status").await;
        assert_eq!(reply.code, 200);
        assert!(!reply.body.is_empty());
        assert!(
            serde_json::from_str::<Value>(&reply.body).is_err(),
            "{reply:?}"
        );
        fx.agent.clear_faults();
        assert_eq!(fx.status().await["phase"], "idle");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_answers_a_valid_status_over_64_kib() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::Oversized]).await;
        let reply = fx.get("/backup/status").await;
        assert_eq!(reply.code, 200);
        assert!(reply.body.len() > 64 * 1024, "{} bytes", reply.body.len());
        assert_eq!(
            reply.json()["phase"],
            "idle",
            "still a valid status, only too big"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_answers_idle_with_a_null_id_after_a_start() {
    bounded(async {
        let fx = start_agent(|cfg| {
            cfg.faults = vec![Fault::Forget];
            cfg.snapshot_delay = Duration::from_millis(500);
        })
        .await;
        let started = fx.post("/backup", START).await;
        assert_eq!(started.code, 202);
        let id = started.json()["id"].clone();
        let status = fx.status().await;
        assert_eq!(status, serde_json::json!({ "id": null, "phase": "idle" }));
        // The job itself went on, as a vzdump would after the agent restarted.
        fx.agent.clear_faults();
        let (status, _) = fx.wait_for_phase("done", Duration::from_secs(30)).await;
        assert_eq!(status["id"], id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_answers_409_with_that_id_whose_backup_then_runs_to_done() {
    bounded(async {
        let fx = start_agent(|cfg| {
            cfg.faults = vec![Fault::Conflict("b-elsewhere".into())];
            cfg.snapshot_delay = Duration::from_millis(500);
        })
        .await;
        let reply = fx.post("/backup", START).await;
        assert_eq!(reply.code, 409, "{reply:?}");
        assert_eq!(
            reply.json(),
            serde_json::json!({ "error": "a backup is already running", "id": "b-elsewhere" })
        );
        let (status, seen) = fx.wait_for_phase("done", Duration::from_secs(30)).await;
        assert_eq!(status["id"], "b-elsewhere");
        assert_eq!(seen.first().map(String::as_str), Some("running"));
        assert!(fx.out().join("b-elsewhere.tar").is_file());

        let again = fx.post("/backup", r#"{"cycle_id":"c-2"}"#).await;
        assert_eq!(again.code, 409);
        assert_eq!(again.json()["id"], "b-elsewhere");
        let requested = fx
            .agent
            .events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BackupRequested { .. }))
            .count();
        assert_eq!(requested, 1, "the adopted backup runs once");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_answers_503_and_starts_nothing() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::Unavailable]).await;
        let reply = fx.post("/backup", START).await;
        assert_eq!(reply.code, 503, "{reply:?}");
        assert!(reply.json()["error"].is_string());
        assert_eq!(fx.status().await["phase"], "idle");
        assert!(!fx
            .agent
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::BackupRequested { .. })));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_never_answers_the_api_while_control_still_does() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::Silent]).await;
        let url = fx.agent.url();
        for (method, path, body) in [
            ("GET", "/backup/due", None),
            ("GET", "/backup/status", None),
            ("POST", "/backup", Some(START)),
        ] {
            // 2 s rather than 1: on a loaded machine the handshake alone may take a while, and
            // the request must have been sent for the count below.
            let reply = curl(&url, Some(TOKEN), method, path, body, 2).await;
            assert_eq!(
                reply.curl_exit, 28,
                "{method} {path} must time out: {reply:?}"
            );
            assert_eq!(reply.code, 0);
        }
        let control = fx.get("/control/faults").await;
        assert_eq!(control.code, 200);
        assert_eq!(control.json()["faults"], serde_json::json!(["silent"]));
        let unanswered = fx
            .agent
            .events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::RequestUnanswered { .. }))
            .count();
        assert_eq!(unanswered, 3);

        let cleared = fx.post("/control/faults", r#"{"faults":[]}"#).await;
        assert_eq!(cleared.code, 200);
        assert_eq!(fx.get("/backup/due").await.code, 200);
        assert_eq!(
            fx.status().await["phase"],
            "idle",
            "the silent POST started nothing"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_status_answers_only_after_its_delay() {
    bounded(async {
        let fx =
            start_agent(|cfg| cfg.faults = vec![Fault::SlowStatus(Duration::from_secs(3))]).await;
        let url = fx.agent.url();
        let reply = curl(&url, Some(TOKEN), "GET", "/backup/status", None, 1).await;
        assert_eq!(reply.curl_exit, 28, "{reply:?}");
        let reply = curl(&url, Some(TOKEN), "GET", "/backup/status", None, 10).await;
        assert_eq!(reply.code, 200, "answers once the delay is over: {reply:?}");
        assert_eq!(fx.get("/backup/due").await.code, 200);
    })
    .await;
}
