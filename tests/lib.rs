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

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use felhom_testsupport::engine::test_binary;
use felhom_testsupport::process::{self, signal, wait_bounded};

pub use agent::{snapshot_time, Access, Agent, AgentProcess};
pub use controller::{run_controller, Controller, Finished, LogLine};
pub use env::{
    container, containers, service_container, Compose, ConfigFile, ContainerState, Env, StackSpec,
};

/// The longest any single wait of a test may take before it counts as a hang.
pub const WAIT: Duration = Duration::from_secs(60);

/// The image of the test app (`crates/testapp`), built by `scripts/build-test-image.sh`.
pub use felhom_testsupport::engine::IMAGE;
/// The switchable proxy to the Docker engine, for tests where the engine goes away.
pub use felhom_testsupport::EngineProxy;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(25);

/// A binary of the workspace, from the target directory the test runs from.
fn workspace_bin(name: &str) -> PathBuf {
    test_binary(name)
        .unwrap_or_else(|e| panic!("{e} (`cargo build -p felhom-controller -p felhom-devagent`)"))
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
    if let Err(e) = felhom_testsupport::engine::ensure_image() {
        panic!("{e}");
    }
}

/// Runs a short command (docker, compose) to its end, bounded by [`WAIT`]; panics with its
/// output when it fails or hangs.
fn run_ok(mut command: Command, what: &str) -> String {
    let out = process::run(&mut command, WAIT).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// `docker <args>` to its end (bounded by [`WAIT`]); its stdout. Panics when it fails.
pub fn docker(args: &[&str]) -> String {
    let mut command = Command::new("docker");
    command.args(args);
    run_ok(command, &format!("docker {}", args.join(" ")))
}

/// Waits (bounded by [`WAIT`]) until `done`; `what` names it in the panic.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {WAIT:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// A fresh random token (`Tk` and 32 hex digits): planted in a test, it cannot be in any
/// fixed text, so finding it in an output means the output leaked it.
pub fn random_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("Tk{hex}")
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
