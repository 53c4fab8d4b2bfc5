//! What a step tells the driver ([`Progress`], over a [`Reporter`]), and what applying it asks
//! of the driver ([`Applied`]). Adding a fact is adding a variant here and its arm of
//! `Cycle::apply`.

use crate::machine::{Observed, Phase};
use chrono::{DateTime, Utc};
use felhom_agentapi::{BackupStatus, IgnoredField};
use felhom_marker::{HookKind, HookRecord, Marker, StrandedStack};
use felhom_stacks::{ContainerRef, DownCheck, StopReport};
use tokio::sync::oneshot;

/// Something that happened to a cycle. The steps send these as they happen, so what a step
/// had done before it was aborted (the bound, a cancellation, a panic) is still known. Adding
/// a fact is adding a variant and its arm of [`Cycle::apply`](crate::cycle::Cycle::apply).
#[derive(Debug)]
pub(crate) enum Progress {
    /// A new cycle begins: its marker goes on disk before anything is stopped.
    Began,
    /// The table moved the cycle to this phase.
    Entered(Phase),
    /// These containers of a stack are about to be stopped: the marker records them, and
    /// that the stack's stop began, before any stop call. `ack` hears whether that marker is
    /// on disk (taken by the driver, which answers once the write has landed).
    Recording {
        stack: String,
        containers: Vec<ContainerRef>,
        ack: Option<Ack>,
    },
    /// A stack's stop calls begin.
    StopBegan { stack: String, at: DateTime<Utc> },
    /// A stop call of a stack answered: the engine's account of each container.
    Stopped {
        stack: String,
        report: StopReport,
        at: DateTime<Utc>,
    },
    /// Containers of a stopped stack ran again before the backup began (a start by someone
    /// else, a new container): they are stopped again, and the verdict counts from then.
    CameBack {
        stack: String,
        containers: Vec<(ContainerRef, Option<DateTime<Utc>>)>,
    },
    /// A stack's stop failed. `began`: whether any stop call of it had begun (its containers
    /// may be shutting down); if not, the stack was not stopped at all.
    StopFailed {
        stack: String,
        error: String,
        began: bool,
    },
    /// The agent took the backup on (started or adopted) under this id.
    BackupStarted { id: String, adopted: bool },
    /// The agent answered a status poll. `ignored`: optional fields of the answer that did not
    /// parse. `held`: the answer came with a new phase, or was held (the agent has the
    /// long-poll extension): the next poll needs no pause.
    StatusSeen {
        observed: Observed,
        status: BackupStatus,
        ignored: Vec<IgnoredField>,
        held: bool,
    },
    /// What the engine said of a stopped stack when the snapshot was reported, before its
    /// start; `Err` when it could not be asked.
    Checked {
        stack: String,
        check: Result<DownCheck, String>,
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
    /// A stack whose stop never began leaves the marker without a start: nothing of ours
    /// stopped it.
    LeftAlone { stack: String },
    /// A stack could not be started again after every attempt.
    Stranded(StrandedStack),
    /// These stranded stacks are in the stranded list now: they leave the marker.
    StrandedKept(Vec<String>),
    /// The stranded list could not take these stranded stacks (a full disk): they stay in
    /// the marker, the one place that keeps them, which is recovered again later.
    StrandedNotKept(Vec<String>),
    /// A recovery asked the agent about the marker's backup: what it said.
    AgentSaid {
        phase: String,
        snapshot_at: Option<DateTime<Utc>>,
    },
    /// A hook is about to run in a container: the marker records it (and that the service
    /// was quiesced). `ack` hears whether that marker is on disk: a `pre-snapshot` hook runs
    /// only once it is.
    HookAbout {
        stack: String,
        service: String,
        hook: HookKind,
        container: ContainerRef,
        program: String,
        ack: Option<Ack>,
    },
    /// A hook ended, was killed at its timeout, or could not run: `run` says which.
    HookEnded {
        stack: String,
        service: String,
        container: ContainerRef,
        run: HookRecord,
    },
    /// A problem, for the log and the record.
    Note(Level, String),
}

/// Where the driver answers whether a marker is on disk.
pub(crate) type Ack = oneshot::Sender<bool>;

impl Progress {
    /// The answer this fact waits for, if any: the driver keeps it until the marker write
    /// the fact causes has landed.
    pub(crate) fn take_ack(&mut self) -> Option<Ack> {
        match self {
            Progress::Recording { ack, .. } | Progress::HookAbout { ack, .. } => ack.take(),
            _ => None,
        }
    }
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

    /// Records `containers` of `stack` in the marker as about to be stopped (and the stack's
    /// stop as begun), and waits until that marker is on disk. `false`: it could not be
    /// written (or nobody drives the cycle any more): the containers must not be stopped.
    pub(crate) async fn record(&self, stack: &str, containers: Vec<ContainerRef>) -> bool {
        let (ack, written) = oneshot::channel();
        self.send(Progress::Recording {
            stack: stack.to_owned(),
            containers,
            ack: Some(ack),
        });
        written.await.unwrap_or(false)
    }

    /// Tells the driver that `call` is about to run; a `pre-snapshot` hook waits until the
    /// marker that says so is on disk (`false`: it could not be written, the hook must not
    /// run), a `post-resume` hook does not wait (a crash before it is on disk runs it again,
    /// as one before it ended would).
    pub(crate) async fn hook_about(&self, call: &crate::hooks::HookCall) -> bool {
        let wait = call.hook == HookKind::PreSnapshot;
        let (ack, written) = oneshot::channel();
        self.send(Progress::HookAbout {
            stack: call.stack.clone(),
            service: call.service.clone(),
            hook: call.hook,
            container: call.container.clone(),
            program: call.command.program().to_owned(),
            ack: wait.then_some(ack),
        });
        !wait || written.await.unwrap_or(false)
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
