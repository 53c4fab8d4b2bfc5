//! The service manager's notifications (SPEC §7, `Type=notify`), over `sd-notify`.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing, so the daemon runs the same
//! from a terminal, a container or a test. A failure to send is logged and never an error:
//! systemd missing a status line must not disturb a cycle.

use sd_notify::NotifyState;
use std::time::Duration;

/// `READY=1`: crash recovery is done and the status listener is up.
pub(crate) fn ready() {
    send(&[NotifyState::Ready]);
}

/// `STATUS=<text>`: one line shown by `systemctl status` (the phase of the loop).
pub(crate) fn status(text: &str) {
    // A newline would end the field early and start a bogus one.
    let line = text.replace('\n', " ");
    send(&[NotifyState::Status(&line)]);
}

/// `STOPPING=1`: the daemon begins to stop (and resumes what it stopped first).
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// `EXTEND_TIMEOUT_USEC=<dur>`: the stop takes longer, stacks are coming back; systemd then
/// waits at least `dur` more before it kills. Sent again while the resume goes on.
pub(crate) fn extend_timeout(dur: Duration) {
    let usec = u32::try_from(dur.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::ExtendTimeoutUsec(usec)]);
}

/// `WATCHDOG=1`: the loop is alive. Called by the loop itself, so a wedged loop is restarted.
pub(crate) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to call [`watchdog`]: half of `WATCHDOG_USEC` (systemd's advice), when the
/// watchdog is on for this process (`WATCHDOG_PID` unset or ours); `None` otherwise.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

fn send(states: &[NotifyState<'_>]) {
    // `false`: keep NOTIFY_SOCKET, every later notification needs it.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::process::Command;

    /// The child's part, set by the parent: which scenario to play.
    const CHILD: &str = "FELHOM_TEST_SD_CHILD";

    /// env vars are process-global and tests run in parallel, so the notifying side runs in a
    /// child process: this same test binary running only this test, told by `CHILD` to play
    /// a scenario.
    fn child(scenario: &str, envs: &[(&str, String)]) -> std::process::Output {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = Command::new(exe);
        cmd.args([
            "systemd::tests::the_notify_protocol",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, scenario)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run child");
        assert!(
            out.status.success(),
            "child {scenario} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn play(scenario: &str) {
        match scenario {
            "notify" => {
                assert_eq!(watchdog_interval(), Some(Duration::from_secs(15)));
                ready();
                status("waiting for the agent\nsecond line");
                watchdog();
                extend_timeout(Duration::from_secs(90));
                stopping();
            }
            "outside" => {
                assert_eq!(watchdog_interval(), None);
                ready();
                status("nobody listens");
                watchdog();
                stopping();
            }
            "other-pid" => assert_eq!(watchdog_interval(), None),
            other => panic!("unknown scenario {other}"),
        }
    }

    #[test]
    fn the_notify_protocol() {
        if let Ok(scenario) = std::env::var(CHILD) {
            play(&scenario);
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");

        child(
            "notify",
            &[
                ("NOTIFY_SOCKET", path.display().to_string()),
                ("WATCHDOG_USEC", "30000000".into()),
            ],
        );
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..5 {
            let n = socket.recv(&mut buf).expect("a datagram");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            [
                "READY=1\n",
                "STATUS=waiting for the agent second line\n",
                "WATCHDOG=1\n",
                "EXTEND_TIMEOUT_USEC=90000000\n",
                "STOPPING=1\n",
            ]
        );

        // No NOTIFY_SOCKET: nothing sent, nothing fails, no watchdog.
        socket.set_nonblocking(true).expect("nonblocking");
        child("outside", &[]);
        assert!(socket.recv(&mut buf).is_err(), "nothing was sent");
        // The watchdog of another process (WATCHDOG_PID) is not ours.
        child(
            "other-pid",
            &[
                ("WATCHDOG_USEC", "30000000".into()),
                ("WATCHDOG_PID", "1".into()),
            ],
        );
    }
}
