//! The on-disk types: the marker, the cycle record and the stranded stack. Their field names
//! are a file format, so renaming one is a format change.

use crate::capture::{Capture, ContainerFact};
use crate::hooks::{MarkedHooks, ServiceRecord};
use crate::salvage::MarkerSalvage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The marker format this build writes and reads. A marker of another version is refused
/// (and moved aside), never guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// The crash-recovery marker: which stacks a cycle stopped (or is about to stop), so that they
/// come back whatever happens to the process that stopped them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Format version; always [`FORMAT_VERSION`] when written by this build.
    pub version: u32,
    /// The cycle that wrote the marker.
    pub cycle_id: String,
    /// Where the cycle was when the marker was last written.
    pub phase: MarkerPhase,
    /// When the cycle started.
    pub started_at: DateTime<Utc>,
    /// The pid of the controller process that wrote the marker.
    pub pid: u32,
    /// The agent's backup id, once `POST /backup` answered.
    #[serde(default)]
    pub backup_id: Option<String>,
    /// The stacks about to be stopped or stopped, in the order they are stopped.
    pub stacks: Vec<MarkedStack>,
    /// Set only on a marker that [`crate::MarkerStore::load`] salvaged from a file it could
    /// not use as it was (never written): the stacks above are those that could still be
    /// read. The recovery brings them back as for any marker, and also records and reports
    /// the salvage (history, `marker_corrupt` notice).
    #[serde(skip)]
    pub salvage: Option<MarkerSalvage>,
}

impl Marker {
    /// The stack `name` of the marker, to change it.
    pub fn stack_mut(&mut self, name: &str) -> Option<&mut MarkedStack> {
        self.stacks.iter_mut().find(|s| s.name == name)
    }

    /// A new marker for `cycle_id`, in phase [`MarkerPhase::Quiescing`], stamped with this
    /// process's pid.
    pub fn new(
        cycle_id: impl Into<String>,
        started_at: DateTime<Utc>,
        stacks: Vec<MarkedStack>,
    ) -> Self {
        Marker {
            version: FORMAT_VERSION,
            cycle_id: cycle_id.into(),
            phase: MarkerPhase::Quiescing,
            started_at,
            pid: std::process::id(),
            backup_id: None,
            stacks,
            salvage: None,
        }
    }
}

/// One stack named in a marker.
///
/// A marker of a build before container ids (issue 18) names only `services`: such a stack
/// (`containers` empty) is brought back by its services, as that build did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedStack {
    /// The stack's (compose project's) name.
    pub name: String,
    /// The services that were running before the stop.
    pub services: Vec<String>,
    /// How many restarts of this stack have failed so far.
    #[serde(default)]
    pub restart_attempts: u32,
    /// The containers the cycle stops (or is about to stop): written before each stop call
    /// that concerns them, so that exactly these, and never another, are started again.
    #[serde(default)]
    pub containers: Vec<MarkedContainer>,
    /// Whether the stack's stop began: written (and on disk) before its first stop call. A
    /// stack whose stop never began is left as it is by a recovery: nothing of ours stopped
    /// it.
    #[serde(default)]
    pub stop_began: bool,
    /// The stack's `felhom.stop-order` (issue 23): lower values stop first and start last.
    /// 0 in a marker of a build before it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stop_order: i32,
    /// Its services that have hooks, and how far their hooks got (issue 23): a recovery runs
    /// the `post-resume` hooks still due ([`MarkedHooks::post_resume_due`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<MarkedHooks>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl MarkedStack {
    /// A stack about to be stopped: its running `services` and `containers`, no stop begun.
    pub fn new(
        name: impl Into<String>,
        services: Vec<String>,
        containers: Vec<MarkedContainer>,
    ) -> Self {
        MarkedStack {
            name: name.into(),
            services,
            restart_attempts: 0,
            containers,
            stop_began: false,
            stop_order: 0,
            hooks: Vec::new(),
        }
    }
}

/// One container of a marked or stranded stack, as the engine names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MarkedContainer {
    /// The engine's full id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// Its compose service.
    pub service: String,
}

/// The phase of the cycle that wrote a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerPhase {
    /// Stacks are being stopped.
    Quiescing,
    /// Stacks are down; the agent is backing up.
    BackingUp,
    /// Stacks are being started again.
    Resuming,
}

/// How a cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent reported `done`.
    Done,
    /// The agent reported `failed`, refused the backup (`503`) or could not be asked.
    Failed,
    /// The agent knew no backup of ours (`idle` or another id).
    Lost,
    /// The `max_quiesce` bound ended the wait.
    Bounded,
    /// The controller was told to stop (SIGTERM/SIGINT) mid-cycle.
    Cancelled,
    /// A marker left by a crashed controller was recovered at startup.
    Recovered,
}

