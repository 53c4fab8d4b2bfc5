//! `Cycle::apply`, fact by fact: what the record and the marker on disk become.

use super::*;
use crate::machine::Observed;
use crate::progress::Said;
use crate::resume::{StackPlan, Wanted};
use chrono::{DateTime, Utc};
use felhom_agentapi::BackupStatus;
use felhom_marker::{Capture, Fact, MarkerPhase};
use felhom_stacks::{DownCheck, StopReport, StoppedContainer};

fn app(stack: &str) -> ContainerRef {
    ContainerRef {
        id: format!("{stack}-app-id"),
        name: format!("{stack}-app-1"),
        service: "app".into(),
    }
}

fn marked_stacks(names: &[&str]) -> Vec<MarkedStack> {
    names
        .iter()
        .map(|name| MarkedStack::new(*name, vec!["app".into()], vec![marked(&app(name))]))
        .collect()
}

/// The engine's report of a stop of `containers`, each killed or not.
fn report(containers: &[(ContainerRef, bool)], at: DateTime<Utc>) -> StopReport {
    StopReport {
        containers: containers
            .iter()
            .map(|(c, killed)| StoppedContainer {
                container: c.clone(),
                was_running: true,
                stop_requested_at: at,
                exited_at: Some(at),
                exit_code: Some(if *killed { 137 } else { 0 }),
                killed: *killed,
            })
            .collect(),
        vanished: vec![],
    }
}

/// `stack`'s containers recorded, its stop begun and answered (`killed` or not) at `at`.
fn stop_at(c: &mut Cycle, stack: &str, killed: bool, at: DateTime<Utc>) {
    c.apply(Progress::Recording {
        stack: stack.into(),
        containers: vec![app(stack)],
        ack: None,
    });
    c.apply(Progress::StopBegan {
        stack: stack.into(),
        at,
    });
    c.apply(Progress::Stopped {
        stack: stack.into(),
        report: report(&[(app(stack), killed)], at),
        at,
    });
}

/// What the plan starts of `stack`.
fn start_of(plans: &[StackPlan], stack: &str) -> Option<Wanted> {
    plans
        .iter()
        .find(|p| p.stack.name == stack)
        .expect("planned")
        .start
        .clone()
}

fn stop(c: &mut Cycle, stack: &str, killed: bool) {
    stop_at(c, stack, killed, Utc::now());
}

fn cycle() -> Cycle {
    Cycle::new(Marker::new("c-1", Utc::now(), marked_stacks(&["a", "b"])))
}

/// A cycle resuming, its stack `a` back, `b` not yet.
fn resuming_with_a_back() -> Cycle {
    let mut c = cycle();
    c.apply(Progress::Entered(Phase::Resuming {
        outcome: Some(Outcome::Done),
    }));
    c.apply(Progress::StackBack {
        stack: "a".into(),
        attempt: 1,
        at: Utc::now(),
    });
    c
}

