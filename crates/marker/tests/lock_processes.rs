//! The single-flight lock between two real processes, including a holder killed with SIGKILL.
//!
//! This binary is its own other process: started with `FELHOM_MARKER_LOCK_CHILD=<state dir>`,
//! it plays the child (see [`child`]) instead of running the tests. It has no test harness
//! (`harness = false`), so that no test function exists only to host the child.

mod common;

use felhom_marker::{LockError, StateDir, StateLock};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "FELHOM_MARKER_LOCK_CHILD";
const CHILD_ROLE: &str = "FELHOM_MARKER_LOCK_ROLE";
/// Generous: only catches a hang.
const WAIT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return child(Path::new(&dir));
    }
    let tests: [(&str, fn()); 3] = [
        (
            "a_holder_killed_with_sigkill_leaves_no_stale_lock",
            a_holder_killed_with_sigkill_leaves_no_stale_lock,
        ),
        (
            "another_process_is_refused_with_our_pid",
            another_process_is_refused_with_our_pid,
        ),
        (
            "a_holder_that_exits_releases_the_lock",
            a_holder_that_exits_releases_the_lock,
        ),
    ];
    let (filters, list) = libtest_args();
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if list {
            println!("{name}: test");
            continue;
        }
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        test();
        println!("ok");
    }
    ExitCode::SUCCESS
}

/// The name filters and `--list` of a libtest command line (`cargo test -- <filter>`), so that
/// this binary answers it as the standard harness would; other options are accepted and ignored.
fn libtest_args() -> (Vec<String>, bool) {
    let mut filters = Vec::new();
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => list = true,
            "--test-threads" | "--skip" | "--format" | "--color" | "--logfile" | "-Z" => {
                args.next();
            }
            option if option.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    (filters, list)
}

/// The child's part. Role `hold`: take the lock, say `locked <pid>`, and keep it until killed
/// (or, bounded, for two minutes). Role `hold-then-exit`: take it, say so, and exit when its
/// stdin closes. Role `try`: try once and say `acquired`, `held <pid>` or `error <message>`.
fn child(dir: &Path) -> ExitCode {
    let state = match StateDir::open(dir) {
        Ok(state) => state,
        Err(e) => {
            println!("error {e}");
            return ExitCode::FAILURE;
        }
    };
    let role = std::env::var(CHILD_ROLE).unwrap_or_default();
    match (role.as_str(), StateLock::acquire(&state)) {
        ("hold", Ok(_lock)) => {
            println!("locked {}", std::process::id());
            std::thread::sleep(Duration::from_secs(120));
            ExitCode::SUCCESS
        }
        ("hold-then-exit", Ok(_lock)) => {
            println!("locked {}", std::process::id());
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            ExitCode::SUCCESS
        }
        ("try", Ok(_lock)) => {
            println!("acquired");
            ExitCode::SUCCESS
        }
        (_, Err(LockError::Held { pid, .. })) => {
            println!("held {pid}");
            ExitCode::SUCCESS
        }
        (_, Err(e)) => {
            println!("error {e}");
            ExitCode::FAILURE
        }
        (other, Ok(_)) => {
            println!("error unknown role {other:?}");
            ExitCode::FAILURE
        }
    }
}

/// A child process, killed and reaped when dropped so that a failed test leaks no holder.
struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProcess {
    fn spawn(dir: &Path, role: &str) -> ChildProcess {
        let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
            .env(CHILD_DIR, dir)
            .env(CHILD_ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the child process starts");
        let stdout: ChildStdout = child.stdout.take().expect("the child's stdout is piped");
        let (tx, lines) = mpsc::channel();
        // A reader thread, so that waiting for a line is bounded by recv_timeout.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildProcess { child, lines }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("the child says something within the bound")
    }

    /// SIGKILL, and wait until it is reaped (bounded).
    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL is sent");
        self.wait();
    }

    fn wait(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self
                .child
                .try_wait()
                .expect("the child is waited for")
                .is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the child did not end within the bound"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn a_holder_killed_with_sigkill_leaves_no_stale_lock() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let mut holder = ChildProcess::spawn(tmp.path(), "hold");
    assert_eq!(holder.next_line(), format!("locked {}", holder.pid()));

    match StateLock::acquire(&state) {
        Err(LockError::Held { path, pid }) => {
            assert_eq!(path, tmp.path().join("lock"));
            assert_eq!(pid, holder.pid(), "the error names the holder's pid");
        }
        other => panic!("expected Held by the child, got {other:?}"),
    }
    assert_eq!(
        StateLock::holder(&state).expect("probes"),
        Some(holder.pid())
    );

    holder.kill_9();
    // The lock file still holds the dead child's pid; the lock itself died with it.
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("lock")).expect("the lock file reads"),
        format!("{}\n", holder.pid())
    );
    assert_eq!(StateLock::holder(&state).expect("probes"), None);
    let _lock = StateLock::acquire(&state).expect("a killed holder's lock is free");
    assert_eq!(
        StateLock::holder(&state).expect("probes"),
        Some(std::process::id().to_string())
    );
}

fn another_process_is_refused_with_our_pid() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let lock = StateLock::acquire(&state).expect("the lock is free");

    let mut taker = ChildProcess::spawn(tmp.path(), "try");
    assert_eq!(taker.next_line(), format!("held {}", std::process::id()));
    taker.wait();

    drop(lock);
    let mut taker = ChildProcess::spawn(tmp.path(), "try");
    assert_eq!(taker.next_line(), "acquired");
    taker.wait();
}

fn a_holder_that_exits_releases_the_lock() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let mut holder = ChildProcess::spawn(tmp.path(), "hold-then-exit");
    assert_eq!(holder.next_line(), format!("locked {}", holder.pid()));
    assert!(matches!(
        StateLock::acquire(&state),
        Err(LockError::Held { .. })
    ));
    // Closing its stdin tells it to exit normally.
    drop(holder.child.stdin.take());
    holder.wait();
    let _lock = StateLock::acquire(&state).expect("an exited holder's lock is free");
}
