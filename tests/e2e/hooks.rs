//! The per-service policy of `docs/labels.md` (issue 23) on real containers, with the real
//! binary: a PostgreSQL-like service kept up by its `pre-snapshot` dump (in the backup, newer
//! than the cycle's start), a `skip` service that never sees SIGTERM, a failing hook with each
//! `felhom.on-hook-error`, a hook that hangs killed at its timeout with its children, a
//! `kill -9` after a `pre-snapshot` ran whose recovery runs the `post-resume`, and a bad
//! label that `check` names and a cycle treats as absent.
//!
//! The test app stands in for the hooks' programs (`FROM scratch` has no shell): `dump FILE`
//! writes `dump <time>` as `pg_dumpall > FILE` would, `exit CODE` fails, `hang` never ends.

use chrono::{DateTime, Utc};
use felhom_devagent::{EventKind, Fault};
use felhom_e2e::{
    docker, run_controller, service_container, Agent, Controller, Env, StackSpec, WAIT,
};
use felhom_marker::{Capture, CycleRecord, HookKind, Outcome, ServiceRecord};

/// The hook that dumps the "database" into its own data volume.
const DUMP: &str = "/app dump /data/dump.sql";
/// The `post-resume` hook of the tests: a file that says it ran (and when).
const RESUMED: &str = "/app dump /data/resumed";

fn service<'a>(record: &'a CycleRecord, stack: &str, service: &str) -> &'a ServiceRecord {
    let found = record.stack(stack).and_then(|s| s.service(service));
    found.unwrap_or_else(|| panic!("{stack}/{service} in {record:#?}"))
}

/// The PostgreSQL-like service: kept up, dumped by its `pre-snapshot` hook, with a
/// `post-resume` hook that leaves a file.
fn hooked_db() -> StackSpec {
    StackSpec::app()
        .label("felhom.quiesce", "hook")
        .label("felhom.pre-snapshot", DUMP)
        .label("felhom.post-resume", RESUMED)
}

/// The time in a test-app dump file (`dump <RFC 3339>`).
fn dumped_at(text: &str) -> DateTime<Utc> {
    let stamp = text
        .trim()
        .strip_prefix("dump ")
        .unwrap_or_else(|| panic!("not a dump: {text:?}"));
    DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("{stamp:?}: {e}"))
        .with_timezone(&Utc)
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_hooked_database_is_dumped_not_stopped_its_dump_in_the_backup_and_a_skip_service_untouched() {
    let mut env = Env::new("hkdb");
    let shop = env.deploy_services(
        "shop",
        &[
            ("db", hooked_db()),
            ("front", StackSpec::app().label("felhom.quiesce", "skip")),
            ("web", StackSpec::app()),
        ],
    );
    env.up(&shop);
    let before: Vec<_> = ["db", "front", "web"]
        .iter()
        .map(|s| service_container(&shop, s))
        .collect();
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();

    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(0), "{once}");
    let record = once.record();
    assert_eq!(record.outcome, Outcome::Done, "{once}");

    // db and front: never stopped — same container, same start, no SIGTERM seen.
    for (i, name) in [(0, "db"), (1, "front")] {
        let now = service_container(&shop, name);
        assert_eq!(now, before[i], "{name} was stopped or touched");
        let log = env.service_log(&shop, name);
        assert!(!log.contains("stopping"), "{name} saw a stop signal: {log}");
    }
    // web: stopped cleanly, started again.
    let web = service_container(&shop, "web");
    assert!(
        web.running && web.started_at > before[2].started_at,
        "{web:?}"
    );
    assert!(env.service_log(&shop, "web").contains("shut down cleanly"));

    // The verdicts: db hooked (its dump exited 0), front skipped, web clean; the stack's is
    // the weightiest of its services'.
    assert_eq!(service(&record, &shop, "db").capture, Capture::Hooked);
    assert_eq!(service(&record, &shop, "front").capture, Capture::Skipped);
    assert_eq!(service(&record, &shop, "web").capture, Capture::Clean);
    assert_eq!(record.stacks[0].capture, Capture::Skipped);
    let hooks = &service(&record, &shop, "db").hooks;
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(
        (hooks[0].hook, hooks[0].exit_code, hooks[0].succeeded),
        (HookKind::PreSnapshot, Some(0), true)
    );
    assert!(
        hooks[0].output.contains("dumped to /data/dump.sql"),
        "{hooks:?}"
    );
    assert_eq!(hooks[1].hook, HookKind::PostResume);

    // The dump is in the backup's data, written after the cycle began and before the snapshot.
    let backup = record.backup_id.clone().expect("a backup");
    let in_backup = env
        .out_dir()
        .join(&backup)
        .join("snapshot")
        .join(&shop)
        .join("db")
        .join("dump.sql");
    let dumped = dumped_at(&read(&in_backup));
    assert!(
        dumped > record.started_at,
        "the dump ({dumped}) is newer than the cycle's start ({})",
        record.started_at
    );
    let snapshot = felhom_e2e::snapshot_time(&agent.events(), &backup);
    assert!(
        dumped < snapshot,
        "dumped at {dumped}, snapshot at {snapshot}"
    );
    // The post-resume ran once the stacks resumed: after the snapshot (early resume).
    let resumed = dumped_at(&read(&env.service_data(&shop, "db").join("resumed")));
    assert!(
        resumed > snapshot,
        "resumed at {resumed}, snapshot at {snapshot}"
    );
    assert!(env.marker().is_none());

    // status shows each service's hooks; its JSON keeps the output, /status does not.
    let status = run_controller(&config, &["status"]);
    assert_eq!(status.code, Some(0), "{status}");
    assert!(
        status
            .stdout
            .contains("db: hook, hooked; pre-snapshot /app in "),
        "{status}"
    );
}

