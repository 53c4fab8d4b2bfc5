//! `Cycle::apply`, fact by fact: what the record and the marker on disk become.

use super::*;
use felhom_marker::MarkerPhase;

fn marked(names: &[&str]) -> Vec<MarkedStack> {
    names
        .iter()
        .map(|name| MarkedStack {
            name: (*name).into(),
            services: vec!["app".into()],
            restart_attempts: 0,
        })
        .collect()
}

fn cycle() -> Cycle {
    Cycle::new(Marker::new("c-1", Utc::now(), marked(&["a", "b"])))
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
fn a_recovery_settles_every_stack_a_cycle_only_the_unfinished_stops() {
    let recovery = Cycle::recovering(Marker::new("c-1", Utc::now(), marked(&["a", "b"])));
    assert_eq!(recovery.to_settle().len(), 2);
    let mut c = cycle();
    assert!(c.to_settle().is_empty());
    let now = Utc::now();
    for stack in ["a", "b"] {
        c.apply(Progress::StopBegan {
            stack: stack.into(),
            at: now,
        });
    }
    c.apply(Progress::Stopped {
        stack: "a".into(),
        services: vec!["app".into()],
        at: now,
    });
    assert_eq!(c.to_settle().into_iter().collect::<Vec<_>>(), ["b"]);
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
fn the_services_that_really_ran_replace_the_listed_ones() {
    let mut c = cycle();
    let same = c.apply(Progress::Stopped {
        stack: "a".into(),
        services: vec!["app".into()],
        at: Utc::now(),
    });
    assert_eq!(on_disk(&same).as_deref(), Some("kept"), "nothing new");
    let more = c.apply(Progress::Stopped {
        stack: "b".into(),
        services: vec!["app".into(), "worker".into()],
        at: Utc::now(),
    });
    assert!(
        matches!(&more.on_disk, OnDisk::Save(m) if m.stacks[1].services == ["app", "worker"]),
        "{more:?}"
    );
    assert!(c.record.stacks.iter().all(|s| s.stopped_at.is_some()));
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
    });
    assert!(c.record.snapshot_at.is_some());
    c.apply(Progress::StatusSeen {
        observed: Observed::Failed,
        status: status(BackupPhase::Failed, Some("disk full")),
    });
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
