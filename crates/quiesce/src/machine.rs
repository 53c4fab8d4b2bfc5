//! The cycle's transitions, as a pure function of (phase, event).
//!
//! The driver ([`crate::Controller`]) does the I/O and reports what happened as an [`Event`];
//! [`step`] says where the cycle goes next and what the driver must do. Keeping this a plain
//! `match` means every safety rule about *where* the cycle may go is visible in one place, and a
//! test can walk every pair without a runtime, a clock or a mock.
//!
//! The one invariant: from every phase in which stacks may be down (`Quiescing`, `BackingUp`),
//! every event leads either deeper into the backup or to `Resuming`. There is no edge from a
//! down phase to `Finished` that skips the resume, and an event that makes no sense in a phase
//! resumes (the safe default) rather than being ignored.

use felhom_marker::{MarkerPhase, Outcome};

/// Where a cycle is. Serialised snake_case for the status endpoint: `"quiescing"`,
/// `{"resuming":{"outcome":"done"}}`, `{"finished":"bounded"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The marker is written; the stacks are being stopped.
    Quiescing,
    /// The stacks are down; the backup is being started or waited for.
    BackingUp,
    /// The stacks are being started again. `outcome` is `None` after an early resume (the
    /// backup's outcome is still to come).
    Resuming {
        /// How the cycle ended, when already known.
        outcome: Option<Outcome>,
    },
    /// The stacks run again after an early resume; the backup's outcome is awaited.
    AwaitingOutcome,
    /// The cycle is over.
    Finished(Outcome),
}

impl Phase {
    /// Whether stacks may be down in this phase (so the bound and cancellation apply).
    pub fn stacks_may_be_down(self) -> bool {
        matches!(self, Phase::Quiescing | Phase::BackingUp)
    }

    /// The phase the marker on disk records for this phase; `None` once the stacks run again
    /// (the marker is cleared then).
    pub fn marker_phase(self) -> Option<MarkerPhase> {
        match self {
            Phase::Quiescing => Some(MarkerPhase::Quiescing),
            Phase::BackingUp => Some(MarkerPhase::BackingUp),
            Phase::Resuming { .. } => Some(MarkerPhase::Resuming),
            Phase::AwaitingOutcome | Phase::Finished(_) => None,
        }
    }
}

/// Where a new cycle begins: the marker is written; the `pre-snapshot` hooks run, then the
/// stacks are stopped.
pub fn begin() -> (Phase, Step) {
    (Phase::Quiescing, Step::PreSnapshot)
}

/// Where a crash recovery begins: the stacks of a marker left by a dead controller are to be
/// started again; the recovery then ends like any cycle, through [`Event::Resumed`].
pub fn recovery() -> (Phase, Step) {
    (
        Phase::Resuming {
            outcome: Some(Outcome::Recovered),
        },
        Step::Resume,
    )
}

/// What the agent said about our backup, reduced to what the cycle acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Still in progress (also: a phase this build does not know).
    Running,
    /// The guest's data is captured.
    Snapshotted,
    /// Finished successfully.
    Done,
    /// Finished with an error.
    Failed,
    /// The agent knows no backup of ours (`idle`, or another id).
    Lost,
}

/// Something that happened to the cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Every `pre-snapshot` hook of the cycle ran (or failed without giving the cycle up).
    Hooked,
    /// A `pre-snapshot` hook failed with `felhom.on-hook-error: skip-backup`: no backup is
    /// posted, the cycle fails.
    BackupSkipped,
    /// Every stack named in the marker had its stop attempted.
    Stopped,
    /// `POST /backup` answered with an id (started or adopted).
    BackupStarted,
    /// `POST /backup` failed: `503`, or an error.
    BackupRefused,
    /// `GET /backup/status` answered.
    Status(Observed),
    /// `GET /backup/status` failed; it will be retried until the bound.
    StatusError,
    /// The `max_quiesce` bound passed.
    Bound,
    /// The controller was told to stop.
    Cancelled,
    /// The cycle's task panicked.
    Panicked,
    /// Every stack of the marker was started again, or reported stranded.
    Resumed,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run every `pre-snapshot` hook (before anything is stopped).
    PreSnapshot,
    /// Stop the stacks named in the marker.
    Stop,
    /// `POST /backup`.
    StartBackup,
    /// While the stacks are down: wait a poll interval, then `GET /backup/status` (bounded
    /// by `max_quiesce`, like every step of the down half).
    AwaitBackup,
    /// Start the stopped stacks again.
    Resume,
    /// After an early resume, with the stacks running: wait a poll interval, then
    /// `GET /backup/status`, for the record's outcome only.
    AwaitOutcome,
    /// Clear the marker if not yet done, record the cycle, stop.
    Finish,
}

