//! Never strand an app outside the lab (issue #12, SPEC §2 rules 6 and 9): a hang-up, a
//! `kill -9` while a daemon idles, an engine that is away for longer than the whole retry
//! budget, a corrupt marker, and the variables `--help` offers.

use std::os::unix::fs::DirBuilderExt;
use std::thread;
use std::time::{Duration, Instant};

use felhom_devagent::{DueMode, Fault};
use felhom_e2e::{container, run_controller, Agent, Controller, EngineProxy, Env, WAIT};
use felhom_marker::Outcome;

use crate::{assert_run_again, running_apps, States};

/// Longer than the whole start retry budget (5 attempts, 2 s doubling: 30 s), which is all an
/// engine that was away got before.
const ENGINE_AWAY: Duration = Duration::from_secs(40);

/// Waits (bounded by `limit`) until every stack of `before` runs again.
fn wait_running(before: &States, limit: Duration, context: &str) {
    let deadline = Instant::now() + limit;
    while before.keys().any(|name| !container(name).running) {
        assert!(
            Instant::now() < deadline,
            "{context}: the stacks do not run again within {limit:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert_run_again(before, context);
}

fn assert_down(env: &Env, apps: &[String], context: &str) {
    for name in apps {
        assert!(!container(name).running, "{context}: {name} should be down");
    }
    let marker = env
        .marker()
        .unwrap_or_else(|| panic!("{context}: the marker is kept"));
    let marked: Vec<&str> = marker.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        marked, apps,
        "{context}: the marker names every stack still down"
    );
}

#[test]
fn a_hang_up_of_once_mid_quiesce_resumes_the_stacks() {
    let mut env = Env::new("hup");
    let (apps, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env.config(&agent.access()).write();
    let mut once = Controller::spawn(&config, &["once", "--force"]);
    once.wait_log("backup started");
    for name in &apps {
        assert!(!container(name).running, "{name} is down during the backup");
    }
    // The SSH session drops; the shell's hang-up reaches the command, then a second one.
    once.signal("HUP");
    once.signal("HUP");
    let end = once.wait();
    assert_eq!(
        end.code,
        Some(1),
        "the cycle did not complete normally: {end}"
    );
    assert_run_again(&before, "after the hang-up");
    assert!(env.marker().is_none(), "the marker is cleared: {end}");
    let last = env.history().pop().expect("the cycle is recorded");
    assert_eq!(last.outcome, Outcome::Cancelled, "{last:#?}");
}

#[test]
fn a_quit_of_the_daemon_mid_quiesce_resumes_the_stacks() {
    let mut env = Env::new("quit");
    let (_, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env.config(&agent.access()).write();
    let mut run = Controller::spawn(&config, &["run"]);
    run.wait_log("backup started");
    run.signal("QUIT");
    let end = run.wait();
    assert_eq!(end.code, Some(0), "{end}");
    assert_run_again(&before, "after SIGQUIT");
    assert!(env.marker().is_none(), "the marker is cleared");
}

#[test]
fn once_killed_while_the_daemon_idles_is_recovered_within_two_due_polls() {
    let mut env = Env::new("orph");
    let (apps, before) = running_apps(&mut env);
    // Never due: only the daemon's tick can find the orphan. The backup hangs.
    let agent = Agent::start(&env, |c| {
        c.due = DueMode::Never;
        c.faults = vec![Fault::Hang];
    });
    let due_poll = Duration::from_secs(3);
    let config = env
        .config(&agent.access())
        .set("quiesce.due_poll_interval", "3s")
        .write();
    let mut daemon = Controller::spawn(&config, &["run"]);
    daemon.wait_log("felhom-controller running");
    let mut once = Controller::spawn(&config, &["once", "--force"]);
    once.wait_log("backup started");
    // The daemon leaves a live process's marker alone.
    thread::sleep(due_poll * 2);
    assert_down(&env, &apps, "while `once` lives");
    once.kill_group();
    let killed = Instant::now();
    daemon.wait_log("recovered the marker of a process that died");
    let took = killed.elapsed();
    wait_running(&before, WAIT, "after the daemon's tick");
    // Two due polls, plus the starts themselves (generous: it catches a wait for "due").
    assert!(
        took < due_poll * 2 + Duration::from_secs(20),
        "recovered {took:?} after the kill"
    );
    assert!(env.marker().is_none());
    let last = env.history().pop().expect("the recovery is recorded");
    assert_eq!(last.outcome, Outcome::Recovered, "{last:#?}");
    daemon.terminate();
    assert_eq!(daemon.wait().code, Some(0));
}

/// The controller's engine, through a proxy the test switches off and on.
fn proxy(env: &Env) -> EngineProxy {
    EngineProxy::start(env.path().join("engine.sock")).expect("the engine proxy starts")
}

#[test]
fn an_engine_away_at_a_daemon_start_after_a_crash_is_waited_for() {
    let mut env = Env::new("eng0");
    let (apps, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env.config(&agent.access()).write();
    let engine = proxy(&env);
    let host = [("DOCKER_HOST", engine.docker_host())];
    // A crash mid-backup leaves the marker and the stacks down.
    let mut run = Controller::spawn_with(Some(&config), &["run"], &host);
    run.wait_log("backup started");
    run.kill_group();
    // The guest reboots; dockerd is slow to come up.
    engine.off().expect("engine off");
    agent.set_due(DueMode::Never);
    let mut run = Controller::spawn_with(Some(&config), &["run"], &host);
    run.wait_log_where("waiting for the engine", |l| {
        l.message.starts_with("waiting for the engine since")
    });
    thread::sleep(ENGINE_AWAY);
    assert_down(&env, &apps, "while the engine is away");
    assert!(
        !run.logs().iter().any(|l| l.message.contains("STRANDED")),
        "nothing is stranded while the engine is away"
    );
    engine.on().expect("engine on");
    wait_running(&before, WAIT, "once the engine answers");
    run.wait_log("cycle finished");
    assert!(env.marker().is_none(), "cleared once the stacks run");
    let last = env.history().pop().expect("the recovery is recorded");
    assert!(last.stranded.is_empty(), "{last:#?}");
    run.terminate();
    assert_eq!(run.wait().code, Some(0));
}

#[test]
fn an_engine_away_during_a_cycles_wait_is_waited_for() {
    let mut env = Env::new("eng1");
    let (apps, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env.config(&agent.access()).write();
    let engine = proxy(&env);
    let host = [("DOCKER_HOST", engine.docker_host())];
    let mut run = Controller::spawn_with(Some(&config), &["run"], &host);
    run.wait_log("backup started");
    // dockerd is restarted (an upgrade) while the backup runs; the backup then ends.
    engine.off().expect("engine off");
    agent.clear_faults();
    run.wait_log_where("waiting for the engine", |l| {
        l.message.starts_with("waiting for the engine since")
    });
    thread::sleep(ENGINE_AWAY);
    assert_down(&env, &apps, "while the engine is away");
    engine.on().expect("engine on");
    wait_running(&before, WAIT, "once the engine answers");
    let finished = run.wait_log("cycle finished");
    assert_eq!(
        finished.field("outcome").as_deref(),
        Some("Done"),
        "{}",
        finished.raw
    );
    assert!(env.marker().is_none());
    run.terminate();
    assert_eq!(run.wait().code, Some(0));
}

#[test]
fn recover_waits_for_the_engine_up_to_max_quiesce_then_keeps_the_marker() {
    let mut env = Env::new("eng2");
    let (apps, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env
        .config(&agent.access())
        .set("quiesce.max_quiesce", "15s")
        .write();
    let engine = proxy(&env);
    let host = [("DOCKER_HOST", engine.docker_host())];
    let mut once = Controller::spawn_with(Some(&config), &["once", "--force"], &host);
    once.wait_log("backup started");
    once.kill_group();
    engine.off().expect("engine off");
    let recover = Controller::spawn_with(Some(&config), &["recover"], &host).wait();
    assert_eq!(recover.code, Some(1), "{recover}");
    assert!(
        recover
            .stderr
            .contains("the docker engine cannot be reached"),
        "said on the terminal: {recover}"
    );
    assert_down(&env, &apps, "after recover gave up");
    // The timer's next run, with the engine back, finishes the job.
    engine.on().expect("engine on");
    let recover = Controller::spawn_with(Some(&config), &["recover"], &host).wait();
    assert_eq!(recover.code, Some(0), "{recover}");
    assert_run_again(&before, "after the second recover");
    assert!(env.marker().is_none());
}

#[test]
fn a_corrupt_marker_is_recovered_and_told() {
    let mut env = Env::new("corr");
    let (apps, before) = running_apps(&mut env);
    for name in &apps {
        env.stop(name);
    }
    // A marker cut off mid-write: the first stack can be read, the second cannot.
    let text = format!(
        r#"{{"version":1,"cycle_id":"c-cut","phase":"backing_up","stacks":[{{"name":"{}","services":["app"],"restart_attempts":0}},{{"name":"{}","serv"#,
        apps[0], apps[1]
    );
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(env.state_dir())
        .expect("the state dir, 0700");
    std::fs::write(env.marker_path(), text).expect("marker");
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();
    let recover = run_controller(&config, &["recover"]);
    let record = recover.record();
    assert!(
        record.errors.iter().any(|e| e.contains("corrupt")),
        "{record:#?}"
    );
    let first = &apps[0];
    assert!(container(first).running, "{first} was readable: recovered");
    assert_eq!(container(first).id, before[first].id);
    assert!(env.marker().is_none());
    let aside = std::fs::read_dir(env.state_dir())
        .expect("state dir")
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("marker.corrupt-")
        });
    assert!(aside, "the corrupt marker is kept aside");
    let history = env.history();
    assert_eq!(history.len(), 1, "a history record: {history:#?}");
}

#[test]
fn felhom_config_and_felhom_log_format_work_as_help_says() {
    let env = Env::new("envv");
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();
    let vars = [
        ("FELHOM_CONFIG", config.display().to_string()),
        ("FELHOM_LOG_FORMAT", "json".to_owned()),
    ];
    let status = Controller::spawn_with(None, &["status", "--json"], &vars).wait();
    assert_eq!(status.code, Some(0), "{status}");
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(doc["marker"], serde_json::Value::Null, "{doc}");
    // The daemon too; its log is JSON (the harness reads a message only from a JSON line).
    let mut run = Controller::spawn_with(None, &["run"], &vars);
    run.wait_log("felhom-controller running");
    run.terminate();
    assert_eq!(run.wait().code, Some(0));
}

#[test]
fn a_stranded_stack_is_kept_across_a_restart_and_brought_back() {
    let mut env = Env::new("strd");
    let (apps, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let port = felhom_e2e::free_port();
    let config = env
        .config(&agent.access())
        .set("status.listen", format!("127.0.0.1:{port}"))
        .write();
    let mut run = Controller::spawn(&config, &["run"]);
    run.wait_log("backup started");
    // The second app's directory goes away while it is down: its starts fail, it is stranded.
    let dir = env.stacks_root().join(&apps[1]);
    let aside = env.path().join("moved-away");
    std::fs::rename(&dir, &aside).expect("move the stack away");
    agent.clear_faults();
    run.wait_log("cycle finished");
    let status = felhom_e2e::http_get(port, "/status").expect("/status answers");
    let live: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    assert_eq!(live["stranded"], serde_json::json!([apps[1]]), "{live}");
    run.terminate();
    assert_eq!(run.wait().code, Some(0));

    // Across the restart the stack is still known stranded.
    let shown = run_controller(&config, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).expect("status JSON");
    assert_eq!(doc["stranded"], serde_json::json!([apps[1]]), "{shown}");
    // Put back, and the daemon's start brings it back and forgets it.
    std::fs::rename(&aside, &dir).expect("put the stack back");
    agent.set_due(DueMode::Never);
    let mut run = Controller::spawn(&config, &["run"]);
    run.wait_log("a stranded stack runs again");
    wait_running(&before, WAIT, "after the daemon's retry");
    run.terminate();
    assert_eq!(run.wait().code, Some(0));
    let shown = run_controller(&config, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).expect("status JSON");
    assert_eq!(doc["stranded"], serde_json::json!([]), "{shown}");
    assert!(!env.state_dir().join("stranded.json").exists());
}
