//! The real binary at startup: crash recovery comes before anything that can fail for an
//! unrelated reason (SPEC §2 rule 3). A marker naming no stack needs no Docker engine, so these
//! run anywhere; the end-to-end tests in `tests/` do the same with real stacks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_felhom-controller");

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

#[test]
fn a_broken_agent_setting_does_not_stop_the_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    write_marker(&state);
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nurl = \"https://127.0.0.1:1\"\ntoken_file = \"{}/missing.token\"\n\
             pin_sha256 = \"{}\"\n[stacks]\nroot = \"{}/stacks\"\n[quiesce]\nstate_dir = \"{}\"\n\
             [status]\nlisten = \"\"\n",
            dir.path().display(),
            "ab".repeat(32),
            dir.path().display(),
            state.display()
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["--config", &config.display().to_string(), "run"])
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing.token"),
        "the error names the token file: {stderr}"
    );
    assert!(
        !state.join("marker.json").exists(),
        "the marker was recovered first: {stderr}"
    );
    assert!(
        history(&state).contains("\"outcome\":\"recovered\""),
        "{stderr}"
    );
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
    let mut child = Command::new(BIN)
        .args(["--config", &config.display().to_string(), "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.join("marker.json").exists() {
        assert!(
            Instant::now() < deadline,
            "the marker was not recovered within 30 s"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the daemon exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the daemon keeps running"
    );
    // SIGTERM: a clean exit.
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("the status endpoint is off"), "{stderr}");
    assert!(
        history(&state).contains("\"outcome\":\"recovered\""),
        "{stderr}"
    );
    drop(busy);
}