/// The transition function. `early_resume` is `quiesce.resume_on_snapshot`.
pub fn step(phase: Phase, event: Event, early_resume: bool) -> (Phase, Step) {
    use Event as E;
    use Observed as O;
    use Phase as P;
    let resume = |outcome| {
        (
            P::Resuming {
                outcome: Some(outcome),
            },
            Step::Resume,
        )
    };
    match (phase, event) {
        (P::Quiescing, E::Hooked) => (P::Quiescing, Step::Stop),
        // docs/labels.md: nothing stopped (or what was is resumed), no backup, a failure.
        (P::Quiescing, E::BackupSkipped) => resume(Outcome::Failed),
        (P::Quiescing, E::Stopped) => (P::BackingUp, Step::StartBackup),

        (P::BackingUp, E::BackupStarted) => (P::BackingUp, Step::AwaitBackup),
        (P::BackingUp, E::BackupRefused) => resume(Outcome::Failed),
        (P::BackingUp, E::Status(O::Running)) => (P::BackingUp, Step::AwaitBackup),
        (P::BackingUp, E::Status(O::Snapshotted)) if early_resume => {
            (P::Resuming { outcome: None }, Step::Resume)
        }
        (P::BackingUp, E::Status(O::Snapshotted)) => (P::BackingUp, Step::AwaitBackup),
        (P::BackingUp, E::Status(O::Done)) => resume(Outcome::Done),
        (P::BackingUp, E::Status(O::Failed)) => resume(Outcome::Failed),
        (P::BackingUp, E::Status(O::Lost)) => resume(Outcome::Lost),
        (P::BackingUp, E::StatusError) => (P::BackingUp, Step::AwaitBackup),

        // Whatever ends the wait from outside, the stacks come back (SPEC §2 rule 2).
        (P::Quiescing | P::BackingUp, E::Bound) => resume(Outcome::Bounded),
        (P::Quiescing | P::BackingUp, E::Cancelled) => resume(Outcome::Cancelled),
        (P::Quiescing | P::BackingUp, E::Panicked) => resume(Outcome::Failed),
        // Anything else while stacks may be down is a bug; resuming is the safe answer.
        (P::Quiescing | P::BackingUp, _) => resume(Outcome::Failed),

        // The resume itself is never interrupted; only its end moves the cycle on.
        (
            P::Resuming {
                outcome: Some(outcome),
            },
            E::Resumed,
        ) => (P::Finished(outcome), Step::Finish),
        (P::Resuming { outcome: None }, E::Resumed) => (P::AwaitingOutcome, Step::AwaitOutcome),
        (P::Resuming { .. }, _) => (phase, Step::Resume),

        (P::AwaitingOutcome, E::Status(O::Done)) => (P::Finished(Outcome::Done), Step::Finish),
        (P::AwaitingOutcome, E::Status(O::Failed)) => (P::Finished(Outcome::Failed), Step::Finish),
        (P::AwaitingOutcome, E::Status(O::Lost)) => (P::Finished(Outcome::Lost), Step::Finish),
        (P::AwaitingOutcome, E::Status(O::Running | O::Snapshotted) | E::StatusError) => {
            (P::AwaitingOutcome, Step::AwaitOutcome)
        }
        (P::AwaitingOutcome, E::Bound) => (P::Finished(Outcome::Bounded), Step::Finish),
        (P::AwaitingOutcome, E::Cancelled) => (P::Finished(Outcome::Cancelled), Step::Finish),
        (P::AwaitingOutcome, _) => (P::Finished(Outcome::Failed), Step::Finish),

        (P::Finished(_), _) => (phase, Step::Finish),
    }
}

#[cfg(test)]
mod tests;
