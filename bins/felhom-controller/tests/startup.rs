//! The real binary at startup: the daemon reaches its loop — whose first work is the crash
//! recovery (SPEC §2 rule 3) — whatever else is wrong: an `[agent]` that cannot be used or a
//! busy status port turn a part off, not the daemon. A marker naming no stack needs no Docker
//! engine, so these run anywhere; the end-to-end tests in `tests/` do the same with real
//! stacks.

mod common;

use common::{wait_metric, Running, HANG};
use std::path::Path;
use std::time::{Duration, Instant};

fn write_marker(state: &Path) {
    // An existing state dir must be the controller's own, mode 0700 (felhom-marker refuses
    // anything else).
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(state)
        .expect("state dir");
    let marker = serde_json::json!({
        "version": 1,
        "cycle_id": "c-crashed",
        "phase": "backing_up",
        "started_at": "2026-11-26T10:00:00Z",
        "pid": 999999,
        "backup_id": null,
        "stacks": []
    });
    std::fs::write(state.join("marker.json"), marker.to_string()).expect("marker");
}

fn history(state: &Path) -> String {
    std::fs::read_to_string(state.join("history.jsonl")).unwrap_or_default()
}

/// Waits (bounded) until the marker in `state` is gone: the recovery is done.
fn until_recovered(state: &Path, run: &mut Running) {
    let deadline = Instant::now() + HANG;
    while state.join("marker.json").exists() {
        assert!(Instant::now() < deadline, "not recovered:\n{}", run.text());
        assert!(run.is_running(), "the daemon exited:\n{}", run.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `[agent]` settings that cannot be used — a token file that is not there, a pin that is
/// not one — keep the backups off, not the daemon: it recovers the marker, is ready, serves
/// its metrics, and says why once, naming the setting.
#[test]
fn unusable_agent_settings_keep_the_daemon_up_recovering_and_serving_metrics() {
    for (what, pin, names) in [
        ("a missing token file", "ab".repeat(32), "missing.token"),
        (
            "a pin that is not one",
            "not-a-pin".to_owned(),
            "agent.pin_sha256",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        write_marker(&state);
        let config = dir.path().join("controller.toml");
        std::fs::write(
            &config,
            format!(
                "[agent]\nurl = \"https://127.0.0.1:1\"\ntoken_file = \"{}/missing.token\"\n\
                 pin_sha256 = \"{pin}\"\n[stacks]\nroot = \"{}/stacks\"\n\
                 [quiesce]\nstate_dir = \"{}\"\n[status]\nlisten = \"127.0.0.1:0\"\n",
                dir.path().display(),
                dir.path().display(),
                state.display()
            ),
        )
        .expect("config");
        let (mut sd, mut run) = common::daemon(&config, &[]);
        let port = run.endpoint_port();
        assert!(
            sd.wait_for("READY=1", HANG).is_some(),
            "{what}: {:?}",
            sd.seen
        );
        let said = run.wait_line("the agent's settings cannot be used");
        assert!(said.contains(names), "{what}: names the setting: {said}");
        until_recovered(&state, &mut run);
        wait_metric(port, "felhom_agent_errors_total{kind=\"config\"} 1");
        let (code, log) = run.stop();
        assert_eq!(code, Some(0), "{what}: {log}");
        assert!(
            history(&state).contains("\"outcome\":\"recovered\""),
            "{what}: {log}"
        );
        // `check` and `once` need the agent: a bad configuration for them (exit 2).
        if what == "a pin that is not one" {
            let check = common::command(&config, &["check"])
                .output()
                .expect("check runs");
            let stderr = String::from_utf8_lossy(&check.stderr);
            assert_eq!(check.status.code(), Some(2), "{stderr}");
            assert!(stderr.contains("agent.pin_sha256"), "{stderr}");
        }
    }
}

#[test]
fn a_busy_status_port_does_not_stop_the_recovery_or_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    write_marker(&state);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[stacks]\nroot = \"{}/stacks\"\n[quiesce]\nstate_dir = \"{}\"\n\
             [status]\nlisten = \"127.0.0.1:{port}\"\n",
            dir.path().display(),
            state.display()
        ),
    )
    .expect("config");
    let (mut sd, mut run) = common::daemon(&config, &[]);
    run.wait_line("the status endpoint is off");
    // The daemon went on to its loop, and the loop recovered the marker.
    assert!(sd.wait_for("READY=1", HANG).is_some(), "{:?}", sd.seen);
    until_recovered(&state, &mut run);
    let (code, log) = run.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        history(&state).contains("\"outcome\":\"recovered\""),
        "{log}"
    );
    drop(busy);
}