/// A stack of one service whose `pre-snapshot` hook exits 3, with `on_error`.
fn failing(on_error: &str) -> StackSpec {
    StackSpec::app()
        .label("felhom.quiesce", "hook")
        .label("felhom.pre-snapshot", "/app exit 3 the dump failed")
        .label("felhom.post-resume", RESUMED)
        .label("felhom.on-hook-error", on_error)
}

#[test]
fn a_failing_hook_with_each_on_hook_error() {
    let mut env = Env::new("hkerr");
    let stop = env.deploy_services("stop", &[("db", failing("stop"))]);
    let cont = env.deploy_services("cont", &[("db", failing("continue"))]);
    for name in [&stop, &cont] {
        env.up(name);
    }
    let cont_before = service_container(&cont, "db");
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();

    let once = run_controller(&config, &["once", "--force"]);
    // continue: hook-failed needs a person (exit 1); the backup itself is done.
    assert_eq!(once.code, Some(1), "{once}");
    let record = once.record();
    assert_eq!(record.outcome, Outcome::Done, "{once}");
    // stop: fell back to a clean stop; its hook's failure in the errors, not its output.
    let db = service(&record, &stop, "db");
    assert!(db.stopped, "{db:?}");
    assert_eq!(db.capture, Capture::Clean);
    assert!(env.service_log(&stop, "db").contains("shut down cleanly"));
    let error = format!(
        "stack {stop}, service db: pre-snapshot hook \"/app\" (container {stop}-db-1): exit 3 after"
    );
    assert!(
        record
            .errors
            .iter()
            .any(|e| e.starts_with(&error) && e.ends_with("stopped with its stack instead")),
        "{:#?}",
        record.errors
    );
    assert!(
        record.errors.iter().all(|e| !e.contains("the dump failed")),
        "no hook output in the errors: {:#?}",
        record.errors
    );
    assert_eq!(db.hooks[0].exit_code, Some(3));
    assert!(db.hooks[0].output.contains("the dump failed"), "{db:?}");
    // continue: stays up, hook-failed.
    let db = service(&record, &cont, "db");
    assert!(!db.stopped);
    assert_eq!(db.capture, Capture::HookFailed);
    assert_eq!(service_container(&cont, "db"), cont_before, "not stopped");
    assert!(once.stderr.contains("not app-consistent for"), "{once}");
    let status = run_controller(&config, &["status"]);
    assert_eq!(status.code, Some(1), "hook-failed needs a person: {status}");

    // skip-backup: the cycle is given up before anything is stopped, no backup posted.
    let mut env2 = Env::new("hkskip");
    let skip = env2.deploy_services("skip", &[("db", failing("skip-backup"))]);
    let plain = env2.deploy("plain", &StackSpec::app());
    for name in [&skip, &plain] {
        env2.up(name);
    }
    let plain_before = felhom_e2e::container(&plain);
    let skip_before = service_container(&skip, "db");
    let agent2 = Agent::start(&env2, |_| {});
    let config2 = env2.config(&agent2.access()).write();
    let once = run_controller(&config2, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "{once}");
    let record = once.record();
    assert_eq!(record.outcome, Outcome::Failed, "{once}");
    assert_eq!(record.backup_id, None, "no backup posted");
    assert!(
        !agent2
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::BackupRequested { .. })),
        "the agent was asked for no backup"
    );
    assert!(record
        .errors
        .iter()
        .any(|e| e.contains(&format!("stack {skip}, service db")) && e.contains("skip-backup")));
    assert_eq!(
        felhom_e2e::container(&plain),
        plain_before,
        "nothing stopped"
    );
    assert_eq!(
        service_container(&skip, "db"),
        skip_before,
        "nothing stopped"
    );
    // What was quiesced is resumed: its pre-snapshot began, its post-resume ran.
    assert!(env2.service_data(&skip, "db").join("resumed").exists());
    assert!(env2.marker().is_none());
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_with_its_children() {
    let mut env = Env::new("hkhang");
    let stack = env.deploy_services(
        "hang",
        &[(
            "db",
            StackSpec::app()
                .label("felhom.quiesce", "hook")
                .label("felhom.pre-snapshot", "/app hang --children 2")
                .label("felhom.hook-timeout", "2s")
                .label("felhom.on-hook-error", "continue"),
        )],
    );
    env.up(&stack);
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "hook-failed: {once}");
    let record = once.record();
    let run = &service(&record, &stack, "db").hooks[0];
    assert!(run.timed_out && !run.succeeded, "{run:?}");
    assert_eq!(run.exit_code, Some(137), "{run:?}");
    assert!(
        (2_000..WAIT.as_millis() as u64).contains(&run.duration_ms),
        "killed at its 2 s: {run:?}"
    );
    assert!(run.output.contains("hanging"), "{run:?}");
    assert_eq!(service(&record, &stack, "db").capture, Capture::HookFailed);
    // Its whole process group is gone: only the app itself runs in the container.
    let db = service_container(&stack, "db");
    let top = docker(&["top", &db.id]);
    assert!(!top.contains("hang"), "a hook process is left: {top}");
    assert!(db.running);
}

