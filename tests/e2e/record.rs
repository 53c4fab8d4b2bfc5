//! The record tells the truth (SPEC §2 rule 10, issue 18), through the real binary on real
//! containers: each stack's capture verdict from the engine's evidence, "back" meaning back
//! (a death within `stacks.settle` is a failed start), no second stop sent into a shutdown in
//! flight, a recovery that starts exactly what its stop stopped, and the verdicts reaching
//! people (the exit status, the ping, the notices).

use std::time::Duration;

use felhom_devagent::{EventKind, Fault};
use felhom_e2e::{container, run_controller, Agent, Controller, Env, StackSpec};
use felhom_marker::{Capture, Fact, MarkedContainer, MarkedStack, Marker, MarkerStore, Outcome};

use crate::receiver::Receiver;
use crate::{assert_run_again, assert_untouched, states};

/// The capture verdict of `stack` in `record`, with its facts.
fn verdict(record: &felhom_marker::CycleRecord, stack: &str) -> (Capture, Vec<Fact>) {
    let s = record
        .stacks
        .iter()
        .find(|s| s.name == stack)
        .unwrap_or_else(|| panic!("{stack} in {record:?}"));
    (s.capture, s.facts.iter().map(|f| f.fact).collect())
}

/// A container of a stopped stack started by someone else while the backup runs is captured
/// running: `live`, the cycle is not a success (exit 1), and nothing says `done`.
#[test]
fn a_container_restarted_during_the_backup_is_live() {
    let mut env = Env::new("rlv");
    let app = env.deploy("app", &StackSpec::app());
    let calm = env.deploy("calm", &StackSpec::app());
    env.up(&app);
    env.up(&calm);
    let agent = Agent::start(&env, |c| c.snapshot_delay = Duration::from_secs(3));
    let config = env.config(&agent.access()).write();
    let once = Controller::spawn(&config, &["once", "--force"]);
    agent.wait_event("the backup's start", |k| {
        matches!(k, EventKind::BackupRequested { .. })
    });
    // A deploy script, Watchtower or an operator starts it again mid-backup.
    let id = container(&app).id;
    felhom_e2e::docker(&["start", &id]);
    let once = once.wait();
    assert_eq!(once.code, Some(1), "a live capture fails `once`: {once}");
    let record = once.record();
    assert_eq!(record.outcome, Outcome::Done, "{once}");
    let (capture, facts) = verdict(&record, &app);
    assert_eq!(capture, Capture::Live, "{once}");
    assert!(facts.contains(&Fact::Ran), "{facts:?}");
    assert_eq!(verdict(&record, &calm).0, Capture::Clean, "{once}");
    assert!(container(&app).running && container(&calm).running);
}

/// A service whose shutdown takes longer than its `stop_grace_period` is killed by the engine
/// at the end of its grace: `killed`, and the container is named.
#[test]
fn a_container_killed_at_the_end_of_its_grace_is_killed() {
    let mut env = Env::new("rkl");
    let app = env.deploy("app", &StackSpec::app().stop_delay("10s").grace("2s"));
    env.up(&app);
    let before = states(std::slice::from_ref(&app));
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "a killed capture fails `once`: {once}");
    let record = once.record();
    assert_eq!(record.outcome, Outcome::Done, "{once}");
    let (capture, facts) = verdict(&record, &app);
    assert_eq!(capture, Capture::Killed, "{once}");
    assert_eq!(facts, [Fact::Killed], "{once}");
    assert!(
        !env.app_log(&app).contains("shut down cleanly"),
        "it was killed mid-shutdown: {}",
        env.app_log(&app)
    );
    assert!(
        once.stderr.contains(&format!(
            "the backup is not app-consistent for {app}: its capture is killed"
        )),
        "{once}"
    );
    assert_run_again(&before, "after the cycle");
    // `status` names it until a clean cycle follows.
    let status = run_controller(&config, &["status"]);
    assert_eq!(status.code, Some(1), "{status}");
    assert!(
        status.stdout.contains(&format!("{app} killed (")),
        "{status}"
    );
}

