//! Child processes with a bound: every command a test or the benchmark runs ends, one way or
//! another, and says what it was when it fails.

use std::fmt::Write as _;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a bounded wait looks again.
const POLL: Duration = Duration::from_millis(5);

/// What a finished command said.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
}

/// Why a command did not give its output.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// It could not be started.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// The command line.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It ran past its bound and was killed.
    #[error("{what}: no end within {limit:?}, killed")]
    Timeout {
        /// The command line.
        what: String,
        /// The bound.
        limit: Duration,
    },
    /// It ended with a failure.
    #[error("{what}: {status}: {stderr_tail}")]
    Failed {
        /// The command line.
        what: String,
        /// How it ended.
        status: ExitStatus,
        /// The last lines of its standard error.
        stderr_tail: String,
        /// Its standard output.
        stdout: String,
    },
}

/// The command as one would type it, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(line, " {}", arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` to its end within `limit` (killed past it), stdin closed, both outputs captured
/// (read while it runs, so that a full pipe cannot block it).
pub fn run(cmd: &mut Command, limit: Duration) -> Result<Output, ProcessError> {
    let what = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        what: what.clone(),
        source,
    })?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let Some(status) = wait_bounded(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ProcessError::Timeout { what, limit });
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Like [`run`], and a non-zero exit is [`ProcessError::Failed`] carrying the tail of stderr.
/// Returns the standard output.
pub fn checked(cmd: &mut Command, limit: Duration) -> Result<String, ProcessError> {
    let what = describe(cmd);
    let out = run(cmd, limit)?;
    if !out.status.success() {
        return Err(ProcessError::Failed {
            what,
            status: out.status,
            stderr_tail: tail(&out.stderr, 15),
            stdout: out.stdout,
        });
    }
    Ok(out.stdout)
}

/// Waits at most `limit` for `child` to exit; `None` if it still runs (it is left running:
/// the caller decides). Never panics, so it can run in destructors.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) | Err(_) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Sends signal `name` (`TERM`, `KILL`, `HUP`, ...) to `pid`, or to its whole process group
/// when `group`. The process may be gone already, which is what the caller wants anyway.
pub fn signal(pid: u32, name: &str, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let _ = Command::new("kill")
        .args(["-s", name, "--", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Asks a long-running child to stop (SIGTERM) and kills it if it has not within `grace`.
pub fn terminate(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), "TERM", false);
    if wait_bounded(child, grace).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
