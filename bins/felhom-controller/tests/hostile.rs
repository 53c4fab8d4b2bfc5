//! The real binary in a guest around it that misbehaves (issue 19): a state directory of a mode
//! the controller would not create, a lock that cannot be opened. The markers name no stack,
//! so no Docker engine is needed.

mod common;

use chrono::Utc;
use common::{command, daemon, wait_metric};
use felhom_marker::StateDir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A guest's config (no agent, the endpoint on a free port) and its state directory, holding
/// the marker of a controller that died `hours` ago.
fn guest(hours: i64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    StateDir::open(&state).expect("the state dir, as the daemon makes it");
    let marker = serde_json::json!({
        "version": 1,
        "cycle_id": "c-left",
        "phase": "backing_up",
        "started_at": (Utc::now() - chrono::Duration::hours(hours)).to_rfc3339(),
        "pid": 999_999,
        "stacks": []
    });
    std::fs::write(state.join("marker.json"), marker.to_string()).expect("marker");
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[stacks]\nroot = \"{}/stacks\"\n[quiesce]\nstate_dir = \"{}\"\n\
             max_quiesce = \"30m\"\n[status]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().display(),
            state.display()
        ),
    )
    .expect("config");
    (dir, config, state)
}

fn run(config: &Path, args: &[&str]) -> Output {
    command(config, args).output().expect("the binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Before: `recover` and `run` refused the directory (`of mode 0770; expected …`) and exited,
/// the marker's apps down; the daemon crash-looped.
#[test]
fn a_state_dir_others_may_write_is_recovered_and_refusing_cycles_is_shown() {
    let (_dir, config, state) = guest(0);
    chmod(&state, 0o770);

    let out = run(&config, &["recover"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!state.join("marker.json").exists(), "{}", text(&out));
    let history = std::fs::read_to_string(state.join("history.jsonl")).unwrap_or_default();
    assert!(history.contains("\"outcome\":\"recovered\""), "{history}");

    let out = run(&config, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("no new cycle starts")
            && said.contains(&*state.to_string_lossy())
            && said.contains("of mode 0770 (writable by its group)"),
        "{said}"
    );

    // The daemon stays up, says it once, and sees the fix without a restart.
    let (_sd, mut running) = daemon(&config, &[]);
    let port = running.endpoint_port();
    wait_metric(port, "felhom_cycles_refused 1");
    running.wait_line("no new cycle starts until the state directory is fixed");
    chmod(&state, 0o700);
    wait_metric(port, "felhom_cycles_refused 0");
    assert!(running.is_running(), "{}", running.text());
    let (code, log) = running.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// Before: the lock probe's error was taken for a live holder (`held by pid unknown (…)`) and
/// the timer's `recover --if-stale` exited 0 every five minutes, the marker's apps down.
#[test]
fn recover_if_stale_fails_loudly_when_the_lock_cannot_be_opened() {
    let (dir, config, state) = guest(2);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, b"").expect("a file");
    std::os::unix::fs::symlink(&elsewhere, state.join("lock")).expect("a planted link");

    let out = run(&config, &["recover", "--if-stale"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("the cycle lock cannot be taken") && said.contains("symbolic link"),
        "{said}"
    );
    assert!(state.join("marker.json").exists());

    let out = run(&config, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("who holds the lock cannot be told"),
        "{}",
        text(&out)
    );
}
