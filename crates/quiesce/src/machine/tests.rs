//! The table, walked: every (phase, event) pair where a rule is at stake.

use super::*;

const OUTCOMES: [Outcome; 5] = [
    Outcome::Done,
    Outcome::Failed,
    Outcome::Lost,
    Outcome::Bounded,
    Outcome::Cancelled,
];
const OBSERVED: [Observed; 5] = [
    Observed::Running,
    Observed::Snapshotted,
    Observed::Done,
    Observed::Failed,
    Observed::Lost,
];

/// Every phase: the down ones, each resume (early, or with an outcome, a recovery's
/// included), the outcome wait, and every end.
fn phases() -> Vec<Phase> {
    let mut all = vec![
        Phase::Quiescing,
        Phase::BackingUp,
        Phase::Resuming { outcome: None },
        Phase::AwaitingOutcome,
    ];
    for outcome in OUTCOMES.into_iter().chain([Outcome::Recovered]) {
        all.push(Phase::Resuming {
            outcome: Some(outcome),
        });
        all.push(Phase::Finished(outcome));
    }
    all
}

/// Every event the driver can report.
fn events() -> Vec<Event> {
    let mut all = vec![
        Event::Hooked,
        Event::BackupSkipped,
        Event::Stopped,
        Event::BackupStarted,
        Event::BackupRefused,
    ];
    all.extend(OBSERVED.map(Event::Status));
    all.extend([
        Event::StatusError,
        Event::Bound,
        Event::Cancelled,
        Event::Panicked,
        Event::Resumed,
    ]);
    all
}

/// The driver starts every cycle and every recovery from these, and nowhere else.
#[test]
fn cycles_begin_by_stopping_and_recoveries_by_resuming() {
    // The pre-snapshot hooks first, then the stops (docs/labels.md).
    assert_eq!(begin(), (Phase::Quiescing, Step::PreSnapshot));
    assert_eq!(
        step(Phase::Quiescing, Event::Hooked, true),
        (Phase::Quiescing, Step::Stop)
    );
    let (phase, next) = recovery();
    assert_eq!(next, Step::Resume);
    assert_eq!(
        step(phase, Event::Resumed, true),
        (Phase::Finished(Outcome::Recovered), Step::Finish)
    );
}

/// A recovery's way through the table is the resume, then the end: whatever happens
/// meanwhile, it never reaches a step that needs the agent (the driver asks the agent about
/// the marker's backup only once the stacks run).
#[test]
fn recoveries_only_resume_then_finish() {
    let (start, first) = recovery();
    assert_eq!(first, Step::Resume);
    for event in events() {
        let (next, then) = step(start, event, true);
        assert!(
            matches!(then, Step::Resume | Step::Finish),
            "{start:?} --{event:?}--> {then:?}"
        );
        if then == Step::Finish {
            assert_eq!(next, Phase::Finished(Outcome::Recovered));
            assert_eq!(event, Event::Resumed);
        }
    }
}

/// The two status waits are told apart: while the stacks are down (bounded, may resume)
/// and after an early resume (stacks running, only the outcome is awaited).
#[test]
fn the_status_wait_while_down_is_not_the_outcome_wait() {
    for phase in phases() {
        for event in events() {
            match step(phase, event, true) {
                (next, Step::AwaitBackup) => assert!(next.stacks_may_be_down(), "{phase:?}"),
                (next, Step::AwaitOutcome) => assert_eq!(next, Phase::AwaitingOutcome),
                _ => {}
            }
        }
    }
}

#[test]
fn the_marker_records_every_phase_in_which_stacks_are_not_yet_back() {
    for phase in phases() {
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
        for phase in phases().into_iter().filter(|p| p.stacks_may_be_down()) {
            for event in events() {
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
        Event::Hooked,
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
            Step::Stop,
            Step::StartBackup,
            Step::AwaitBackup,
            Step::AwaitBackup,
            Step::Resume,
            Step::Finish
        ]
    );
}

/// docs/labels.md: a `pre-snapshot` hook that fails with `skip-backup` gives the cycle up
/// before any stop: resumed (what was quiesced), recorded `failed`, no backup posted.
#[test]
fn a_skipped_backup_resumes_and_fails_before_anything_is_stopped() {
    assert_eq!(
        step(Phase::Quiescing, Event::BackupSkipped, true),
        (
            Phase::Resuming {
                outcome: Some(Outcome::Failed)
            },
            Step::Resume
        )
    );
    // Only the hooks' step reports it: later it is a bug, resumed as any.
    assert_eq!(
        step(Phase::BackingUp, Event::BackupSkipped, true).1,
        Step::Resume
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
        (Phase::BackingUp, Step::AwaitBackup)
    );
    // After the early resume the outcome is still awaited and recorded.
    assert_eq!(
        step(Phase::Resuming { outcome: None }, Event::Resumed, true),
        (Phase::AwaitingOutcome, Step::AwaitOutcome)
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
            (Phase::BackingUp, Step::AwaitBackup)
        );
    }
}

#[test]
fn resume_is_never_interrupted() {
    for event in events().into_iter().filter(|e| *e != Event::Resumed) {
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
