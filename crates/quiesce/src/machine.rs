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

/// Where a new cycle begins: the marker is written, the stacks are to be stopped.
pub fn begin() -> (Phase, Step) {
    (Phase::Quiescing, Step::Stop)
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
    /// Stop the stacks named in the marker.
    Stop,
    /// `POST /backup`.
    StartBackup,
    /// Wait a poll interval, then `GET /backup/status`.
    Poll,
    /// Start the stopped stacks again.
    Resume,
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
        (P::Quiescing, E::Stopped) => (P::BackingUp, Step::StartBackup),

        (P::BackingUp, E::BackupStarted) => (P::BackingUp, Step::Poll),
        (P::BackingUp, E::BackupRefused) => resume(Outcome::Failed),
        (P::BackingUp, E::Status(O::Running)) => (P::BackingUp, Step::Poll),
        (P::BackingUp, E::Status(O::Snapshotted)) if early_resume => {
            (P::Resuming { outcome: None }, Step::Resume)
        }
        (P::BackingUp, E::Status(O::Snapshotted)) => (P::BackingUp, Step::Poll),
        (P::BackingUp, E::Status(O::Done)) => resume(Outcome::Done),
        (P::BackingUp, E::Status(O::Failed)) => resume(Outcome::Failed),
        (P::BackingUp, E::Status(O::Lost)) => resume(Outcome::Lost),
        (P::BackingUp, E::StatusError) => (P::BackingUp, Step::Poll),

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
        (P::Resuming { outcome: None }, E::Resumed) => (P::AwaitingOutcome, Step::Poll),
        (P::Resuming { .. }, _) => (phase, Step::Resume),

        (P::AwaitingOutcome, E::Status(O::Done)) => (P::Finished(Outcome::Done), Step::Finish),
        (P::AwaitingOutcome, E::Status(O::Failed)) => (P::Finished(Outcome::Failed), Step::Finish),
        (P::AwaitingOutcome, E::Status(O::Lost)) => (P::Finished(Outcome::Lost), Step::Finish),
        (P::AwaitingOutcome, E::Status(O::Running | O::Snapshotted) | E::StatusError) => {
            (P::AwaitingOutcome, Step::Poll)
        }
        (P::AwaitingOutcome, E::Bound) => (P::Finished(Outcome::Bounded), Step::Finish),
        (P::AwaitingOutcome, E::Cancelled) => (P::Finished(Outcome::Cancelled), Step::Finish),
        (P::AwaitingOutcome, _) => (P::Finished(Outcome::Failed), Step::Finish),

        (P::Finished(_), _) => (phase, Step::Finish),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHASES: [Phase; 12] = [
        Phase::Quiescing,
        Phase::BackingUp,
        Phase::Resuming { outcome: None },
        Phase::Resuming {
            outcome: Some(Outcome::Done),
        },
        Phase::Resuming {
            outcome: Some(Outcome::Failed),
        },
        Phase::Resuming {
            outcome: Some(Outcome::Bounded),
        },
        Phase::AwaitingOutcome,
        Phase::Finished(Outcome::Done),
        Phase::Finished(Outcome::Failed),
        Phase::Finished(Outcome::Lost),
        Phase::Finished(Outcome::Bounded),
        Phase::Finished(Outcome::Cancelled),
    ];
    const EVENTS: [Event; 13] = [
        Event::Stopped,
        Event::BackupStarted,
        Event::BackupRefused,
        Event::Status(Observed::Running),
        Event::Status(Observed::Snapshotted),
        Event::Status(Observed::Done),
        Event::Status(Observed::Failed),
        Event::Status(Observed::Lost),
        Event::StatusError,
        Event::Bound,
        Event::Cancelled,
        Event::Panicked,
        Event::Resumed,
    ];

    /// The driver starts every cycle and every recovery from these, and nowhere else.
    #[test]
    fn cycles_begin_by_stopping_and_recoveries_by_resuming() {
        assert_eq!(begin(), (Phase::Quiescing, Step::Stop));
        let (phase, next) = recovery();
        assert_eq!(next, Step::Resume);
        assert_eq!(
            step(phase, Event::Resumed, true),
            (Phase::Finished(Outcome::Recovered), Step::Finish)
        );
    }

    #[test]
    fn the_marker_records_every_phase_in_which_stacks_are_not_yet_back() {
        for phase in PHASES {
            let down_or_resuming =
                phase.stacks_may_be_down() || matches!(phase, Phase::Resuming { .. });
            assert_eq!(
                phase.marker_phase().is_some(),
                down_or_resuming,
                "{phase:?}"
            );
        }
    }

    /// SPEC §2 rule 2, as a property of the table: from a phase where stacks may be down, no
    /// event reaches `Finished` or `AwaitingOutcome` without passing through `Resuming`.
    #[test]
    fn no_edge_skips_the_resume() {
        for early in [false, true] {
            for phase in PHASES.iter().copied().filter(|p| p.stacks_may_be_down()) {
                for event in EVENTS {
                    let (next, step) = step(phase, event, early);
                    assert!(
                        next.stacks_may_be_down() || matches!(next, Phase::Resuming { .. }),
                        "{phase:?} --{event:?}--> {next:?} skips the resume"
                    );
                    if matches!(next, Phase::Resuming { .. }) {
                        assert_eq!(step, Step::Resume, "{phase:?} --{event:?}");
                    }
                }
            }
        }
    }

    /// The bound, cancellation and a panic each end a down phase in a resume with their outcome.
    #[test]
    fn outside_endings_resume_with_their_outcome() {
        for phase in [Phase::Quiescing, Phase::BackingUp] {
            for (event, outcome) in [
                (Event::Bound, Outcome::Bounded),
                (Event::Cancelled, Outcome::Cancelled),
                (Event::Panicked, Outcome::Failed),
            ] {
                assert_eq!(
                    step(phase, event, true),
                    (
                        Phase::Resuming {
                            outcome: Some(outcome)
                        },
                        Step::Resume
                    )
                );
            }
        }
    }

    #[test]
    fn happy_path_walk() {
        let mut phase = Phase::Quiescing;
        let mut steps = vec![];
        for event in [
            Event::Stopped,
            Event::BackupStarted,
            Event::Status(Observed::Running),
            Event::Status(Observed::Done),
            Event::Resumed,
        ] {
            let (next, s) = step(phase, event, true);
            phase = next;
            steps.push(s);
        }
        assert_eq!(phase, Phase::Finished(Outcome::Done));
        assert_eq!(
            steps,
            [
                Step::StartBackup,
                Step::Poll,
                Step::Poll,
                Step::Resume,
                Step::Finish
            ]
        );
    }

    #[test]
    fn snapshot_resumes_early_only_when_configured() {
        let snap = Event::Status(Observed::Snapshotted);
        assert_eq!(
            step(Phase::BackingUp, snap, true),
            (Phase::Resuming { outcome: None }, Step::Resume)
        );
        assert_eq!(
            step(Phase::BackingUp, snap, false),
            (Phase::BackingUp, Step::Poll)
        );
        // After the early resume the outcome is still awaited and recorded.
        assert_eq!(
            step(Phase::Resuming { outcome: None }, Event::Resumed, true),
            (Phase::AwaitingOutcome, Step::Poll)
        );
        for (obs, outcome) in [
            (Observed::Done, Outcome::Done),
            (Observed::Failed, Outcome::Failed),
            (Observed::Lost, Outcome::Lost),
        ] {
            assert_eq!(
                step(Phase::AwaitingOutcome, Event::Status(obs), true),
                (Phase::Finished(outcome), Step::Finish)
            );
        }
    }

    #[test]
    fn agent_answers_map_to_outcomes() {
        for (event, outcome) in [
            (Event::BackupRefused, Outcome::Failed),
            (Event::Status(Observed::Failed), Outcome::Failed),
            (Event::Status(Observed::Lost), Outcome::Lost),
            (Event::Status(Observed::Done), Outcome::Done),
        ] {
            assert_eq!(
                step(Phase::BackingUp, event, true),
                (
                    Phase::Resuming {
                        outcome: Some(outcome)
                    },
                    Step::Resume
                )
            );
        }
        // Errors and unknown/running phases keep waiting (until the bound).
        for event in [Event::StatusError, Event::Status(Observed::Running)] {
            assert_eq!(
                step(Phase::BackingUp, event, true),
                (Phase::BackingUp, Step::Poll)
            );
        }
    }

    #[test]
    fn resume_is_never_interrupted() {
        for event in EVENTS.iter().copied().filter(|e| *e != Event::Resumed) {
            let phase = Phase::Resuming {
                outcome: Some(Outcome::Done),
            };
            assert_eq!(step(phase, event, true), (phase, Step::Resume));
        }
    }

    #[test]
    fn awaiting_outcome_ends_on_bound_and_cancel() {
        assert_eq!(
            step(Phase::AwaitingOutcome, Event::Bound, true),
            (Phase::Finished(Outcome::Bounded), Step::Finish)
        );
        assert_eq!(
            step(Phase::AwaitingOutcome, Event::Cancelled, true),
            (Phase::Finished(Outcome::Cancelled), Step::Finish)
        );
    }
}
