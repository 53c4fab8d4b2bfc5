//! The crash matrix (SPEC §2 rule 3): `kill -9` of the daemon at each step of a cycle, then a
//! fresh start; every stack that ran runs again, the marker is gone, the protected stack was
//! never touched, and the history has a `recovered` record.

use std::time::Duration;

use felhom_devagent::{DueMode, EventKind, Fault};
use felhom_e2e::{container, run_controller, Agent, Controller, Env, StackSpec};
use felhom_marker::{MarkerPhase, Outcome};

use crate::{assert_run_again, assert_untouched, states};

/// Where the kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Right after the marker is written (the first stop is under way or about to be).
    MarkerWritten,
    /// After the first of the two stacks stopped (parallelism 1: the second is stopping).
    FirstStop,
    /// Right after `POST /backup` answered.
    BackupPosted,
    /// While polling a backup that hangs.
    Waiting,
    /// After the agent took the snapshot, with the early resume off (the stacks stay down).
    Snapshotted,
    /// After the first stack ran again, while the second (slow to turn healthy) starts.
    Resuming,
}

/// How the controller is started again after the kill.
#[derive(Debug, Clone, Copy)]
enum Restart {
    /// The daemon, with the agent no longer due: recovery, then idle until SIGTERM.
    Run,
    /// `felhom-controller recover`.
    Recover,
}

#[test]
fn kill_after_the_marker_is_written() {
    crash_at("kmw", Step::MarkerWritten, Restart::Run);
}

#[test]
fn kill_after_the_first_stop() {
    crash_at("kfs", Step::FirstStop, Restart::Recover);
}

#[test]
fn kill_after_the_backup_is_posted() {
    crash_at("kbp", Step::BackupPosted, Restart::Recover);
}

#[test]
fn kill_while_waiting_for_the_backup() {
    crash_at("kwt", Step::Waiting, Restart::Run);
}

#[test]
fn kill_after_the_snapshot_with_the_early_resume_off() {
    crash_at("ksn", Step::Snapshotted, Restart::Run);
}

#[test]
fn kill_during_the_resume() {
    crash_at("krs", Step::Resuming, Restart::Run);
}

