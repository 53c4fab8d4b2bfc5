//! Every fault of the development agent, with `once --force`: the exit status (0 only for
//! `done`), the record's outcome, and every app stack running again in the same container.

use std::time::Duration;

use felhom_devagent::{Event, EventKind, Fault};
use felhom_e2e::{Agent, Controller, Env, Finished};
use felhom_marker::{CycleRecord, Outcome};

use crate::{assert_run_again, running_apps};

/// What one faulty cycle left behind.
struct Faulty {
    once: Finished,
    record: CycleRecord,
    events: Vec<Event>,
}

/// The bound of the cycles that wait for an agent that never delivers.
const MAX_QUIESCE: &str = "10s";

/// Runs `once --force` against an agent with `faults` active from the start, with `config`
/// settings on top of the defaults; `during` runs while the controller does (e.g. to change
/// the faults mid-cycle). Asserts what every outcome must hold: the stacks run again, the
/// marker is gone, the exit status says whether the outcome is `done`.
fn once_against(
    tag: &str,
    faults: Vec<Fault>,
    config: &[(&str, &str)],
    during: impl FnOnce(&mut Controller, &Agent),
) -> Faulty {
    let mut env = Env::new(tag);
    let (apps, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = faults);
    let mut file = env
        .config(&agent.access())
        .set("quiesce.max_quiesce", MAX_QUIESCE);
    for (key, value) in config {
        file = file.set(key, *value);
    }
    let config = file.write();
    let mut once = Controller::spawn(&config, &["once", "--force"]);
    during(&mut once, &agent);
    let once = once.wait();
    let record = once.record();
    let expected_code = if record.outcome == Outcome::Done {
        0
    } else {
        1
    };
    assert_eq!(once.code, Some(expected_code), "{once}");
    assert_eq!(
        record.stacks.iter().map(|s| &s.name).collect::<Vec<_>>(),
        apps.iter().collect::<Vec<_>>(),
        "{once}"
    );
    assert!(record.stranded.is_empty(), "{once}");
    assert_run_again(&before, &format!("after {}", once.stdout));
    assert!(env.marker().is_none(), "the marker is cleared: {once}");
    Faulty {
        once,
        record,
        events: agent.events(),
    }
}

fn assert_error(f: &Faulty, needle: &str) {
    assert!(
        f.record.errors.iter().any(|e| e.contains(needle)),
        "the record's errors should mention {needle:?}: {}",
        f.once
    );
}

fn status_answers(events: &[Event], status: u16) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::Request { path, status: s, .. }
                if path == "/backup/status" && *s == status)
        })
        .count()
}

#[test]
fn a_failed_backup_is_recorded_failed() {
    let f = once_against("ffail", vec![Fault::FailBackup], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Failed, "{}", f.once);
    assert_error(&f, "injected failure");
}

#[test]
fn a_hanging_backup_is_bounded_by_max_quiesce() {
    let f = once_against("fhang", vec![Fault::Hang], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Bounded, "{}", f.once);
    assert_error(&f, &format!("max_quiesce ({MAX_QUIESCE}) reached"));
    // Down for the bound, and not much longer (generous: only a hang fails this).
    for stack in &f.record.stacks {
        let down = stack
            .downtime_ms
            .expect("the record has each stack's downtime");
        assert!(
            (9_000..40_000).contains(&down),
            "{} was down {down} ms with max_quiesce {MAX_QUIESCE}: {}",
            stack.name,
            f.once
        );
    }
}

#[test]
fn status_500s_are_retried_until_done() {
    let f = once_against("f500", vec![Fault::Status500(3)], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Done, "{}", f.once);
    assert_eq!(status_answers(&f.events, 500), 3, "{:#?}", f.events);
    assert_eq!(
        f.record
            .errors
            .iter()
            .filter(|e| e.contains("unexpected status 500"))
            .count(),
        3,
        "{}",
        f.once
    );
}

#[test]
fn a_status_that_is_not_json_is_retried_until_the_bound() {
    let f = once_against("fnjs", vec![Fault::NonJson], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Bounded, "{}", f.once);
    assert_error(&f, "GET /backup/status: malformed JSON");
}

#[test]
fn an_oversized_status_is_retried_until_the_bound() {
    let f = once_against("fbig", vec![Fault::Oversized], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Bounded, "{}", f.once);
    assert_error(&f, "GET /backup/status: body over 64 KiB");
}

#[test]
fn a_forgotten_backup_is_recorded_lost() {
    let f = once_against("fforg", vec![Fault::Forget], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Lost, "{}", f.once);
}

#[test]
fn a_conflicting_backup_is_adopted() {
    let id = "b-e2e-adopted";
    let f = once_against("fconf", vec![Fault::Conflict(id.into())], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Done, "{}", f.once);
    assert_eq!(f.record.backup_id.as_deref(), Some(id), "{}", f.once);
    let started = f
        .once
        .logs()
        .into_iter()
        .find(|l| l.message == "backup started")
        .expect("the start is logged");
    assert_eq!(
        started.field("adopted").as_deref(),
        Some("true"),
        "{}",
        started.raw
    );
}

#[test]
fn an_unavailable_agent_fails_the_cycle_without_waiting() {
    let f = once_against("funav", vec![Fault::Unavailable], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Failed, "{}", f.once);
    assert_error(&f, "POST /backup: the agent cannot back up now");
    assert_eq!(
        status_answers(&f.events, 200) + status_answers(&f.events, 500),
        0,
        "a refused backup is not polled: {:#?}",
        f.events
    );
}

#[test]
fn a_silent_agent_is_bounded_by_max_quiesce() {
    // Silent from the start, `POST /backup` itself would time out (a failed cycle); silent
    // once the backup runs, every status poll times out until the bound.
    let f = once_against(
        "fsil",
        Vec::new(),
        &[("agent.request_timeout", "1s")],
        |once, agent| {
            once.wait_log("backup started");
            agent.set_faults(vec![Fault::Silent, Fault::Hang]);
        },
    );
    assert_eq!(f.record.outcome, Outcome::Bounded, "{}", f.once);
    // A status poll is a long-poll (SPEC §3): a silent agent looks like one holding the answer
    // until the wait (up to the time left) ends, so the bound, not the request's own, ends it.
    assert_error(&f, "max_quiesce (10s) reached: resuming");
}

#[test]
fn a_slow_status_is_waited_for() {
    let f = once_against(
        "fslow",
        vec![Fault::SlowStatus(Duration::from_millis(1500))],
        &[],
        |_, _| {},
    );
    assert_eq!(f.record.outcome, Outcome::Done, "{}", f.once);
    assert!(f.record.errors.is_empty(), "{}", f.once);
}

/// Issue 19: an agent whose status answers carry malformed optional fields (`started_at: ""`,
/// a time that is not one, a number for a time) once failed every poll, kept the apps down
/// the whole `max_quiesce` while the agent said `snapshotted`, and wrote one error per poll.
/// Only `phase` decides: the cycle ends `done` (not at the bound), with no error in its
/// record and one warning in the log for the whole cycle.
#[test]
fn malformed_optional_fields_never_fail_a_poll() {
    let f = once_against("fbadfields", vec![Fault::BadFields], &[], |_, _| {});
    assert_eq!(f.record.outcome, Outcome::Done, "{}", f.once);
    assert!(f.record.errors.is_empty(), "{}", f.once);
    let warnings = f
        .once
        .stderr
        .matches("optional fields that do not parse; ignored")
        .count();
    assert_eq!(warnings, 1, "one warning per cycle: {}", f.once);
}
