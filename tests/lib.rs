//! The end-to-end harness: the real `felhom-controller` binary against the development agent
//! and real compose stacks on the local Docker engine.
//!
//! A test builds an [`Env`] (a temporary directory with a stacks root, the apps' data, the
//! agent's output and the controller's state), deploys stacks into it, starts an agent —
//! in-process ([`Agent`], whose faults and due mode a test can switch mid-cycle) or as the
//! `felhom-devagent` binary ([`AgentProcess`]) — writes a controller config ([`ConfigFile`]) and
//! runs the controller binary ([`Controller`], [`run_controller`]), waiting on its JSON log lines.
//!
//! Every wait is bounded by [`WAIT`] and panics with what the controller logged. Everything a
//! test starts is torn down on drop, in the reverse order of creation: declare the `Env` first.
//!
//! The binaries are found next to the test executable (`target/<profile>/`), so build them with
//! the same `CARGO_TARGET_DIR` as the tests: `cargo build -p felhom-controller -p felhom-devagent`.
#![deny(missing_docs)]

mod agent;
mod controller;
mod env;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

pub use agent::{snapshot_time, Access, Agent, AgentProcess};
pub use controller::{run_controller, Controller, Finished, LogLine};
pub use env::{container, Compose, ConfigFile, ContainerState, Env, StackSpec};

/// The longest any single wait of a test may take before it counts as a hang.
pub const WAIT: Duration = Duration::from_secs(60);

/// The image of the test app (`crates/testapp`), built by `scripts/build-test-image.sh`.
pub const IMAGE: &str = "felhom-testapp:dev";

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(25);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// A binary of the workspace, from the target directory the test runs from.
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let bin = profile.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p felhom-controller -p felhom-devagent` \
         with the same CARGO_TARGET_DIR as the tests",
        bin.display()
    );
    bin
}

/// The `felhom-controller` binary under test.
pub fn controller_bin() -> PathBuf {
    workspace_bin("felhom-controller")
}

/// The `felhom-devagent` binary.
pub fn devagent_bin() -> PathBuf {
    workspace_bin("felhom-devagent")
}

/// Checks that a Docker engine answers and builds the test image (once per process); panics
/// with what to do when either fails. A missing engine is a failure, never a skip.
pub fn ensure_image() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let mut info = Command::new("docker");
        info.args(["info", "--format", "{{.ServerVersion}}"]);
        match output_within(&mut info, WAIT) {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "no Docker engine: run scripts/provision.sh ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => return Err(format!("no Docker engine: run scripts/provision.sh ({e})")),
        }
        let script = repo_root().join("scripts/build-test-image.sh");
        // The first build compiles the test app: minutes, not seconds.
        let out = output_within(&mut Command::new(&script), 15 * WAIT)
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = ready {
        panic!("{e}");
    }
}

/// Runs a short command (docker, compose) to its end, bounded by [`WAIT`]; panics with its
/// output when it fails or hangs.
fn run_ok(mut command: Command, what: &str) -> String {
    let out = output_within(&mut command, WAIT).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `Command::output` with a bound: a command still running after `limit` is killed.
fn output_within(command: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    // Read both pipes while waiting: a full pipe would block the command.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let Some(status) = wait_bounded(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("still running after {limit:?}: killed"));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Sends signal `name` (`TERM`, `KILL`) to `pid`, or to its whole process group.
fn signal(pid: u32, name: &str, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    // The process may be gone already; that is what the caller wants anyway.
    let _ = Command::new("kill")
        .args(["-s", name, "--", &target])
        .stderr(Stdio::null())
        .status();
}

/// Waits at most `limit` for `child` to exit; `None` if it still runs. Never panics (it runs
/// in destructors).
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) | Err(_) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// A free TCP port on loopback (for the status endpoint).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET http://127.0.0.1:<port><path>` with curl; `None` while nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
