//! The service manager's notifications (SPEC §7, `Type=notify`): `READY=1`, `STATUS=`,
//! `WATCHDOG=1`, `STOPPING=1`, `EXTEND_TIMEOUT_USEC=`.
//!
//! [`ServiceManager`] is where they go: [`NotifySocket`] is systemd's datagram socket, read
//! once from the environment (or given, by a test that binds a socket of its own); outside
//! systemd (no `NOTIFY_SOCKET`) it sends nothing, so the daemon runs the same from a terminal,
//! a container or a test. A failure to send is logged and never an error: systemd missing a
//! status line must not disturb a cycle.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where the daemon's notifications to its service manager go.
pub trait ServiceManager: Send + Sync + std::fmt::Debug {
    /// Sends one notification (`READY=1`, `STATUS=...`); never fails the caller.
    fn notify(&self, message: &str);
    /// How often to send `WATCHDOG=1`, when the manager watches this process.
    fn watchdog_interval(&self) -> Option<Duration>;
}

/// systemd's notification socket (`NOTIFY_SOCKET`), and the watchdog it asks for.
#[derive(Debug, Clone, Default)]
pub struct NotifySocket {
    /// `None`: not run by a service manager that listens; nothing is sent.
    path: Option<PathBuf>,
    watchdog: Option<Duration>,
}

impl NotifySocket {
    /// The socket and the watchdog systemd gave this process: `NOTIFY_SOCKET`, half of
    /// `WATCHDOG_USEC` (systemd's advice) when `WATCHDOG_PID` is unset or ours. Read once, so
    /// that the caller may remove the variables before it starts child processes.
    pub fn from_env() -> NotifySocket {
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| watchdog_for(&usec, std::env::var("WATCHDOG_PID").ok().as_deref()));
        NotifySocket {
            path: std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from),
            watchdog,
        }
    }

    /// A socket at `path` (an abstract one when it starts with `@`), with a watchdog of
    /// `watchdog` (already halved).
    pub fn at(path: impl Into<PathBuf>, watchdog: Option<Duration>) -> NotifySocket {
        NotifySocket {
            path: Some(path.into()),
            watchdog,
        }
    }

    fn send(&self, message: &str) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let socket = UnixDatagram::unbound()?;
        match path.to_str().and_then(|p| p.strip_prefix('@')) {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &addr)?;
            }
            None => {
                socket.send_to(message.as_bytes(), path)?;
            }
        }
        Ok(())
    }
}

impl ServiceManager for NotifySocket {
    fn notify(&self, message: &str) {
        // One field per datagram, newline-terminated; a newline inside would start a bogus one.
        let line = format!("{}\n", message.replace('\n', " "));
        if let Err(e) = self.send(&line) {
            tracing::warn!(error = %e, "could not notify the service manager");
        }
    }

    fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// Half of `usec` when the watchdog is on for this process (`pid` unset or ours).
fn watchdog_for(usec: &str, pid: Option<&str>) -> Option<Duration> {
    let usec: u64 = usec.trim().parse().ok()?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_notification_is_one_datagram_of_one_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let manager = NotifySocket::at(&path, None);
        manager.notify("READY=1");
        manager.notify("STATUS=waiting for the agent\nsecond line");
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        for _ in 0..2 {
            let n = socket.recv(&mut buf).expect("a datagram");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            ["READY=1\n", "STATUS=waiting for the agent second line\n"]
        );
        // A socket nobody listens on any more: logged, not an error, not a panic.
        drop(socket);
        manager.notify("WATCHDOG=1");
        // No socket at all: nothing to send.
        NotifySocket::default().notify("READY=1");
    }

    #[test]
    fn the_watchdog_is_half_the_interval_and_only_for_this_process() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_for("30000000", None),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_for("30000000", Some(&me)),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_for("30000000", Some("1")), None, "another pid's");
        assert_eq!(watchdog_for("0", None), None);
        assert_eq!(watchdog_for("soon", None), None);
    }
}