impl Outcome {
    /// The outcome as the record's JSON spells it: `done`, `failed`, `lost`, `bounded`,
    /// `cancelled`, `recovered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Lost => "lost",
            Outcome::Bounded => "bounded",
            Outcome::Cancelled => "cancelled",
            Outcome::Recovered => "recovered",
        }
    }
}

/// The record of one cycle, appended to the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleRecord {
    /// The cycle's id.
    pub cycle_id: String,
    /// When the cycle started.
    pub started_at: DateTime<Utc>,
    /// When the cycle ended (stacks resumed, marker cleared).
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// The agent's backup id, if one was started or adopted.
    #[serde(default)]
    pub backup_id: Option<String>,
    /// When the agent reported the snapshot taken, if it did.
    #[serde(default)]
    pub snapshot_at: Option<DateTime<Utc>>,
    /// For a recovered cycle: the phase the agent reported for the marker's backup
    /// (`done`, `failed`, `running`, ..., or `lost` when it knew it no longer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_phase: Option<String>,
    /// Each stack the cycle stopped, with its times.
    #[serde(default)]
    pub stacks: Vec<StackRecord>,
    /// Stacks that could not be restarted after every attempt.
    #[serde(default)]
    pub stranded: Vec<String>,
    /// Stacks still down when the cycle ended because the Docker engine could not be
    /// reached: the marker keeps them for the next recovery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for_engine: Vec<String>,
    /// What went wrong, in order, one line each.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl CycleRecord {
    /// Whether the cycle is a success: the agent reported `done`, every stack it stopped
    /// runs again (none stranded, none still waiting for the engine) and no stack's capture
    /// needs a person ([`Capture::Killed`], [`Capture::Live`], [`Capture::HookFailed`]).
    /// Anything else is a failed cycle (SPEC §2 rule 7's cooldown, no success ping, exit
    /// status 1).
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Done
            && self.stranded.is_empty()
            && self.waiting_for_engine.is_empty()
            && self.inconsistent().is_empty()
    }

    /// The record of stack `name`, if the cycle touched it.
    pub fn stack(&self, name: &str) -> Option<&StackRecord> {
        self.stacks.iter().find(|s| s.name == name)
    }

    /// The stacks whose capture needs a person ([`Capture::needs_attention`]), in the
    /// record's order.
    pub fn inconsistent(&self) -> Vec<&StackRecord> {
        self.stacks
            .iter()
            .filter(|s| s.capture.needs_attention())
            .collect()
    }
}

/// One stack's part in a cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackRecord {
    /// The stack's name.
    pub name: String,
    /// The services stopped and started again.
    #[serde(default)]
    pub services: Vec<String>,
    /// When its stop began.
    #[serde(default)]
    pub stop_started_at: Option<DateTime<Utc>>,
    /// When its stop completed.
    #[serde(default)]
    pub stopped_at: Option<DateTime<Utc>>,
    /// When it ran again (after start and wait).
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// From the beginning of its stop to running again, in milliseconds.
    #[serde(default)]
    pub downtime_ms: Option<u64>,
    /// What the backup captured of it, from the engine's evidence (SPEC §2 rule 10). A record
    /// of a build before verdicts reads as [`Capture::Unknown`].
    #[serde(default)]
    pub capture: Capture,
    /// The facts behind a verdict other than `clean`, container by container: which one was
    /// killed, ran or appeared, and when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<ContainerFact>,
    /// Its `felhom.stop-order` (issue 23).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stop_order: i32,
    /// Each of its services (issue 23): how it was quiesced, its own verdict, its hooks. The
    /// stack's `capture` is the first of `live`, `killed`, `hook-failed`, `unknown`,
    /// `skipped`, `hooked`, `clean` that any of them has ([`Capture::first_of`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_service: Vec<ServiceRecord>,
    /// Its labels with bad values, one line each naming the service and the full label: each
    /// service was then treated as if that label were absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_errors: Vec<String>,
}

impl StackRecord {
    /// The record of its service `name` (issue 23), if it has one.
    pub fn service(&self, name: &str) -> Option<&ServiceRecord> {
        self.by_service.iter().find(|s| s.service == name)
    }
}

