//! The development agent (`felhom-devagent`) as a separate process: started, its access read
//! from what it prints, and stopped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::process;

/// How long the agent has to end after SIGTERM when it is stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to reach an agent: what the controller's `[agent]` section needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The certificate pin.
    pub pin: String,
    /// The bearer token.
    pub token: String,
}

/// Why the agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The process could not be started.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// The command line.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It did not print its url, pin and token in time (or died first).
    #[error(
        "{what} did not print its url, pin and token within {limit:?}; its log {log}:\n{log_tail}"
    )]
    NoAccess {
        /// The command line.
        what: String,
        /// The bound.
        limit: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },
}

/// A running `felhom-devagent`; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    access: Access,
}

impl AgentProcess {
    /// Starts `command` (the agent binary with its arguments; `--listen 127.0.0.1:0` for a free
    /// port), its standard error into the file `log`, and reads the `url:`, `pin:` and
    /// `token:` lines it prints, for at most `limit`.
    pub fn spawn(mut command: Command, log: &Path, limit: Duration) -> Result<Self, AgentError> {
        let what = process::describe(&command);
        let spawn_err = |source| AgentError::Spawn {
            what: what.clone(),
            source,
        };
        let log_file = std::fs::File::create(log).map_err(spawn_err)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(spawn_err)?;
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            // The agent keeps its stdout open; this thread ends with the process.
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let deadline = Instant::now() + limit;
        let (mut url, mut pin, mut token) = (None, None, None);
        loop {
            if let (Some(url), Some(pin), Some(token)) = (&url, &pin, &token) {
                let access = Access {
                    url: String::clone(url),
                    pin: String::clone(pin),
                    token: String::clone(token),
                };
                return Ok(AgentProcess { child, access });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                process::terminate(&mut child, STOP_GRACE);
                let text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(AgentError::NoAccess {
                    what,
                    limit,
                    log: log.to_path_buf(),
                    log_tail: process::tail(&text, 15),
                });
            };
            if let Some((key, value)) = line.split_once(": ") {
                let value = Some(value.trim().to_owned());
                match key {
                    "url" => url = value,
                    "pin" => pin = value,
                    "token" => token = value,
                    _ => {}
                }
            }
        }
    }

    /// URL, pin and token, as printed.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        process::terminate(&mut self.child, STOP_GRACE);
    }
}