/// An app that dies 2 s after each start is not "back": each death within `stacks.settle`
/// is a failed attempt, retried, then the stack is stranded; `once` exits 1, the ping goes to
/// `/fail`, and no `done` is announced.
#[test]
fn an_app_that_dies_after_each_restart_is_retried_then_stranded_never_done() {
    let mut env = Env::new("rdy");
    let app = env.deploy("app", &StackSpec::app().crash_on_restart());
    let fine = env.deploy("fine", &StackSpec::app());
    env.up(&app);
    env.up(&fine);
    let receiver = Receiver::answering();
    let agent = Agent::start(&env, |c| c.snapshot_delay = Duration::from_secs(2));
    let config = env
        .config(&agent.access())
        .set("stacks.settle", "4s")
        .set("notify.webhook", receiver.url("/hook"))
        .set("notify.ping", receiver.url("/ping/check"))
        .set(
            "notify.events",
            vec!["done", "failed", "stranded", "inconsistent"],
        )
        .write();
    let once = Controller::spawn(&config, &["once", "--force"]);
    agent.wait_event("the backup's start", |k| {
        matches!(k, EventKind::BackupRequested { .. })
    });
    // Down now: from its next start on, it dies 2 s after each.
    env.crash_on_restart(&app);
    let once = once.wait_within(Duration::from_secs(180));
    assert_eq!(once.code, Some(1), "{once}");
    let record = once.record();
    assert_eq!(record.stranded, std::slice::from_ref(&app), "{once}");
    let attempts = record
        .errors
        .iter()
        .filter(|e| e.starts_with(&format!("starting {app} (attempt")))
        .count();
    assert_eq!(attempts, 5, "every attempt failed: {:?}", record.errors);
    assert!(
        record.errors.iter().any(|e| e.contains("failed to start")),
        "{:?}",
        record.errors
    );
    assert!(!container(&app).running);
    assert!(container(&fine).running);
    let requests = receiver.requests();
    let events: Vec<String> = requests
        .iter()
        .filter(|r| r.path == "/hook")
        .map(|r| r.json()["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(events.contains(&"stranded".to_owned()), "{events:?}");
    assert!(events.contains(&"failed".to_owned()), "{events:?}");
    assert!(!events.contains(&"done".to_owned()), "{events:?}");
    let pings: Vec<&str> = requests
        .iter()
        .filter(|r| r.path.starts_with("/ping/"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(pings, ["/ping/check/fail"], "{requests:#?}");
}

/// SIGTERM to the daemon while a 60 s shutdown is under way: the resume never sends the app
/// another stop, waits for the shutdown to end (however much longer than `start_timeout`),
/// then starts it: it runs afterwards, and still runs 15 s later.
#[test]
fn a_sigterm_mid_stop_of_a_slow_shutdown_leaves_the_app_running() {
    let mut env = Env::new("rsg");
    let app = env.deploy("app", &StackSpec::app().stop_delay("60s"));
    env.up(&app);
    let before = states(std::slice::from_ref(&app));
    let agent = Agent::start(&env, |_| {});
    let config = env
        .config(&agent.access())
        .set("stacks.start_timeout", "5s")
        .set("quiesce.max_quiesce", "5m")
        .write();
    let mut run = Controller::spawn(&config, &["run"]);
    run.wait_log("cycle started: marker written");
    // Its shutdown has begun.
    felhom_e2e::wait_until("the app to begin its shutdown", || {
        env.app_log(&app).contains("stopping")
    });
    run.terminate();
    let run = run.wait_within(Duration::from_secs(150));
    assert_eq!(run.code, Some(0), "{run}");
    assert_run_again(&before, "after the daemon's exit");
    let started = container(&app).started_at;
    assert!(
        started > before[&app].started_at,
        "started again after its shutdown"
    );
    let log = env.app_log(&app);
    assert_eq!(
        log.matches("stopping").count(),
        1,
        "one stop signal only: {log}"
    );
    std::thread::sleep(Duration::from_secs(15));
    let later = container(&app);
    assert!(later.running, "down 15 s later: {later:?}");
    assert_eq!(later.started_at, started, "not restarted since");
    let record = env.history().pop().expect("the cycle's record");
    assert_eq!(record.outcome, Outcome::Cancelled, "{record:?}");
    assert!(env.marker().is_none());
}

/// A marker left in phase `quiescing`: the stack whose stop never began is left as it is
/// (same container, same start), and of the stack whose stop began, exactly the recorded
/// container is started — not its replica that had exited before the cycle.
#[test]
fn recovery_of_a_quiescing_marker_starts_exactly_what_its_stop_stopped() {
    let mut env = Env::new("rqm");
    let never = env.deploy("never", &StackSpec::app());
    let began = env.deploy("began", &StackSpec::no_data().replicas(2));
    env.up(&never);
    env.up(&began);
    let untouched = container(&never);
    let replicas = felhom_e2e::containers(&began);
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    for r in &replicas {
        felhom_e2e::docker(&["stop", "-t", "1", &r.id]);
    }
    let (stopped, exited) = (&replicas[0], felhom_e2e::containers(&began)[1].clone());
    assert_eq!(exited.id, replicas[1].id);
    let mut never_stack = MarkedStack::new(
        never.clone(),
        vec!["app".into()],
        vec![marked(&untouched.id, &never)],
    );
    never_stack.stop_began = false;
    let mut began_stack = MarkedStack::new(
        began.clone(),
        vec!["app".into()],
        vec![marked(&stopped.id, &began)],
    );
    began_stack.stop_began = true;
    let mut marker = Marker::new(
        "c-quiescing",
        chrono::Utc::now(),
        vec![never_stack, began_stack],
    );
    marker.pid = 999_999;
    felhom_marker::StateDir::open(env.state_dir())
        .expect("the state directory")
        .save(&marker)
        .expect("a marker left by a dead controller");

    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();
    let recover = run_controller(&config, &["recover"]);
    assert_eq!(recover.code, Some(0), "{recover}");
    assert_untouched(&never, &untouched, "a stack whose stop never began");
    let now = felhom_e2e::containers(&began);
    let state = |id: &str| {
        now.iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id} in {now:?}"))
            .clone()
    };
    assert!(state(&stopped.id).running, "the stopped replica runs");
    let still = state(&exited.id);
    assert!(!still.running, "the exited replica stays exited: {still:?}");
    assert_eq!(still.started_at, exited.started_at);
    let record = recover.record();
    assert_eq!(record.outcome, Outcome::Recovered);
    assert!(record.stacks.iter().all(|s| s.capture == Capture::Unknown));
    assert!(env.marker().is_none());
}

fn marked(id: &str, stack: &str) -> MarkedContainer {
    MarkedContainer {
        id: id.to_owned(),
        name: format!("{stack}-app-1"),
        service: "app".into(),
    }
}

/// A backup adopted by a `409` that began before this cycle's stops did not capture the stack
/// stopped: not `clean`.
#[test]
fn an_adopted_backup_that_began_before_the_stops_is_not_clean() {
    let mut env = Env::new("rad");
    let app = env.deploy("app", &StackSpec::app());
    env.up(&app);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    // A first cycle gives up at its bound: its backup goes on running on the agent.
    let config = env
        .config(&agent.access())
        .set("quiesce.max_quiesce", "2s")
        .write();
    let first = run_controller(&config, &["once", "--force"]);
    assert_eq!(first.record().outcome, Outcome::Bounded, "{first}");
    // The next cycle's POST meets it (409) and adopts it; it then runs to its end.
    let config = env.config(&agent.access()).write();
    let mut second = Controller::spawn(&config, &["once", "--force"]);
    second.wait_log_where("the adopted backup", |l| {
        l.message == "backup started" && l.field("adopted").as_deref() == Some("true")
    });
    agent.clear_faults();
    let second = second.wait();
    assert_eq!(second.code, Some(1), "{second}");
    let record = second.record();
    assert_eq!(record.outcome, Outcome::Done, "{second}");
    let (capture, _) = verdict(&record, &app);
    assert_ne!(capture, Capture::Clean, "{second}");
    assert_eq!(capture, Capture::Live, "{second}");
    assert!(container(&app).running);
}

/// The status polls against the development agent both ways (issue 22): with the long-poll,
/// the snapshot is answered the moment it is taken, with a request or two meanwhile; without
/// it (fault `no_long_poll`), the interval schedule notices it within a second, and keeps to
/// the budget of about 20 requests in 10 s.
#[test]
fn the_snapshot_is_noticed_promptly_with_and_without_the_long_poll() {
    for long_poll in [true, false] {
        let mut env = Env::new(if long_poll { "rlp" } else { "rnl" });
        let app = env.deploy("app", &StackSpec::app());
        env.up(&app);
        let agent = Agent::start(&env, |c| {
            c.snapshot_delay = Duration::from_secs(10);
            if !long_poll {
                c.faults = vec![Fault::NoLongPoll];
            }
        });
        // The default interval (the harness's 200 ms would be 50 requests in 10 s).
        let config = env
            .config(&agent.access())
            .set("quiesce.status_poll_interval", "2s")
            .write();
        let once = run_controller(&config, &["once", "--force"]);
        assert_eq!(once.code, Some(0), "{once}");
        let events = agent.events();
        let posted = events
            .iter()
            .find(|e| matches!(e.kind, EventKind::BackupRequested { .. }))
            .map(|e| e.at)
            .expect("a backup");
        let snapshot = events
            .iter()
            .find(|e| matches!(e.kind, EventKind::SnapshotTaken { .. }))
            .map(|e| e.at)
            .expect("a snapshot");
        let statuses: Vec<chrono::DateTime<chrono::Utc>> = events
            .iter()
            .filter(|e| {
                matches!(&e.kind, EventKind::Request { method, path, .. } if method == "GET" && path == "/backup/status")
            })
            .map(|e| e.at)
            .collect();
        let answered = statuses
            .iter()
            .find(|at| **at >= snapshot)
            .copied()
            .expect("a status answered after the snapshot");
        let late = (answered - snapshot).to_std().unwrap_or_default();
        let first_10s = statuses
            .iter()
            .filter(|at| **at <= posted + chrono::Duration::seconds(10))
            .count();
        if long_poll {
            assert!(late < Duration::from_millis(500), "{late:?}");
            assert!(first_10s <= 2, "{first_10s} requests: {statuses:?}");
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::StatusHeld { .. })),
                "held"
            );
        } else {
            assert!(late < Duration::from_millis(1500), "{late:?}");
            assert!(
                (5..=20).contains(&first_10s),
                "{first_10s} requests: {statuses:?}"
            );
        }
        assert_eq!(verdict(&once.record(), &app).0, Capture::Clean);
    }
}
