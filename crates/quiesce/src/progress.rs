//! What a step tells the driver ([`Progress`], over a [`Reporter`]), and what applying it asks
//! of the driver ([`Applied`]). Adding a fact is adding a variant here and its arm of
//! `Cycle::apply`.

use crate::machine::{Observed, Phase};
use chrono::{DateTime, Utc};
use felhom_agentapi::BackupStatus;
use felhom_marker::{Marker, StrandedStack};

/// Something that happened to a cycle. The steps send these as they happen, so what a step
/// had done before it was aborted (the bound, a cancellation, a panic) is still known. Adding
/// a fact is adding a variant and its arm of [`Cycle::apply`].
#[derive(Debug)]
pub(crate) enum Progress {
    /// A new cycle begins: its marker goes on disk before anything is stopped.
    Began,
    /// The table moved the cycle to this phase.
    Entered(Phase),
    /// A stack's stop begins.
    StopBegan { stack: String, at: DateTime<Utc> },
    /// A stack is down; these services ran and are to be started again.
    Stopped {
        stack: String,
        services: Vec<String>,
        at: DateTime<Utc>,
    },
    /// A stack's stop failed.
    StopFailed { stack: String, error: String },
    /// The agent took the backup on (started or adopted) under this id.
    BackupStarted { id: String, adopted: bool },
    /// The agent answered a status poll.
    StatusSeen {
        observed: Observed,
        status: BackupStatus,
    },
    /// One start of a stack failed.
    StartFailed {
        stack: String,
        attempt: u32,
        attempts: u32,
        error: String,
    },
    /// A stack runs again.
    StackBack {
        stack: String,
        attempt: u32,
        at: DateTime<Utc>,
    },
    /// A stack could not be started again after every attempt.
    Stranded(StrandedStack),
    /// These stranded stacks are in the stranded list now: they leave the marker.
    StrandedKept(Vec<String>),
    /// A recovery asked the agent about the marker's backup: what it said.
    AgentSaid {
        phase: String,
        snapshot_at: Option<DateTime<Utc>>,
    },
    /// A problem, for the log and the record.
    Note(Level, String),
}

/// The steps' end of the channel to the driver.
#[derive(Debug, Clone)]
pub(crate) struct Reporter(pub(crate) tokio::sync::mpsc::UnboundedSender<Progress>);

impl Reporter {
    /// Sends `progress` to the driver; never waits. Once the driver is gone nobody needs it.
    pub(crate) fn send(&self, progress: Progress) {
        let _ = self.0.send(progress);
    }

    /// Notes a problem in the cycle's record.
    pub(crate) fn note(&self, level: Level, message: String) {
        self.send(Progress::Note(level, message));
    }
}

/// How loud a noted problem is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Warn,
    Error,
}

/// What applying a fact asks of the driver.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// What the marker on disk is to become.
    pub(crate) on_disk: OnDisk,
    /// A line to log once that is on disk (someone may act on it: a recovery can count on it).
    pub(crate) say: Option<Said>,
}

/// What the marker on disk is to become after a fact.
#[derive(Debug, Default)]
pub(crate) enum OnDisk {
    /// As it is.
    #[default]
    Keep,
    /// This marker.
    Save(Marker),
    /// Removed.
    Remove,
}

/// A line logged once the marker that holds it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Said {
    BackupStarted { id: String, adopted: bool },
    StackBack { stack: String, attempt: u32 },
}

impl Said {
    pub(crate) fn say(&self) {
        match self {
            Said::BackupStarted { id, adopted } => {
                tracing::info!(backup = %id, adopted, "backup started")
            }
            Said::StackBack { stack, attempt } => {
                tracing::info!(stack = %stack, attempt, "stack runs again")
            }
        }
    }
}
