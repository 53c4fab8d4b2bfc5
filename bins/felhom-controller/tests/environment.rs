//! The real binary and its environment and config: the `FELHOM_` variables of `--help` are
//! not config keys, no child process (compose, docker) inherits the agent's token nor systemd's
//! notification socket and watchdog, and an
//! absurd duration is refused before anything is touched.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_felhom-controller");

#[test]
fn the_token_is_read_as_a_string_and_no_child_inherits_it_nor_systemds_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A `docker` that records the environment it was given, first on the PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let dump = dir.path().join("docker-env");
    let docker = bin.join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/bin/sh\nenv >> '{}'\necho 'Docker Compose version v2.99.0'\n",
            dump.display()
        ),
    )
    .expect("fake docker");
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nurl = \"https://127.0.0.1:1\"\npin_sha256 = \"{}\"\nconnect_timeout = \"1s\"\n\
             [stacks]\nroot = \"{}\"\ncompose = \"docker compose\"\n\
             [quiesce]\nstate_dir = \"{}/state\"\n[status]\nlisten = \"\"\n",
            "ab".repeat(32),
            dir.path().display(),
            dir.path().display()
        ),
    )
    .expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(BIN)
        .arg("check")
        .env("FELHOM_CONFIG", &config)
        .env("FELHOM_LOG_FORMAT", "json")
        // A token the config parser would read as a number.
        .env("FELHOM_AGENT__TOKEN", "12345678")
        .env("PATH", path)
        // systemd's: the socket stays in the daemon's environment for sd-notify, the
        // stacks manager keeps it from its children; the watchdog's are read and removed.
        .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
        .env("WATCHDOG_USEC", "60000000")
        .env("WATCHDOG_PID", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The config loads (exit 1: the agent at port 1 does not answer; not 2).
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("config: ok"), "{stdout}{stderr}");
    let seen = std::fs::read_to_string(&dump).expect("the fake docker ran");
    assert!(seen.contains("PATH="), "{seen}");
    assert!(
        !seen.contains("FELHOM_"),
        "a child inherited a FELHOM_ variable: {seen}"
    );
    for systemd in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
        assert!(
            !seen.contains(systemd),
            "a child inherited {systemd}: {seen}"
        );
    }
    assert!(!stdout.contains("12345678") && !stderr.contains("12345678"));
}

#[test]
fn an_absurd_duration_is_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[quiesce]\nstate_dir = \"{}/state\"\nmax_quiesce = \"300000000000y\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["--config", &config.display().to_string(), "recover"])
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("quiesce.max_quiesce"), "{stderr}");
    assert!(
        !dir.path().join("state").exists(),
        "refused before anything was touched"
    );
}
