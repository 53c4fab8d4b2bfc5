//! The long-poll extension of `GET /backup/status` (SPEC §3), observed over real HTTPS with
//! curl: held while the phase is the one the client saw, answered when it changes, capped,
//! turned off by fault `no_long_poll`, and still subject to the other faults.

mod support;

use std::time::Duration;

use felhom_devagent::{Event, EventKind, Fault};
use support::{bounded, curl, start_agent, Fixture, Reply, TOKEN};

const START: &str = r#"{"cycle_id":"c-1"}"#;

/// Far below every wait these tests ask for: an answer within it was not held to the end.
const PROMPT: Duration = Duration::from_secs(20);

fn held(e: &Event) -> bool {
    matches!(e.kind, EventKind::StatusHeld { .. })
}

/// A long-poll with curl, in the background (curl's own bound is above the 60 s cap).
fn long_poll(fx: &Fixture, wait: &str, phase: &str) -> tokio::task::JoinHandle<Reply> {
    let url = fx.agent.url();
    let path = format!("/backup/status?wait={wait}&phase={phase}");
    tokio::spawn(async move { curl(&url, Some(TOKEN), "GET", &path, None, 80).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_status_is_answered_when_the_phase_changes() {
    bounded(async {
        let fx = start_agent(|cfg| {
            cfg.faults = vec![Fault::Hang];
            cfg.archive_delay = Duration::from_secs(60);
        })
        .await;
        assert_eq!(fx.post("/backup", START).await.code, 202);

        let waiting = long_poll(&fx, "60", "running");
        let hold = fx.agent.wait_for_event(held).await;
        assert!(
            matches!(&hold.kind, EventKind::StatusHeld { phase, wait_ms: 60_000 } if phase == "running"),
            "{hold:?}"
        );
        let changed_at = tokio::time::Instant::now();
        fx.agent.clear_faults(); // the backup goes on to its snapshot
        let reply = waiting.await.expect("curl task");
        assert!(
            changed_at.elapsed() < PROMPT,
            "answered only after {:?}",
            changed_at.elapsed()
        );
        assert_eq!(reply.code, 200, "{reply:?}");
        assert_eq!(reply.json()["phase"], "snapshotted", "{reply:?}");

        // Held before the snapshot, answered after it: the change itself woke it.
        let events = fx.agent.events();
        let position = |wanted: &dyn Fn(&EventKind) -> bool| {
            events
                .iter()
                .position(|e| wanted(&e.kind))
                .unwrap_or_else(|| panic!("missing event in {events:?}"))
        };
        let hold = position(&|k| matches!(k, EventKind::StatusHeld { .. }));
        let snapshot = position(&|k| matches!(k, EventKind::SnapshotTaken { .. }));
        let answer = position(
            &|k| matches!(k, EventKind::Request { path, status: 200, .. } if path == "/backup/status"),
        );
        assert!(hold < snapshot && snapshot < answer, "{events:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_that_differs_already_is_answered_at_once() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let asked = tokio::time::Instant::now();
        let reply = long_poll(&fx, "60", "running").await.expect("curl task");
        assert!(asked.elapsed() < PROMPT, "took {:?}", asked.elapsed());
        assert_eq!(reply.json()["phase"], "idle", "{reply:?}");
        assert!(!fx.agent.events().iter().any(held));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_ends_with_the_same_phase_and_is_capped_at_60_s() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let reply = long_poll(&fx, "1", "idle").await.expect("curl task");
        assert_eq!(reply.code, 200, "{reply:?}");
        assert_eq!(reply.json()["phase"], "idle");
        assert!(fx.agent.events().iter().any(|e| matches!(
            &e.kind,
            EventKind::StatusHeld { phase, wait_ms: 1000 } if phase == "idle"
        )));

        // An hour is held 60 s at most; a new backup ends it sooner.
        let waiting = long_poll(&fx, "3600", "idle");
        fx.agent
            .wait_for_event(|e| {
                matches!(
                    e.kind,
                    EventKind::StatusHeld {
                        wait_ms: 60_000,
                        ..
                    }
                )
            })
            .await;
        assert_eq!(fx.post("/backup", START).await.code, 202);
        let reply = waiting.await.expect("curl task");
        assert_eq!(reply.json()["phase"], "running", "{reply:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_long_poll_answers_at_once_set_at_start_or_over_the_control_endpoint() {
    bounded(async {
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::NoLongPoll]).await;
        let asked = tokio::time::Instant::now();
        let reply = long_poll(&fx, "60", "idle").await.expect("curl task");
        assert!(asked.elapsed() < PROMPT, "took {:?}", asked.elapsed());
        assert_eq!(reply.json()["phase"], "idle", "{reply:?}");

        fx.agent.clear_faults();
        let set = fx
            .post(
                "/control/faults",
                r#"{"faults": [{"kind": "no_long_poll"}]}"#,
            )
            .await;
        assert_eq!(set.json()["faults"], serde_json::json!(["no_long_poll"]));
        let reply = long_poll(&fx, "60", "idle").await.expect("curl task");
        assert_eq!(reply.json()["phase"], "idle", "{reply:?}");
        assert!(!fx.agent.events().iter().any(held), "never held");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_faults_still_apply_to_a_long_poll() {
    bounded(async {
        // Breaking faults answer at once, without a hold.
        let fx = start_agent(|cfg| cfg.faults = vec![Fault::Status500(1)]).await;
        assert_eq!(long_poll(&fx, "60", "idle").await.expect("curl").code, 500);
        fx.agent.set_faults(vec![Fault::NonJson]);
        let reply = long_poll(&fx, "60", "idle").await.expect("curl");
        assert!(reply.body.contains("not JSON"), "{reply:?}");
        assert!(!fx.agent.events().iter().any(held));

        // `forget` changes what status reports: a held long-poll wakes and says idle.
        fx.agent.set_faults(vec![Fault::Hang]);
        assert_eq!(fx.post("/backup", START).await.code, 202);
        let waiting = long_poll(&fx, "60", "running");
        fx.agent.wait_for_event(held).await;
        fx.agent.set_faults(vec![Fault::Hang, Fault::Forget]);
        let reply = waiting.await.expect("curl");
        assert_eq!(reply.json()["phase"], "idle", "{reply:?}");
        assert_eq!(reply.json()["id"], serde_json::Value::Null);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_does_not_hold_up_the_shutdown() {
    bounded(async {
        let fx = start_agent(|_| {}).await;
        let waiting = long_poll(&fx, "60", "idle");
        fx.agent.wait_for_event(held).await;
        let Fixture { agent, dir: _dir } = fx;
        agent.shutdown().await;
        let reply = waiting.await.expect("curl");
        assert_eq!(reply.code, 0, "no answer, the connection closed: {reply:?}");
    })
    .await;
}
