//! A whole cycle that goes right, with `once --force`, on compose v2 and v1.

use std::process::Command;

use felhom_e2e::{container, run_controller, snapshot_time, AgentProcess, Compose, Env, StackSpec};
use felhom_marker::Outcome;

use crate::{assert_run_again, assert_untouched, states};

#[test]
fn once_stops_the_apps_around_the_snapshot_with_compose_v2() {
    happy_path("hpa", Compose::V2);
}

#[test]
fn once_stops_the_apps_around_the_snapshot_with_compose_v1() {
    happy_path("hpb", Compose::V1);
}

fn happy_path(tag: &str, compose: Compose) {
    let mut env = Env::with_compose(tag, compose);
    let apps = vec![
        env.deploy("notes", &StackSpec::app()),
        env.deploy("photos", &StackSpec::app()),
    ];
    let proxy = env.deploy_protected("proxy");
    let idle = env.deploy("idle", &StackSpec::app());
    for name in apps.iter().chain([&proxy, &idle]) {
        env.up(name);
    }
    env.stop(&idle);
    let before = states(&apps);
    let proxy_before = container(&proxy);
    let idle_before = container(&idle);
    assert!(!idle_before.running, "idle was stopped before the cycle");

    let agent = AgentProcess::spawn(&env, &[]);
    let config = env.config(&agent.access()).write();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(0), "{once}");
    let record = once.record();
    assert_eq!(record.outcome, Outcome::Done, "{once}");
    assert!(record.stranded.is_empty(), "{once}");
    let stopped: Vec<&str> = record.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        stopped,
        apps.iter().map(String::as_str).collect::<Vec<_>>(),
        "exactly the running app stacks are stopped; not the protected one, not the stopped one"
    );

    // Stopped before the snapshot, started (the same containers) after it.
    let backup = record
        .backup_id
        .clone()
        .expect("the record names the backup");
    let snapshot = snapshot_time(&agent.events(), &backup);
    assert_run_again(&before, "after the cycle");
    for name in &apps {
        let (was, now) = (&before[name], container(name));
        assert!(
            was.started_at < now.finished_at && now.finished_at < snapshot,
            "{name} must stop before the snapshot at {snapshot}: before {was:?}, now {now:?}"
        );
        assert!(
            now.started_at > snapshot,
            "{name} must start again after the snapshot at {snapshot}: {now:?}"
        );
    }
    assert_untouched(&proxy, &proxy_before, "after the cycle");
    assert_eq!(
        container(&idle),
        idle_before,
        "a stack stopped before the cycle stays as it was"
    );

    assert!(!env.marker_path().exists(), "the marker is cleared");
    let status = run_controller(&config, &["status", "--json"]);
    assert_eq!(status.code, Some(0), "{status}");
    let status: serde_json::Value =
        serde_json::from_str(&status.stdout).expect("status --json prints JSON");
    assert!(status["marker"].is_null(), "no marker: {status}");
    let last = status["history"]
        .as_array()
        .and_then(|h| h.last())
        .expect("the history has the cycle");
    assert_eq!(last["cycle_id"], record.cycle_id.as_str(), "{status}");
    assert_eq!(last["outcome"], "done", "{status}");

    // The archive holds each app as it was at a clean shutdown.
    let archive = env.out_dir().join(format!("{backup}.tar"));
    let unpacked = env.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("a directory to unpack into");
    let tar = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar runs");
    assert!(tar.success(), "unpacking {}", archive.display());
    for name in &apps {
        let log = std::fs::read_to_string(unpacked.join(name).join("log"))
            .unwrap_or_else(|e| panic!("{name}'s log in the archive: {e}"));
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.ends_with("shut down cleanly"),
            "{name} in the archive must end with a clean shutdown: {log}"
        );
        assert!(
            !unpacked.join(name).join("running").exists(),
            "{name} in the archive still has its running flag: captured while it ran"
        );
        let live = env.app_log(name);
        assert!(
            !live.contains("unclean shutdown") && live.matches("clean start").count() == 2,
            "{name} started cleanly twice: {live}"
        );
    }
}
