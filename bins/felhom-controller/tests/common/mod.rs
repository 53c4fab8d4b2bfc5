//! What the real-binary tests share: a notification socket of their own (systemd is not PID 1
//! here), a daemon whose log lines are read as they come, and bounded waits on both — every
//! wait is for an event, never a sleep standing for one.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::io::BufRead;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_felhom-controller");

/// A generous bound that only catches a hang.
pub(crate) const HANG: Duration = Duration::from_secs(60);

/// The binary with `--config <config>`, no service manager of the caller's inherited.
pub(crate) fn command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    cmd
}

/// The datagrams a daemon sends to a socket the test binds, read on a thread.
pub(crate) struct Notifications {
    got: Receiver<(Instant, String)>,
    pub(crate) seen: Vec<(Instant, String)>,
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
}

impl Notifications {
    pub(crate) fn bind() -> Notifications {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        let (tx, got) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
            }
        });
        Notifications {
            got,
            seen: Vec::new(),
            _dir: dir,
            path,
        }
    }

    /// Waits (bounded) for a datagram that starts with `prefix`; the ones before are kept.
    pub(crate) fn wait_for(&mut self, prefix: &str, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.got.recv_timeout(left) {
                Ok((at, text)) => {
                    let hit = text.starts_with(prefix);
                    self.seen.push((at, text));
                    if hit {
                        return Some(at);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    pub(crate) fn count(&self, prefix: &str) -> usize {
        self.seen
            .iter()
            .filter(|(_, t)| t.starts_with(prefix))
            .count()
    }
}

/// A running `felhom-controller run` (or another command), its stderr read line by line.
pub(crate) struct Running {
    child: Child,
    lines: Receiver<String>,
    pub(crate) log: Vec<String>,
}

impl Running {
    /// Spawns `cmd` with its stderr piped and read on a thread.
    pub(crate) fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits (bounded) for a log line that holds `text` — one logged already included —;
    /// the line.
    pub(crate) fn wait_line(&mut self, text: &str) -> String {
        if let Some(line) = self.log.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?} within {HANG:?}:\n{}",
                    self.text()
                ),
            }
        }
    }

    /// The port of the status endpoint, as the daemon logs it once bound (`listen` may name
    /// port 0: the kernel picks a free one, and no other test can take it meanwhile).
    pub(crate) fn endpoint_port(&mut self) -> u16 {
        let line = self.wait_line("status endpoint on http://");
        let at = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("an address");
        at.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line}"))
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit code and the whole log (bounded).
    pub(crate) fn stop(self) -> (Option<i32>, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        self.finish()
    }

    /// The exit code and the whole log, once the process has exited on its own (bounded).
    pub(crate) fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + HANG;
        // The log ends when the process closes its stderr, at its exit.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("no exit within {HANG:?}:\n{}", self.text());
                }
            }
        }
        let status = self.child.wait().expect("wait");
        (status.code(), self.text())
    }

    pub(crate) fn text(&self) -> String {
        self.log.join("\n")
    }
}

/// `felhom-controller --config <config> run` under a notification socket of the test's own.
pub(crate) fn daemon(config: &Path, vars: &[(&str, &str)]) -> (Notifications, Running) {
    let sd = Notifications::bind();
    let mut cmd = command(config, &["run"]);
    cmd.env("NOTIFY_SOCKET", &sd.path);
    cmd.envs(vars.iter().copied());
    (sd, Running::spawn(cmd))
}

/// `GET http://127.0.0.1:<port><path>`: the body of a 200 answer, `None` otherwise.
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Asks `/metrics` until a line `<name> <value>` is there (bounded): a gauge the daemon sets
/// as its loop goes.
pub(crate) fn wait_metric(port: u16, line: &str) -> String {
    let deadline = Instant::now() + HANG;
    loop {
        let text = http_get(port, "/metrics").unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {line:?} in /metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
