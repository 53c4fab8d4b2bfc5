//! What `/status` shows: the stranded stacks and the counts, and never an app's own output
//! (a failed start's log lines, a hook's output), which stays in the record.

use super::super::*;
use chrono::Utc;
use felhom_marker::{CycleRecord, Outcome, StrandedStack};

/// What a failed start's error looks like (felhom-stacks' `StartFailed`): our words on the
/// first line, then the container's last log lines.
const FAILED_START: &str = "stack \"notes\": start of container notes-app-1: service \"app\" \
    failed to start (Exited (1)); its last log lines:\n\
    2026-01-01T00:00:00Z app-secret-line password=hunter2\n\
    2026-01-01T00:00:01Z another-app-line";

fn record(errors: Vec<String>) -> CycleRecord {
    let now = Utc::now();
    CycleRecord {
        cycle_id: "c-1".into(),
        started_at: now,
        finished_at: now,
        outcome: Outcome::Done,
        backup_id: None,
        snapshot_at: None,
        agent_phase: None,
        stacks: vec![],
        stranded: vec!["b".into()],
        waiting_for_engine: vec![],
        errors,
    }
}

#[test]
fn the_status_json_names_the_stranded_stacks_and_counts_by_outcome() {
    let now = Utc::now();
    let overview = Overview {
        phase: None,
        last: Some(record(vec![])),
        cycles: vec![(Outcome::Done, 3), (Outcome::Bounded, 1)],
        next_check_at: None,
        // The persisted list (SPEC §2 rule 6), which the daemon keeps in its live status.
        stranded_stacks: vec![StrandedStack {
            name: "b".into(),
            services: vec!["app".into()],
            cycle_id: "c-1".into(),
            since: now,
            attempts: 5,
            last_error: "it exited".into(),
            containers: vec![],
            given_up: None,
        }],
        ..Overview::default()
    };
    let json = status_json(&overview);
    assert_eq!(json["stranded"], serde_json::json!(["b"]));
    assert_eq!(json["cycles"]["done"], 3);
}

#[test]
fn the_status_json_carries_no_app_output() {
    let now = Utc::now();
    let overview = Overview {
        last: Some(record(vec![
            FAILED_START.to_owned(),
            "the agent reports the backup failed: disk full".to_owned(),
        ])),
        stranded_stacks: vec![StrandedStack {
            name: "notes".into(),
            services: vec!["app".into()],
            cycle_id: "c-1".into(),
            since: now,
            attempts: 5,
            last_error: FAILED_START.to_owned(),
            containers: vec![],
            given_up: None,
        }],
        marker_stuck: Some(format!("clearing the marker: {FAILED_START}")),
        ..Overview::default()
    };
    let mut overview = overview;
    if let Some(last) = &mut overview.last {
        // A hook's output (issue 23): kept in the record, never in /status.
        last.stacks.push(
            serde_json::from_value(serde_json::json!({
                "name": "shop",
                "capture": "hook-failed",
                "by_service": [{"service": "db", "mode": "hook", "capture": "hook-failed", "hooks": [{
                    "hook": "pre-snapshot", "container": "shop-db-1", "program": "pg_dumpall",
                    "started_at": "2026-01-01T00:00:00Z", "duration_ms": 12, "exit_code": 1,
                    "succeeded": false, "output": "hook-says password=hunter3"
                }]}],
            }))
            .expect("a stack record"),
        );
    }
    let text = status_json(&overview).to_string();
    assert!(text.contains("pg_dumpall"), "the run is shown: {text}");
    for app in [
        "app-secret-line",
        "hunter2",
        "another-app-line",
        "hook-says",
        "hunter3",
    ] {
        assert!(!text.contains(app), "{app} in /status: {text}");
    }
    let json = status_json(&overview);
    let first = json["last"]["errors"][0].as_str().expect("a string");
    assert!(
        first.starts_with("stack \"notes\": start of container notes-app-1")
            && first.ends_with("its last log lines: […]"),
        "our words are kept, the cut is marked: {first}"
    );
    assert_eq!(
        json["last"]["errors"][1],
        "the agent reports the backup failed: disk full"
    );
}