fn crash_at(tag: &str, step: Step, restart: Restart) {
    let context = format!("kill -9 at {step:?}, restart by {restart:?}");
    let mut env = Env::new(tag);
    let second = match step {
        Step::Resuming => StackSpec::app().healthy_after("3s"),
        _ => StackSpec::app(),
    };
    let apps = vec![env.deploy("a", &StackSpec::app()), env.deploy("b", &second)];
    let proxy = env.deploy_protected("proxy");
    for name in apps.iter().chain([&proxy]) {
        env.up(name);
    }
    let before = states(&apps);
    let proxy_before = container(&proxy);
    if step == Step::Resuming {
        // Healthy before the stop, so its start waits for its health again (3 s) while the
        // first stack is back at once: the kill lands between the two.
        felhom_e2e::wait_until("the second stack to be healthy", || {
            container(&apps[1]).health == "healthy"
        });
    }

    let agent = Agent::start(&env, |c| match step {
        // The kill must land before the snapshot is even taken.
        Step::BackupPosted => c.snapshot_delay = Duration::from_secs(10),
        Step::Waiting => c.faults = vec![Fault::Hang],
        // `done` must not come before the kill.
        Step::Snapshotted => c.archive_delay = Duration::from_secs(300),
        _ => {}
    });
    let config = env
        .config(&agent.access())
        .set("stacks.parallelism", 1)
        .set("quiesce.resume_on_snapshot", step != Step::Snapshotted)
        .write();

    let mut run = Controller::spawn(&config, &["run"]);
    match step {
        Step::MarkerWritten => {
            run.wait_log("cycle started: marker written");
        }
        Step::FirstStop => {
            run.wait_log("stack stopped");
        }
        Step::BackupPosted => {
            run.wait_log("backup started");
        }
        Step::Waiting => {
            run.wait_log("backup started");
            // Waiting for real: the agent holds a status poll of the hung backup (the
            // long-poll), or has answered a few.
            agent.wait_timeline("a held status poll", |events| {
                events
                    .iter()
                    .any(|e| matches!(&e.kind, EventKind::StatusHeld { .. }))
                    || events
                        .iter()
                        .filter(|e| {
                            matches!(&e.kind, EventKind::Request { path, .. } if path == "/backup/status")
                        })
                        .count()
                        >= 3
            });
        }
        Step::Snapshotted => {
            agent.wait_event("the snapshot", |k| {
                matches!(k, EventKind::SnapshotTaken { .. })
            });
            run.wait_log("the agent reports the snapshot taken");
        }
        Step::Resuming => {
            let back = run.wait_log("stack runs again");
            assert_eq!(back.field("stack").as_deref(), Some(apps[0].as_str()));
        }
    }
    run.kill_group();

    // The kill landed mid-cycle: the marker names what must come back.
    let marker = env
        .marker()
        .unwrap_or_else(|| panic!("{context}: no marker after the kill"));
    let expected_phases: &[MarkerPhase] = match step {
        Step::MarkerWritten => &[MarkerPhase::Quiescing],
        Step::FirstStop => &[MarkerPhase::Quiescing, MarkerPhase::BackingUp],
        Step::BackupPosted | Step::Waiting | Step::Snapshotted => &[MarkerPhase::BackingUp],
        Step::Resuming => &[MarkerPhase::Resuming],
    };
    assert!(
        expected_phases.contains(&marker.phase),
        "{context}: marker phase {:?}, expected one of {expected_phases:?}: {marker:#?}",
        marker.phase
    );
    let backup_known = !matches!(step, Step::MarkerWritten | Step::FirstStop);
    assert_eq!(
        marker.backup_id.is_some(),
        backup_known,
        "{context}: the marker's backup id: {marker:#?}"
    );
    let marked: Vec<&str> = marker.stacks.iter().map(|s| s.name.as_str()).collect();
    let expected_marked: Vec<&str> = match step {
        // The first stack runs again and left the marker; the second is still in it.
        Step::Resuming => vec![apps[1].as_str()],
        _ => apps.iter().map(String::as_str).collect(),
    };
    assert_eq!(marked, expected_marked, "{context}");
    assert_untouched(&proxy, &proxy_before, &context);

    // A fresh start.
    agent.set_due(DueMode::Never);
    let record = match restart {
        Restart::Recover => {
            let recover = run_controller(&config, &["recover"]);
            assert_eq!(recover.code, Some(0), "{context}: {recover}");
            let record = recover.record();
            assert_eq!(
                env.history().last().map(|r| &r.cycle_id),
                Some(&record.cycle_id),
                "{context}: the history has the recovery"
            );
            record
        }
        Restart::Run => {
            let mut run = Controller::spawn(&config, &["run"]);
            run.wait_log("cycle finished");
            run.terminate();
            let end = run.wait();
            assert_eq!(end.code, Some(0), "{context}: {end}");
            env.history()
                .pop()
                .unwrap_or_else(|| panic!("{context}: no history after the recovery"))
        }
    };
    assert_eq!(record.outcome, Outcome::Recovered, "{context}: {record:#?}");
    assert_eq!(record.cycle_id, marker.cycle_id, "{context}");
    assert!(record.stranded.is_empty(), "{context}: {record:#?}");
    // Recovery asked the agent how the marker's backup ended.
    match step {
        Step::Waiting => assert_eq!(record.agent_phase.as_deref(), Some("running"), "{context}"),
        Step::Snapshotted => {
            assert_eq!(
                record.agent_phase.as_deref(),
                Some("snapshotted"),
                "{context}"
            )
        }
        Step::BackupPosted | Step::Resuming => assert!(
            matches!(
                record.agent_phase.as_deref(),
                Some("running" | "snapshotted" | "done")
            ),
            "{context}: {record:#?}"
        ),
        _ => assert_eq!(record.agent_phase, None, "{context}: no backup was started"),
    }

    assert_run_again(&before, &context);
    assert!(env.marker().is_none(), "{context}: the marker is cleared");
    assert_untouched(&proxy, &proxy_before, &context);
    let backups = agent
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::BackupRequested { .. }))
        .count();
    assert!(backups <= 1, "{context}: the restart started no new backup");
}