/// The stacks of the marker `applied` puts on disk, or `None` when it removes it, or
/// `Some("kept")` when it leaves it as it is.
fn on_disk(applied: &Applied) -> Option<String> {
    match &applied.on_disk {
        OnDisk::Keep => Some("kept".into()),
        OnDisk::Save(m) => Some(
            m.stacks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        OnDisk::Remove => None,
    }
}

#[test]
fn notes_are_capped() {
    let mut c = cycle();
    for i in 0..(MAX_ERRORS + 10) {
        c.apply(Progress::Note(Level::Warn, format!("problem {i}")));
    }
    assert_eq!(c.record.errors.len(), MAX_ERRORS);
    assert_eq!(c.record.errors[0], "problem 0");
}

#[test]
fn each_stack_is_planned_by_how_far_its_stop_got_the_one_down_longest_first() {
    let mut c = Cycle::new(Marker::new(
        "c-1",
        Utc::now(),
        marked_stacks(&["a", "b", "c", "d"]),
    ));
    // c: stopped first; b: its stop began next, no answer (cut short); a: stopped last; d:
    // never stopped.
    let t0 = Utc::now();
    stop_at(&mut c, "c", false, t0);
    c.apply(Progress::Recording {
        stack: "b".into(),
        containers: vec![app("b")],
        ack: None,
    });
    c.apply(Progress::StopBegan {
        stack: "b".into(),
        at: t0 + chrono::Duration::seconds(1),
    });
    stop_at(&mut c, "a", false, t0 + chrono::Duration::seconds(2));
    let plans = c.plan();
    let order: Vec<&str> = plans.iter().map(|p| p.stack.name.as_str()).collect();
    assert_eq!(
        order,
        ["c", "b", "a", "d"],
        "down longest first, never stopped last"
    );
    let start = |name: &str| start_of(&plans, name);
    assert_eq!(
        start("a"),
        Some(Wanted::Containers {
            containers: vec![app("a")],
            in_flight: false
        })
    );
    assert_eq!(
        start("b"),
        Some(Wanted::Containers {
            containers: vec![app("b")],
            in_flight: true
        }),
        "its stop may be in flight"
    );
    assert_eq!(start("d"), None, "never stopped: left alone");
    assert!(plans.iter().all(|p| p.check.is_none()), "no snapshot yet");
}

#[test]
fn a_recovery_starts_what_began_to_stop_and_an_old_marker_by_services() {
    let mut stacks = marked_stacks(&["began", "never"]);
    stacks[0].stop_began = true;
    stacks.push(MarkedStack::new("old", vec!["web".into()], vec![]));
    let recovery = Cycle::recovering(Marker::new("c-1", Utc::now(), stacks));
    let plans = recovery.plan();
    let start = |name: &str| start_of(&plans, name);
    assert_eq!(
        start("began"),
        Some(Wanted::Containers {
            containers: vec![app("began")],
            in_flight: true
        })
    );
    assert_eq!(start("never"), None);
    assert_eq!(start("old"), Some(Wanted::Services(vec!["web".into()])));
}

#[test]
fn a_recording_is_on_disk_with_the_stop_begun_and_only_running_containers_stay() {
    let mut c = cycle();
    let db = ContainerRef {
        id: "a-db-id".into(),
        name: "a-db-1".into(),
        service: "db".into(),
    };
    let applied = c.apply(Progress::Recording {
        stack: "a".into(),
        containers: vec![app("a"), db.clone()],
        ack: None,
    });
    let OnDisk::Save(m) = &applied.on_disk else {
        panic!("{applied:?}");
    };
    assert!(m.stacks[0].stop_began);
    assert_eq!(m.stacks[0].containers.len(), 2);
    assert_eq!(m.stacks[0].services, ["app", "db"]);
    assert!(!m.stacks[1].stop_began);
    // The same again: nothing new to write.
    let again = c.apply(Progress::Recording {
        stack: "a".into(),
        containers: vec![db.clone()],
        ack: None,
    });
    assert_eq!(on_disk(&again).as_deref(), Some("kept"));
    // db had exited before its stop came: not ours to start again.
    let mut stopped = report(&[(app("a"), false), (db, false)], Utc::now());
    stopped.containers[1].was_running = false;
    let applied = c.apply(Progress::Stopped {
        stack: "a".into(),
        report: stopped,
        at: Utc::now(),
    });
    let OnDisk::Save(m) = &applied.on_disk else {
        panic!("{applied:?}");
    };
    assert_eq!(m.stacks[0].containers, [marked(&app("a"))]);
}

#[test]
fn the_verdicts_are_judged_from_the_evidence_once_the_cycle_is_over() {
    let mut c = Cycle::new(Marker::new(
        "c-1",
        Utc::now(),
        marked_stacks(&["a", "b", "c"]),
    ));
    stop(&mut c, "a", false);
    stop(&mut c, "b", true);
    stop(&mut c, "c", false);
    c.apply(Progress::StatusSeen {
        observed: Observed::Snapshotted,
        status: BackupStatus {
            id: Some("b-1".into()),
            phase: BackupPhase::Snapshotted,
            started_at: None,
            snapshot_at: None,
            finished_at: None,
            error: None,
        },
        ignored: vec![],
        held: true,
    });
    let plans = c.plan();
    assert!(
        plans.iter().all(|p| p.check.is_some()),
        "checked at the snapshot"
    );
    c.apply(Progress::Checked {
        stack: "a".into(),
        check: Ok(DownCheck::default()),
    });
    c.apply(Progress::Checked {
        stack: "b".into(),
        check: Ok(DownCheck::default()),
    });
    c.apply(Progress::Checked {
        stack: "c".into(),
        check: Ok(DownCheck {
            ran: vec![(app("c"), Utc::now())],
            appeared: vec![],
        }),
    });
    c.judge();
    let verdicts: Vec<Capture> = c.record.stacks.iter().map(|s| s.capture).collect();
    assert_eq!(verdicts, [Capture::Clean, Capture::Killed, Capture::Live]);
    assert_eq!(c.record.stacks[1].facts[0].fact, Fact::Killed);
    assert_eq!(c.record.stacks[2].facts[0].fact, Fact::Ran);
    assert!(c.record.stacks[0].facts.is_empty());
}

#[test]
fn a_new_cycle_writes_its_marker_first_and_each_phase_in_which_stacks_are_not_back() {
    let mut c = cycle();
    assert_eq!(on_disk(&c.apply(Progress::Began)).as_deref(), Some("a,b"));
    // Already in the marker's phase: nothing to write.
    assert_eq!(
        on_disk(&c.apply(Progress::Entered(Phase::Quiescing))).as_deref(),
        Some("kept")
    );
    let applied = c.apply(Progress::Entered(Phase::BackingUp));
    assert!(matches!(&applied.on_disk, OnDisk::Save(m) if m.phase == MarkerPhase::BackingUp));
}

#[test]
fn the_backup_id_is_said_once_the_marker_holds_it() {
    let mut c = cycle();
    let applied = c.apply(Progress::BackupStarted {
        id: "b-1".into(),
        adopted: false,
    });
    assert!(matches!(&applied.on_disk, OnDisk::Save(m) if m.backup_id.as_deref() == Some("b-1")));
    assert_eq!(
        applied.say,
        Some(Said::BackupStarted {
            id: "b-1".into(),
            adopted: false
        })
    );
    assert_eq!(c.record.backup_id.as_deref(), Some("b-1"));
}

#[test]
fn a_failed_start_is_counted_in_the_marker_and_a_stack_back_leaves_it() {
    let mut c = cycle();
    let failed = c.apply(Progress::StartFailed {
        stack: "a".into(),
        attempt: 1,
        attempts: 3,
        error: "exited".into(),
    });
    assert!(matches!(&failed.on_disk, OnDisk::Save(m) if m.stacks[0].restart_attempts == 1));
    assert_eq!(c.record.errors, ["starting a (attempt 1/3): exited"]);
    let back = c.apply(Progress::StackBack {
        stack: "a".into(),
        attempt: 2,
        at: Utc::now(),
    });
    assert_eq!(on_disk(&back).as_deref(), Some("b"));
    assert_eq!(
        back.say,
        Some(Said::StackBack {
            stack: "a".into(),
            attempt: 2
        })
    );
    assert!(c.record.stacks[0].started_at.is_some());
}

#[test]
fn a_stranded_stack_leaves_the_marker_only_once_the_stranded_list_holds_it() {
    let mut c = resuming_with_a_back();
    let stranded = StrandedStack {
        name: "b".into(),
        services: vec!["app".into()],
        cycle_id: "c-1".into(),
        since: Utc::now(),
        attempts: 3,
        last_error: "exited".into(),
        given_up: None,
        containers: vec![],
    };
    let applied = c.apply(Progress::Stranded(stranded));
    assert_eq!(
        on_disk(&applied).as_deref(),
        Some("kept"),
        "still in the marker"
    );
    assert_eq!(c.record.stranded, ["b"]);
    assert_eq!(c.newly_stranded.len(), 1);
    // Every stack runs or is stranded: the marker is removed, and never written again.
    assert_eq!(
        on_disk(&c.apply(Progress::StrandedKept(vec!["b".into()]))),
        None
    );
    let end = c.apply(Progress::Entered(Phase::Finished(Outcome::Done)));
    assert_eq!(on_disk(&end).as_deref(), Some("kept"));
    let late = c.apply(Progress::BackupStarted {
        id: "b-9".into(),
        adopted: false,
    });
    assert_eq!(on_disk(&late).as_deref(), Some("kept"));
}

#[test]
fn stacks_that_wait_for_the_engine_keep_the_marker_after_the_resume() {
    let mut c = resuming_with_a_back();
    let end = c.apply(Progress::Entered(Phase::Finished(Outcome::Done)));
    assert_eq!(on_disk(&end).as_deref(), Some("kept"), "b still waits");
    assert_eq!(
        c.record.errors,
        ["the docker engine could not be reached: the marker is kept for b"]
    );
    assert_eq!(c.record.waiting_for_engine, ["b"]);
    assert_eq!(c.marked().len(), 1);
}

#[test]
fn what_the_agent_says_goes_into_the_record() {
    let mut c = cycle();
    let status = |phase, error: Option<&str>| BackupStatus {
        id: Some("b-1".into()),
        phase,
        started_at: None,
        snapshot_at: None,
        finished_at: None,
        error: error.map(str::to_owned),
    };
    c.apply(Progress::StatusSeen {
        observed: Observed::Snapshotted,
        status: status(BackupPhase::Snapshotted, None),
        ignored: vec![],
        held: true,
    });
    assert_eq!(c.poll().last_phase, BackupPhase::Snapshotted);
    assert!(c.record.snapshot_at.is_some());
    c.apply(Progress::StatusSeen {
        observed: Observed::Failed,
        status: status(BackupPhase::Failed, Some("disk full")),
        ignored: vec![],
        held: false,
    });
    assert!(!c.poll().held);
    assert_eq!(
        c.record.errors,
        ["the agent reports the backup failed: disk full"]
    );
    c.apply(Progress::AgentSaid {
        phase: "done".into(),
        snapshot_at: None,
    });
    assert_eq!(c.record.agent_phase.as_deref(), Some("done"));
    assert!(c.record.snapshot_at.is_some(), "kept");
}