#[test]
fn kill_9_after_a_pre_snapshot_ran_recovery_runs_the_post_resume() {
    let mut env = Env::new("hkkill");
    let shop = env.deploy_services("shop", &[("db", hooked_db()), ("web", StackSpec::app())]);
    env.up(&shop);
    let db_before = service_container(&shop, "db");
    // The backup hangs: the cycle waits with web down and db's hook done.
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env.config(&agent.access()).write();
    let mut run = Controller::spawn(&config, &["once", "--force"]);
    run.wait_log("backup started");
    let marker = env.marker().expect("a marker while the backup runs");
    let db = marker.stacks[0]
        .hooks
        .iter()
        .find(|h| h.service == "db")
        .expect("db's hooks in the marker");
    assert!(db.quiesced && db.post_resume.is_some(), "{db:?}");
    assert!(
        db.runs
            .iter()
            .any(|r| r.hook == HookKind::PreSnapshot && r.ended),
        "{db:?}"
    );
    run.kill_alone();
    let resumed = env.service_data(&shop, "db").join("resumed");
    assert!(!resumed.exists(), "no post-resume before the recovery");
    assert!(!service_container(&shop, "web").running, "web is down");

    let recover = run_controller(&config, &["recover"]);
    assert_eq!(recover.code, Some(0), "{recover}");
    assert!(
        resumed.exists(),
        "the recovery ran db's post-resume: {recover}"
    );
    assert!(service_container(&shop, "web").running, "{recover}");
    assert_eq!(
        service_container(&shop, "db"),
        db_before,
        "db never stopped"
    );
    assert!(env.marker().is_none());
    let record = env.history().pop().expect("the recovery's record");
    assert_eq!(record.outcome, Outcome::Recovered);
    let runs = &service(&record, &shop, "db").hooks;
    assert!(
        runs.iter()
            .any(|r| r.hook == HookKind::PostResume && r.succeeded),
        "{runs:?}"
    );
}

#[test]
fn check_names_a_bad_label_and_a_cycle_treats_the_service_as_if_it_were_absent() {
    let mut env = Env::new("hkbad");
    let shop = env.deploy_services(
        "shop",
        &[
            ("db", StackSpec::app().label("felhom.quiesce", "pause")),
            (
                "cache",
                StackSpec::app()
                    .label("felhom.quiesce", "skip")
                    .label("felhom.stop-order", "first"),
            ),
        ],
    );
    env.up(&shop);
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();

    let check = run_controller(&config, &["check"]);
    assert_eq!(check.code, Some(1), "{check}");
    for line in [
        format!("label: stack \"{shop}\", service \"db\": label felhom.quiesce=\"pause\": expected stop, skip or hook"),
        format!("label: stack \"{shop}\", service \"cache\": label felhom.stop-order=\"first\": expected an integer"),
        format!("  {shop} (stop-order 0)"),
        "    cache: skip".to_owned(),
        "    db: stop".to_owned(),
    ] {
        assert!(check.stdout.contains(&line), "{line:?} in {check}");
    }
    assert!(
        service_container(&shop, "db").running,
        "check stops nothing"
    );

    // The cycle: db stopped as by default, cache kept up; never stranded; the label errors
    // in the record.
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(0), "{once}");
    let record = once.record();
    assert!(record.stranded.is_empty());
    assert!(service(&record, &shop, "db").stopped);
    assert_eq!(service(&record, &shop, "db").capture, Capture::Clean);
    assert_eq!(service(&record, &shop, "cache").capture, Capture::Skipped);
    assert_eq!(record.stacks[0].label_errors.len(), 2, "{record:#?}");
    assert!(service_container(&shop, "db").running);
}
