//! Child processes with a bound: every command the benchmark runs ends, one way or another.

use std::fmt::Write as _;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What a finished command said.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// The command as one would type it, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(line, " {}", arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` to its end within `limit` (killed past it), stdin closed, output captured.
pub(crate) fn run(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let what = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_bounded(&mut child, limit).with_context(|| what.clone())?;
    let Some(status) = status else {
        bail!(
            "{what}: no end within {}, killed",
            humantime::format_duration(limit)
        );
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Like [`run`], and a non-zero exit is an error carrying the tail of stderr.
pub(crate) fn checked(cmd: &mut Command, limit: Duration) -> Result<String> {
    let what = describe(cmd);
    let out = run(cmd, limit)?;
    if !out.status.success() {
        bail!("{what}: {}: {}", out.status, tail(&out.stderr, 15));
    }
    Ok(out.stdout)
}

/// Waits for `child` until `limit`; `None` (after killing it) when it did not end.
pub(crate) fn wait_bounded(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Asks a long-running child to stop (SIGTERM), then kills it if it does not within 10 s.
pub(crate) fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if term.is_err() || !matches!(wait_bounded(child, Duration::from_secs(10)), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_bound_is_killed_and_named() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let begin = Instant::now();
        let err = run(&mut cmd, Duration::from_millis(200)).expect_err("sleep 30 outlives 200ms");
        assert!(err.to_string().contains("sleep 30"), "{err:#}");
        assert!(begin.elapsed() < Duration::from_secs(20), "not killed");
    }

    #[test]
    fn a_failing_command_is_an_error_with_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo broken >&2; exit 3"]);
        let err = checked(&mut cmd, Duration::from_secs(20)).expect_err("exit 3");
        let msg = format!("{err:#}");
        assert!(msg.contains("broken") && msg.contains('3'), "{msg}");
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo out"]);
        assert_eq!(
            checked(&mut ok, Duration::from_secs(20)).expect("sh runs"),
            "out\n"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