/// A stack that could not be restarted after every attempt of its cycle, kept in the state
/// directory until it runs again (SPEC §2 rule 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrandedStack {
    /// The stack's (compose project's) name.
    pub name: String,
    /// The services to start: those that ran before the cycle stopped the stack.
    pub services: Vec<String>,
    /// The containers to start: those the cycle stopped. Empty in a list of a build before
    /// container ids: the stack is then started by its services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<MarkedContainer>,
    /// The cycle that stopped it and could not bring it back.
    pub cycle_id: String,
    /// Since when it is stranded.
    pub since: DateTime<Utc>,
    /// How many starts have failed so far, the cycle's included.
    pub attempts: u32,
    /// The last start's error, short (one line).
    pub last_error: String,
    /// Set when the controller stopped retrying it, saying why: its containers were removed
    /// outside the controller (`docker compose down`, `docker rm`), and what an operator
    /// removed is not recreated. It still needs a person: it stays listed until it is
    /// brought up by hand and dropped with `felhom-controller forget <stack>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_up: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_outcome_is_spelled_as_its_json() {
        for name in [
            "done",
            "failed",
            "lost",
            "bounded",
            "cancelled",
            "recovered",
        ] {
            let outcome: Outcome = serde_json::from_value(json!(name)).expect("an outcome");
            assert_eq!(outcome.as_str(), name);
        }
    }

    #[test]
    fn only_a_done_cycle_with_nothing_stranded_succeeded() {
        let record = |outcome: &str, stranded: &[&str]| -> CycleRecord {
            serde_json::from_value(json!({
                "cycle_id": "c-1",
                "started_at": "2024-05-01T02:00:00Z",
                "finished_at": "2024-05-01T02:03:00Z",
                "outcome": outcome,
                "stranded": stranded,
            }))
            .expect("a record")
        };
        assert!(record("done", &[]).succeeded());
        assert!(
            !record("done", &["beta"]).succeeded(),
            "a stranded stack fails the cycle"
        );
        for outcome in ["failed", "lost", "bounded", "cancelled", "recovered"] {
            assert!(!record(outcome, &[]).succeeded(), "{outcome}");
        }
    }

    #[test]
    fn a_done_cycle_with_a_dirty_capture_or_stacks_waiting_did_not_succeed() {
        let record = |captures: &[&str], waiting: &[&str]| -> CycleRecord {
            let stacks: Vec<serde_json::Value> = captures
                .iter()
                .enumerate()
                .map(|(i, c)| json!({"name": format!("s{i}"), "capture": c}))
                .collect();
            serde_json::from_value(json!({
                "cycle_id": "c-1",
                "started_at": "2024-05-01T02:00:00Z",
                "finished_at": "2024-05-01T02:03:00Z",
                "outcome": "done",
                "stacks": stacks,
                "waiting_for_engine": waiting,
            }))
            .expect("a record")
        };
        assert!(record(&["clean", "unknown"], &[]).succeeded());
        assert!(record(&["skipped", "hooked"], &[]).succeeded());
        for dirty in ["killed", "live", "hook-failed"] {
            let r = record(&["clean", dirty], &[]);
            assert!(!r.succeeded(), "{dirty}");
            assert_eq!(r.inconsistent().len(), 1);
            assert_eq!(r.inconsistent()[0].name, "s1");
        }
        assert!(
            !record(&["clean"], &["s0"]).succeeded(),
            "a stack still waits"
        );
    }

    /// A marker, record and stranded stack of the build before container ids and verdicts
    /// still read: their stacks are recovered by services, their verdicts unknown.
    #[test]
    fn the_files_of_a_previous_build_still_read() {
        let marker: Marker = serde_json::from_value(json!({
            "version": 1,
            "cycle_id": "c-old",
            "phase": "backing_up",
            "started_at": "2024-05-01T02:00:00Z",
            "pid": 42,
            "stacks": [{"name": "nextcloud", "services": ["app", "db"], "restart_attempts": 1}],
        }))
        .expect("an old marker");
        let stack = &marker.stacks[0];
        assert!(
            stack.containers.is_empty() && !stack.stop_began,
            "{stack:?}"
        );
        let record: CycleRecord = serde_json::from_value(json!({
            "cycle_id": "c-old",
            "started_at": "2024-05-01T02:00:00Z",
            "finished_at": "2024-05-01T02:03:00Z",
            "outcome": "done",
            "stacks": [{"name": "nextcloud", "services": ["app"]}],
        }))
        .expect("an old record");
        assert_eq!(record.stacks[0].capture, Capture::Unknown);
        assert!(record.waiting_for_engine.is_empty() && record.succeeded());
        let stranded: StrandedStack = serde_json::from_value(json!({
            "name": "nextcloud",
            "services": ["app"],
            "cycle_id": "c-old",
            "since": "2024-05-01T02:03:00Z",
            "attempts": 5,
            "last_error": "exited",
        }))
        .expect("an old stranded stack");
        assert!(stranded.containers.is_empty());
    }

    #[test]
    fn a_new_marker_round_trips_its_containers_and_stop() {
        let mut stack = MarkedStack::new(
            "nextcloud",
            vec!["app".into()],
            vec![MarkedContainer {
                id: "4f1c".into(),
                name: "nextcloud-app-1".into(),
                service: "app".into(),
            }],
        );
        stack.stop_began = true;
        let json = serde_json::to_value(&stack).expect("serialises");
        assert_eq!(json["stop_began"], json!(true));
        assert_eq!(json["containers"][0]["id"], json!("4f1c"));
        let back: MarkedStack = serde_json::from_value(json).expect("reads");
        assert_eq!(back, stack);
    }
}
