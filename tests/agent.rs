//! The development agent, in this process or as the `felhom-devagent` binary.

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use felhom_devagent::{AgentConfig, DevAgent, DueMode, Event, EventKind, Fault};

pub use felhom_testsupport::agent::Access;

use crate::env::Env;

use crate::{devagent_bin, POLL, WAIT};

/// The bearer token of the in-process agent.
const TOKEN: &str = "e2e-token-5b1f0c";

/// The development agent, in this process (its own runtime): faults and the due mode can be
/// switched while a cycle runs. Backs up the environment's data directory, with snapshot and
/// archive delays of 1 s and due `always` unless changed at start.
#[derive(Debug)]
pub struct Agent {
    agent: Option<DevAgent>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Agent {
    /// Starts the agent; `tweak` adjusts its config (faults, delays, due mode) first.
    pub fn start(env: &Env, tweak: impl FnOnce(&mut AgentConfig)) -> Agent {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the agent");
        let mut config = AgentConfig::new(TOKEN, env.data_dir(), env.out_dir());
        config.snapshot_delay = Duration::from_secs(1);
        config.archive_delay = Duration::from_secs(1);
        config.due = DueMode::Always;
        tweak(&mut config);
        let agent = runtime
            .block_on(DevAgent::start(config))
            .expect("the development agent starts");
        Agent {
            agent: Some(agent),
            runtime: Some(runtime),
        }
    }

    fn inner(&self) -> &DevAgent {
        self.agent.as_ref().expect("the agent runs until dropped")
    }

    /// URL, pin and token.
    pub fn access(&self) -> Access {
        let agent = self.inner();
        Access {
            url: agent.url(),
            pin: agent.pin(),
            token: agent.token().to_owned(),
        }
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.inner().set_faults(faults);
    }

    /// Removes every fault (a hanging backup then goes on).
    pub fn clear_faults(&self) {
        self.inner().clear_faults();
    }

    /// Changes when the agent says due.
    pub fn set_due(&self, due: DueMode) {
        self.inner().set_due(due);
    }

    /// The agent's timeline so far.
    pub fn events(&self) -> Vec<Event> {
        self.inner().events()
    }

    /// Waits (bounded) for the first event `matches` accepts; `what` names it in the panic.
    pub fn wait_event(&self, what: &str, matches: impl Fn(&EventKind) -> bool) -> Event {
        let events = self.wait_timeline(what, |events| events.iter().any(|e| matches(&e.kind)));
        events
            .into_iter()
            .find(|e| matches(&e.kind))
            .expect("the timeline only grows")
    }

    /// Waits (bounded) until the timeline satisfies `done`; returns it.
    pub fn wait_timeline(&self, what: &str, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "the agent never saw {what} within {WAIT:?}; its timeline: {events:#?}"
            );
            thread::sleep(POLL);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let (Some(agent), Some(runtime)) = (self.agent.take(), self.runtime.take()) {
            // The timer must be made inside the runtime: hence the async block.
            let _ = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), agent.shutdown()).await
            });
            // A copy or tar under way on a blocking thread is not waited for.
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The `felhom-devagent` binary as a process, backing up the environment's data directory,
/// with snapshot and archive delays of 1 s and its timeline in an events file. Stopped when
/// dropped.
#[derive(Debug)]
pub struct AgentProcess {
    process: felhom_testsupport::agent::AgentProcess,
    events_file: PathBuf,
}

impl AgentProcess {
    /// Starts the agent with `extra` arguments (e.g. `["--due", "once"]`) and reads the
    /// `url:`, `pin:` and `token:` lines it prints (bounded).
    pub fn spawn(env: &Env, extra: &[&str]) -> AgentProcess {
        let events_file = env.path().join("agent-events.jsonl");
        let mut command = Command::new(devagent_bin());
        command
            .arg("--source")
            .arg(env.data_dir())
            .arg("--out")
            .arg(env.out_dir())
            .arg("--events")
            .arg(&events_file)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--snapshot-delay",
                "1s",
                "--archive-delay",
                "1s",
            ])
            .args(extra);
        let process = felhom_testsupport::agent::AgentProcess::spawn(
            command,
            &env.path().join("agent.log"),
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        AgentProcess {
            process,
            events_file,
        }
    }

    /// URL, pin and token, as printed.
    pub fn access(&self) -> Access {
        self.process.access().clone()
    }

    /// The timeline so far, from the events file.
    pub fn events(&self) -> Vec<Event> {
        let text = std::fs::read_to_string(&self.events_file).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: line {l:?}: {e}", self.events_file.display()))
            })
            .collect()
    }
}

/// When the agent took the snapshot of backup `id`, from its timeline.
pub fn snapshot_time(events: &[Event], id: &str) -> DateTime<Utc> {
    events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::SnapshotTaken { id: i } if i == id))
        .map(|e| e.at)
        .unwrap_or_else(|| panic!("no snapshot_taken of {id} in the timeline: {events:#?}"))
}
