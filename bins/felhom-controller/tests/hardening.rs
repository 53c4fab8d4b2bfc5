//! The real binary makes itself non-dumpable (`PR_SET_DUMPABLE 0`) before it reads its config:
//! no core dump (the watchdog's SIGABRT, a crash) and no ptrace of a process that holds the
//! agent's token. Seen from outside as the kernel shows it: the `/proc/<pid>` files of a
//! non-dumpable process belong to root, whoever runs it (proc(5), "/proc/pid").

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_felhom-controller");

/// `nobody` on Debian.
const NOBODY: u32 = 65534;

/// This process's effective uid, from `/proc/self/status` (`Uid: real effective ...`).
fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .expect("an effective uid")
}

#[test]
fn the_daemon_is_not_dumpable() {
    // As root the daemon runs as `nobody`: /proc/<pid> of a dumpable process would then belong
    // to nobody, of a non-dumpable one to root. As another user, to that user or to root.
    let me = euid();
    let runs_as = if me == 0 { NOBODY } else { me };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let state = dir.path().join("state");
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&state)
        .expect("state dir");
    std::os::unix::fs::chown(&state, Some(runs_as), Some(runs_as)).expect("chown the state dir");
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[stacks]\nroot = \"{0}/stacks\"\n[quiesce]\nstate_dir = \"{0}/state\"\n\
             [status]\nlisten = \"\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut command = Command::new(BIN);
    command
        .args(["--config", &config.display().to_string(), "run"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if me == 0 {
        command.uid(NOBODY).gid(NOBODY);
    }
    let mut child = command.spawn().expect("spawn the daemon");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The loop runs: the config (and with a token, the token) has been read by now.
    let mut log = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let running = line.contains("felhom-controller running");
                log.push(line);
                if running {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the daemon did not start ({e}): {}", log.join("\n"));
            }
        }
    }
    let owner = |file: &str| {
        std::fs::metadata(format!("/proc/{}/{file}", child.id()))
            .map(|m| m.uid())
            .ok()
    };
    let owners = (owner("status"), owner("environ"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        owners,
        (Some(0), Some(0)),
        "the daemon (uid {runs_as}) is dumpable: its /proc files are its own; log:\n{}",
        log.join("\n")
    );
}
