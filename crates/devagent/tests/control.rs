//! The control endpoint: faults, due mode and the timeline, changed and read at run time over
//! HTTPS, as a test that runs the agent as a process does.

mod support;

use std::time::Duration;

use felhom_devagent::{DueMode, Event, EventKind, Fault};
use serde_json::json;
use support::{bounded, start_agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_set_in_text_or_object_form_and_take_effect() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let body = json!({ "faults": [
            "unavailable",
            { "kind": "status500", "count": 2 },
            { "kind": "conflict", "id": "b-x" },
            { "kind": "slow_status", "delay": "10ms" },
            "forget",
        ]});
        let reply = fx.post("/control/faults", &body.to_string()).await;
        assert_eq!(reply.code, 200, "{reply:?}");
        let expected = json!({ "faults": [
            "unavailable", "status500:2", "conflict:b-x", "slow_status:10ms", "forget"
        ]});
        assert_eq!(reply.json(), expected);
        assert_eq!(fx.get("/control/faults").await.json(), expected);
        assert_eq!(
            fx.agent.faults(),
            [
                Fault::Unavailable,
                Fault::Status500(2),
                Fault::Conflict("b-x".into()),
                Fault::SlowStatus(Duration::from_millis(10)),
                Fault::Forget,
            ]
        );
        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-1"}"#).await.code, 503);
        assert_eq!(fx.get("/backup/status").await.code, 500);

        let reply = fx.post("/control/faults", r#"{"faults":[]}"#).await;
        assert_eq!(reply.json(), json!({ "faults": [] }));
        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-1"}"#).await.code, 202);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_control_bodies_are_refused_naming_the_problem_and_change_nothing() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::Hang]).await;
        for (body, needle) in [
            (r#"{"faults":["explode"]}"#, "explode"),
            (r#"{"faults":["hang", "status500:x"]}"#, "status500:x"),
            (r#"{"faults":[{"kind":"conflict"}]}"#, "id"),
            (
                r#"{"faults":[{"kind":"conflict","id":"../etc"}]}"#,
                "../etc",
            ),
            (r#"{"faults":[42]}"#, "42"),
            (r#"{"fault":["hang"]}"#, "faults"),
            ("not json", "not JSON"),
        ] {
            let reply = fx.post("/control/faults", body).await;
            assert_eq!(reply.code, 400, "{body}: {reply:?}");
            let error = reply.json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(error.contains(needle), "{body}: {error}");
        }
        assert_eq!(
            fx.agent.faults(),
            [Fault::Hang],
            "a refused set changes nothing"
        );

        for body in [r#"{"due":"sometimes"}"#, r#"{"due":"every:0s"}"#, "{}"] {
            let reply = fx.post("/control/due", body).await;
            assert_eq!(reply.code, 400, "{body}: {reply:?}");
        }
        assert_eq!(
            fx.get("/control/due").await.json(),
            json!({ "due": "always" })
        );
        assert_eq!(fx.get("/control/events").await.code, 200);
        assert_eq!(fx.post("/control/events", "{}").await.code, 405);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_is_changed_at_run_time() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        assert_eq!(fx.get("/backup/due").await.json()["due"], true);

        let reply = fx.post("/control/due", r#"{"due":"never"}"#).await;
        assert_eq!(reply.json(), json!({ "due": "never" }));
        assert_eq!(fx.get("/backup/due").await.json()["due"], false);

        let reply = fx.post("/control/due", r#"{"due":"every:30s"}"#).await;
        assert_eq!(reply.json(), json!({ "due": "every:30s" }));
        assert_eq!(fx.get("/backup/due").await.json()["due"], true);
        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-1"}"#).await.code, 202);
        let due = fx.get("/backup/due").await.json();
        assert_eq!(due["due"], false, "{due}");
        assert!(due["next_due_at"].is_string(), "{due}");

        fx.post("/control/due", r#"{"due":"once"}"#).await;
        assert_eq!(
            fx.get("/control/due").await.json(),
            json!({ "due": "once" })
        );
        assert_eq!(fx.get("/backup/due").await.json()["due"], true);
        fx.agent.set_due(DueMode::Never);
        assert_eq!(
            fx.get("/control/due").await.json(),
            json!({ "due": "never" })
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_served_as_recorded_and_control_requests_stay_out_of_them() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        assert_eq!(fx.post("/backup", r#"{"cycle_id":"c-9"}"#).await.code, 202);
        fx.wait_for_phase("done", Duration::from_secs(30)).await;
        fx.post("/control/due", r#"{"due":"never"}"#).await;

        let reply = fx.get("/control/events").await;
        assert_eq!(reply.code, 200);
        let served: Vec<Event> =
            serde_json::from_value(reply.json()["events"].clone()).expect("events parse");
        assert_eq!(served, fx.agent.events());
        assert!(served.iter().all(|e| match &e.kind {
            EventKind::Request { path, .. } => !path.starts_with("/control"),
            _ => true,
        }));
        let kinds: Vec<&str> = served
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::BackupRequested { .. } => Some("requested"),
                EventKind::SnapshotTaken { .. } => Some("snapshot"),
                EventKind::ArchiveFinished { .. } => Some("archive"),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, ["requested", "snapshot", "archive"]);
    })
    .await;
}
