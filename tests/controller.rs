//! The controller binary as a process: its JSON log, its exit, signals.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use felhom_marker::CycleRecord;
use serde_json::Value;

use crate::{controller_bin, signal, wait_bounded, POLL, WAIT};

/// One line the controller logged (`--log-format json`, on stderr).
#[derive(Debug, Clone)]
pub struct LogLine {
    /// `fields.message`; for a line that is not a JSON log, the whole line.
    pub message: String,
    /// The line's fields (`fields` of the JSON log), e.g. `stack`, `outcome`.
    fields: serde_json::Map<String, Value>,
    /// The line as printed.
    pub raw: String,
}

impl LogLine {
    fn parse(raw: &str) -> LogLine {
        let fields = serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v.get("fields").and_then(Value::as_object).cloned())
            .unwrap_or_default();
        let message = fields
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(raw)
            .to_owned();
        LogLine {
            message,
            fields,
            raw: raw.to_owned(),
        }
    }

    /// When the line was logged (the JSON log's `timestamp`).
    pub fn timestamp(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let v: Value = serde_json::from_str(&self.raw).ok()?;
        let text = v.get("timestamp")?.as_str()?;
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The line's spans as the JSON log lists them (`spans`: name and fields of each).
    pub fn spans(&self) -> Vec<serde_json::Map<String, Value>> {
        serde_json::from_str::<Value>(&self.raw)
            .ok()
            .and_then(|v| v.get("spans").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.as_object().cloned())
            .collect()
    }

    /// A field as text (strings without their quotes).
    pub fn field(&self, key: &str) -> Option<String> {
        self.fields.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

type Shared<T> = Arc<Mutex<T>>;

fn read_into(stream: impl Read + Send + 'static, sink: Shared<Vec<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    })
}

/// A running `felhom-controller --config <file> --log-format json <args>`, in its own process
/// group (as under systemd, a kill takes its compose children with it). Its stderr (the JSON
/// log) and stdout are captured by reader threads.
#[derive(Debug)]
pub struct Controller {
    child: Child,
    command: String,
    stderr: Shared<Vec<String>>,
    stdout: Shared<Vec<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Controller {
    /// Starts the controller with `args` (e.g. `["once", "--force"]`).
    pub fn spawn(config: &Path, args: &[&str]) -> Controller {
        Controller::spawn_with(Some(config), args, &[])
    }

    /// Starts the controller with `args` and the environment variables `vars` (e.g.
    /// `DOCKER_HOST` for it alone); without `config`, it gets no `--config` (see
    /// `FELHOM_CONFIG`) and no `--log-format` (see `FELHOM_LOG_FORMAT`).
    pub fn spawn_with(config: Option<&Path>, args: &[&str], vars: &[(&str, String)]) -> Controller {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(controller_bin());
        if let Some(config) = config {
            command
                .arg("--config")
                .arg(config)
                .args(["--log-format", "json"]);
        }
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // The test's own environment must not reconfigure the binary under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FELHOM_") {
                command.env_remove(key);
            }
        }
        command.envs(vars.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().expect("felhom-controller starts");
        let stderr = Shared::default();
        let stdout = Shared::default();
        let readers = vec![
            read_into(child.stderr.take().expect("piped stderr"), stderr.clone()),
            read_into(child.stdout.take().expect("piped stdout"), stdout.clone()),
        ];
        Controller {
            child,
            command: format!("felhom-controller {}", args.join(" ")),
            stderr,
            stdout,
            readers,
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<LogLine> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|l| LogLine::parse(l))
            .collect()
    }

    fn log_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Waits (bounded) for the first log line whose message is `message`.
    pub fn wait_log(&mut self, message: &str) -> LogLine {
        self.wait_log_where(&format!("the log line {message:?}"), |l| {
            l.message == message
        })
    }

    /// Waits (bounded) for the first log line `matches` accepts; `what` names it in the panic.
    /// Fails early when the process exits without logging it.
    pub fn wait_log_where(&mut self, what: &str, matches: impl Fn(&LogLine) -> bool) -> LogLine {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.status.is_none() {
                self.status = self.child.try_wait().ok().flatten();
            }
            let exited = self.status.is_some();
            if exited {
                // Let the reader threads drain what the process wrote before it ended.
                self.join_readers(Duration::from_secs(5));
            }
            if let Some(line) = self.logs().into_iter().find(|l| matches(l)) {
                return line;
            }
            assert!(
                !exited,
                "{} exited ({:?}) without logging {what}; its log:\n{}",
                self.command,
                self.status,
                self.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "{} did not log {what} within {WAIT:?}; its log:\n{}",
                self.command,
                self.log_text()
            );
            thread::sleep(POLL);
        }
    }

    /// The port of the status endpoint, as the controller logs it once bound: a config may
    /// name port 0, whose port the kernel picks and no other test can take meanwhile.
    pub fn endpoint_port(&mut self) -> u16 {
        let line = self.wait_log_where("the status endpoint's address", |l| {
            l.message.contains("status endpoint on http://")
        });
        line.message
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|address| address.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {:?}", line.raw))
    }

    /// Sends SIGTERM to the controller (not to its children: the controller handles it).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`HUP`, `QUIT`, ...) to the controller alone.
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name, false);
    }

    /// `kill -9` of the controller process alone: the compose commands it runs live on as
    /// orphans (as when an operator kills the pid, or a unit uses `KillMode=process`).
    pub fn kill_alone(&mut self) {
        signal(self.child.id(), "KILL", false);
        let status = wait_bounded(&mut self.child, WAIT)
            .unwrap_or_else(|| panic!("{} survived SIGKILL", self.command));
        self.status = Some(status);
        self.join_readers(Duration::from_secs(5));
    }

    /// `kill -9` of the controller's whole process group (the controller and any compose
    /// command it runs), as systemd does to a unit; waits for the controller to be gone.
    pub fn kill_group(&mut self) {
        signal(self.child.id(), "KILL", true);
        let status = wait_bounded(&mut self.child, WAIT)
            .unwrap_or_else(|| panic!("{} survived SIGKILL", self.command));
        self.status = Some(status);
        self.join_readers(Duration::from_secs(5));
    }

    fn join_readers(&mut self, limit: Duration) {
        // A grandchild that inherited a pipe could keep a reader open; never wait on it long.
        let deadline = Instant::now() + limit;
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        let (done, open): (Vec<_>, Vec<_>) = self.readers.drain(..).partition(|r| r.is_finished());
        for reader in done {
            let _ = reader.join();
        }
        self.readers = open;
    }

    /// Waits (bounded by `limit`) for the process to end; panics with its log if it does not.
    pub fn wait_within(mut self, limit: Duration) -> Finished {
        let status = match self.status {
            Some(status) => status,
            None => wait_bounded(&mut self.child, limit).unwrap_or_else(|| {
                panic!(
                    "{} did not exit within {limit:?}; its log:\n{}",
                    self.command,
                    self.log_text()
                )
            }),
        };
        self.status = Some(status);
        self.join_readers(Duration::from_secs(5));
        Finished {
            command: self.command.clone(),
            code: status.code(),
            stdout: self
                .stdout
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .join("\n"),
            stderr: self.log_text(),
        }
    }

    /// [`Controller::wait_within`] with twice [`WAIT`].
    pub fn wait(self) -> Finished {
        self.wait_within(2 * WAIT)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if self.status.is_none() {
            signal(self.child.id(), "KILL", true);
            let _ = self.child.wait();
        }
    }
}

/// Runs the controller with `args` to its end (bounded by twice [`WAIT`]).
pub fn run_controller(config: &Path, args: &[&str]) -> Finished {
    Controller::spawn(config, args).wait()
}

/// A controller process that ended.
#[derive(Debug, Clone)]
pub struct Finished {
    command: String,
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr (the log, and error messages).
    pub stderr: String,
}

impl Finished {
    /// The cycle record printed on stdout (`once`, `recover`).
    pub fn record(&self) -> CycleRecord {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("{self}\nstdout is not a cycle record: {e}"))
    }

    /// The log lines.
    pub fn logs(&self) -> Vec<LogLine> {
        self.stderr.lines().map(LogLine::parse).collect()
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} exited with {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}
