//! The on-disk types: the marker, the cycle record and the stranded stack. Their field names
//! are a file format, so renaming one is a format change.

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedStack {
    /// The stack's (compose project's) name.
    pub name: String,
    /// The services that were running before the stop: exactly these are started again.
    pub services: Vec<String>,
    /// How many restarts of this stack have failed so far.
    #[serde(default)]
    pub restart_attempts: u32,
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
    /// What went wrong, in order, one line each.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl CycleRecord {
    /// Whether the cycle is a success: the agent reported `done` and every stack it stopped
    /// runs again (none stranded). Anything else is a failed cycle (SPEC §2 rule 7's
    /// cooldown, the `failed` notice, exit status 1).
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Done && self.stranded.is_empty()
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
}

/// A stack that could not be restarted after every attempt of its cycle, kept in the state
/// directory until it runs again (SPEC §2 rule 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrandedStack {
    /// The stack's (compose project's) name.
    pub name: String,
    /// The services to start: those that ran before the cycle stopped the stack.
    pub services: Vec<String>,
    /// The cycle that stopped it and could not bring it back.
    pub cycle_id: String,
    /// Since when it is stranded.
    pub since: DateTime<Utc>,
    /// How many starts have failed so far, the cycle's included.
    pub attempts: u32,
    /// The last start's error, short (one line).
    pub last_error: String,
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
}
