//! The service manager's notifications (SPEC §7, `Type=notify`): `READY=1`, `STATUS=`,
//! `WATCHDOG=1`, `STOPPING=1`, `EXTEND_TIMEOUT_USEC=`.
//!
//! [`ServiceManager`] is where they go, as typed [`Notification`]s: a notification cannot
//! carry a field of its own making (a status line is one line by construction).
//! [`NotifySocket`] is systemd's, sent by the `sd-notify` crate to the socket named by
//! `NOTIFY_SOCKET`; outside systemd (no `NOTIFY_SOCKET`) it sends nothing, so the daemon runs
//! the same from a terminal, a container or a test. A failure to send is logged and never an
//! error: systemd missing a status line must not disturb a cycle.

use sd_notify::NotifyState;
use std::time::Duration;

/// The variable that names systemd's notification socket. `sd-notify` reads it at each send,
/// so it stays in this process's environment: a program that starts children removes it from
/// theirs (docs/decisions.md, "systemd is a trait").
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// One notification of the daemon to its service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `READY=1`: the daemon is up.
    Ready,
    /// `STATUS=`: the line `systemctl status` shows.
    Status(StatusLine),
    /// `WATCHDOG=1`: the loop is alive.
    Watchdog,
    /// `STOPPING=1`: the daemon begins to stop.
    Stopping,
    /// `EXTEND_TIMEOUT_USEC=`: the current start or stop may take this much longer.
    ExtendTimeout(Duration),
}

/// A status text of one line: line breaks and other control characters become spaces, since
/// a newline inside would start a field of its own in the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine(String);

impl StatusLine {
    /// `text` on one line.
    pub fn new(text: &str) -> StatusLine {
        StatusLine(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    }

    /// The line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Notification {
    /// A `STATUS=` of `text`, on one line.
    pub fn status(text: &str) -> Notification {
        Notification::Status(StatusLine::new(text))
    }

    /// The `sd-notify` state that says it. `EXTEND_TIMEOUT_USEC` is a `u32` there (71 min):
    /// a longer extension is cut to that, which the next one renews.
    fn state(&self) -> NotifyState<'_> {
        match self {
            Notification::Ready => NotifyState::Ready,
            Notification::Status(line) => NotifyState::Status(line.as_str()),
            Notification::Watchdog => NotifyState::Watchdog,
            Notification::Stopping => NotifyState::Stopping,
            Notification::ExtendTimeout(by) => {
                NotifyState::ExtendTimeoutUsec(u32::try_from(by.as_micros()).unwrap_or(u32::MAX))
            }
        }
    }
}

impl std::fmt::Display for Notification {
    /// The field as it goes on the wire, without its newline (`STATUS=idle`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.state().fmt(f)
    }
}

/// Where the daemon's notifications to its service manager go.
pub trait ServiceManager: Send + Sync + std::fmt::Debug {
    /// Sends one notification; never fails the caller.
    fn notify(&self, notification: &Notification);
    /// How often to send `WATCHDOG=1`, when the manager watches this process.
    fn watchdog_interval(&self) -> Option<Duration>;
}

/// systemd's notification socket (`NOTIFY_SOCKET`), and the watchdog it asks for.
#[derive(Debug, Clone, Default)]
pub struct NotifySocket {
    watchdog: Option<Duration>,
}

impl NotifySocket {
    /// systemd's socket and watchdog for this process: the watchdog read now (half of
    /// `WATCHDOG_USEC`, systemd's advice, when `WATCHDOG_PID` is unset or ours), so that the
    /// caller may then remove the watchdog's variables; the socket read at each send, so
    /// `NOTIFY_SOCKET` must stay in the environment.
    pub fn from_env() -> NotifySocket {
        if std::env::var_os(NOTIFY_SOCKET)
            .is_some_and(|path| path.as_encoded_bytes().first() == Some(&b'@'))
        {
            tracing::warn!(
                "NOTIFY_SOCKET names an abstract socket, which the sd-notify crate cannot \
                 reach: systemd will not hear READY=1 nor the watchdog (systemd has given a \
                 path for years; see docs/decisions.md, \"systemd is a trait\")"
            );
        }
        NotifySocket {
            watchdog: half(sd_notify::watchdog_enabled()),
        }
    }
}

impl ServiceManager for NotifySocket {
    fn notify(&self, notification: &Notification) {
        if let Err(e) = sd_notify::notify(&[notification.state()]) {
            tracing::warn!(error = %e, "could not notify the service manager");
        }
    }

    fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// Half the watchdog's interval, none when it is zero (the watchdog is off).
fn half(interval: Option<Duration>) -> Option<Duration> {
    interval.filter(|i| !i.is_zero()).map(|i| i / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_notification_is_its_field() {
        let fields: Vec<String> = [
            Notification::Ready,
            Notification::status("waiting for the agent"),
            Notification::Watchdog,
            Notification::Stopping,
            Notification::ExtendTimeout(Duration::from_secs(30)),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            fields,
            [
                "READY=1",
                "STATUS=waiting for the agent",
                "WATCHDOG=1",
                "STOPPING=1",
                "EXTEND_TIMEOUT_USEC=30000000"
            ]
        );
    }

    #[test]
    fn a_status_is_one_line_whatever_its_text() {
        let status = Notification::status("waiting\nREADY=1\r\tsecond line");
        assert_eq!(status.to_string(), "STATUS=waiting READY=1  second line");
        assert_eq!(
            StatusLine::new("läuft: 3 stacks").as_str(),
            "läuft: 3 stacks"
        );
    }

    #[test]
    fn an_extension_past_what_the_field_holds_is_cut_to_its_most() {
        let long = Notification::ExtendTimeout(Duration::from_secs(10 * 3600));
        assert_eq!(
            long.to_string(),
            format!("EXTEND_TIMEOUT_USEC={}", u32::MAX)
        );
    }

    #[test]
    fn the_watchdog_is_half_the_interval_and_off_at_zero() {
        assert_eq!(
            half(Some(Duration::from_secs(30))),
            Some(Duration::from_secs(15))
        );
        assert_eq!(half(Some(Duration::ZERO)), None);
        assert_eq!(half(None), None);
    }
}
