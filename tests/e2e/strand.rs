//! Never strand an app outside the lab (issue #12, SPEC §2 rules 6 and 9): a `kill -9` while a
//! daemon idles, an engine that is away for longer than the whole retry budget, a stranded
//! stack across a restart, a corrupt marker, and the variables `--help` offers. (Hang-ups and
//! SIGQUIT: `signals.rs`.)

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use felhom_devagent::{DueMode, Fault};
use felhom_e2e::{
    container, containers, docker, http_get, run_controller, Agent, ConfigFile, Controller,
    EngineProxy, Env, WAIT,
};
use felhom_marker::Outcome;

use crate::{assert_run_again, running_apps, States};

/// Longer than the whole start retry budget (5 attempts, 2 s doubling: 30 s), which is all an
/// engine that was away got before.
const ENGINE_AWAY: Duration = Duration::from_secs(40);

/// Two running apps, an agent whose backups hang until told otherwise, a config, and the
/// controller's Docker engine behind a proxy the test switches off and on. (Fields drop in
/// order: the env, which tears the stacks down, last.)
struct Rig {
    engine: EngineProxy,
    agent: Agent,
    config: PathBuf,
    apps: Vec<String>,
    before: States,
    env: Env,
}

impl Rig {
    fn new(tag: &str, tweak: impl FnOnce(ConfigFile) -> ConfigFile) -> Rig {
        let mut env = Env::new(tag);
        let (apps, before) = running_apps(&mut env);
        let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
        let config = tweak(env.config(&agent.access())).write();
        let engine =
            EngineProxy::start(env.path().join("engine.sock")).expect("the engine proxy starts");
        Rig {
            engine,
            agent,
            config,
            apps,
            before,
            env,
        }
    }

    /// The controller with `args`, its engine through the proxy.
    fn spawn(&self, args: &[&str]) -> Controller {
        let host = [("DOCKER_HOST", self.engine.docker_host())];
        Controller::spawn_with(Some(&self.config), args, &host)
    }

    /// A cycle of `run` (or `once --force`) is under way, its backup hanging; then the
    /// process dies with `kill -9`, leaving its marker and the stacks down.
    fn crash(&self, args: &[&str]) {
        let mut run = self.spawn(args);
        run.wait_log("backup started");
        run.kill_group();
    }

    /// `run` waits for the engine: it stays away for [`ENGINE_AWAY`], the stacks stay down
    /// and marked meanwhile, then it comes back and so do they.
    fn away_then_back(&self, run: &mut Controller) {
        run.wait_log_where("waiting for the engine", |l| {
            l.message.starts_with("waiting for the engine since")
        });
        thread::sleep(ENGINE_AWAY);
        self.assert_down("while the engine is away");
        assert!(
            !run.logs().iter().any(|l| l.message.contains("STRANDED")),
            "nothing is stranded while the engine is away"
        );
        self.engine.on().expect("engine on");
        self.wait_running(WAIT, "once the engine answers");
    }

    /// Waits (bounded by `limit`) until every app runs again, in the same container.
    fn wait_running(&self, limit: Duration, context: &str) {
        let deadline = Instant::now() + limit;
        while self.apps.iter().any(|name| !container(name).running) {
            assert!(
                Instant::now() < deadline,
                "{context}: the stacks do not run again within {limit:?}"
            );
            thread::sleep(Duration::from_millis(200));
        }
        assert_run_again(&self.before, context);
    }

    /// Every app is down, and the marker names them all.
    fn assert_down(&self, context: &str) {
        for name in &self.apps {
            assert!(!container(name).running, "{context}: {name} should be down");
        }
        let marker = self
            .env
            .marker()
            .unwrap_or_else(|| panic!("{context}: the marker is kept"));
        let marked: Vec<&str> = marker.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            marked, self.apps,
            "{context}: the marker names every stack still down"
        );
    }

    /// SIGTERM to `run`, which exits 0.
    fn stop(run: Controller) {
        run.terminate();
        let end = run.wait();
        assert_eq!(end.code, Some(0), "{end}");
    }
}

#[test]
fn once_killed_while_the_daemon_idles_is_recovered_within_two_due_polls() {
    let due_poll = Duration::from_secs(3);
    let rig = Rig::new("orph", |c| c.set("quiesce.due_poll_interval", "3s"));
    // Never due: only the daemon's tick can find the orphan.
    rig.agent.set_due(DueMode::Never);
    let mut daemon = rig.spawn(&["run"]);
    // Its start-up recovery holds the cycle lock for a moment: `once` comes after it.
    daemon.wait_log("the start-up recovery is done");
    let mut once = rig.spawn(&["once", "--force"]);
    once.wait_log("backup started");
    // The daemon leaves a live process's marker alone.
    thread::sleep(due_poll * 2);
    rig.assert_down("while `once` lives");
    once.kill_group();
    let killed = Instant::now();
    daemon.wait_log("recovered the marker of a process that died");
    let took = killed.elapsed();
    rig.wait_running(WAIT, "after the daemon's tick");
    // Two due polls, plus the starts themselves (generous: it catches a wait for "due").
    assert!(
        took < due_poll * 2 + Duration::from_secs(20),
        "recovered {took:?} after the kill"
    );
    assert!(rig.env.marker().is_none());
    let last = rig.env.history().pop().expect("the recovery is recorded");
    assert_eq!(last.outcome, Outcome::Recovered, "{last:#?}");
    Rig::stop(daemon);
}

#[test]
fn an_engine_away_at_a_daemon_start_after_a_crash_is_waited_for() {
    let rig = Rig::new("eng0", |c| c);
    rig.crash(&["run"]);
    // The guest reboots; dockerd is slow to come up.
    rig.engine.off().expect("engine off");
    rig.agent.set_due(DueMode::Never);
    let mut run = rig.spawn(&["run"]);
    rig.away_then_back(&mut run);
    run.wait_log("cycle finished");
    assert!(rig.env.marker().is_none(), "cleared once the stacks run");
    let last = rig.env.history().pop().expect("the recovery is recorded");
    assert!(last.stranded.is_empty(), "{last:#?}");
    Rig::stop(run);
}

#[test]
fn an_engine_away_during_a_cycles_wait_is_waited_for() {
    let rig = Rig::new("eng1", |c| c);
    let mut run = rig.spawn(&["run"]);
    run.wait_log("backup started");
    // dockerd is restarted (an upgrade) while the backup runs; the backup then ends.
    rig.engine.off().expect("engine off");
    rig.agent.clear_faults();
    rig.away_then_back(&mut run);
    let finished = run.wait_log("cycle finished");
    assert_eq!(
        finished.field("outcome").as_deref(),
        Some("Done"),
        "{}",
        finished.raw
    );
    assert!(rig.env.marker().is_none());
    Rig::stop(run);
}

#[test]
fn recover_waits_for_the_engine_up_to_max_quiesce_then_keeps_the_marker() {
    let rig = Rig::new("eng2", |c| c.set("quiesce.max_quiesce", "15s"));
    rig.crash(&["once", "--force"]);
    rig.engine.off().expect("engine off");
    let recover = rig.spawn(&["recover"]).wait();
    assert_eq!(recover.code, Some(1), "{recover}");
    assert!(
        recover
            .stderr
            .contains("the docker engine cannot be reached"),
        "said on the terminal: {recover}"
    );
    rig.assert_down("after recover gave up");
    // The timer's next run, with the engine back, finishes the job.
    rig.engine.on().expect("engine on");
    let recover = rig.spawn(&["recover"]).wait();
    assert_eq!(recover.code, Some(0), "{recover}");
    rig.wait_running(Duration::ZERO, "after the second recover");
    assert!(rig.env.marker().is_none());
}

#[test]
fn a_stranded_stack_is_kept_across_a_restart_and_brought_back() {
    let rig = Rig::new("strd", |c| c.set("status.listen", "127.0.0.1:0"));
    let mut run = rig.spawn(&["run"]);
    let port = run.endpoint_port();
    run.wait_log("backup started");
    // While it is down, a directory takes the place of the second app's running flag: the app
    // cannot write it and dies at every start (the same container each time), so it is stranded.
    let flag = rig.env.data_dir().join(&rig.apps[1]).join("running");
    std::fs::create_dir(&flag).expect("a directory where the app's flag goes");
    rig.agent.clear_faults();
    run.wait_log("cycle finished");
    let status = http_get(port, "/status").expect("/status answers");
    let live: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    assert_eq!(live["stranded"], serde_json::json!([rig.apps[1]]), "{live}");
    Rig::stop(run);

    // Across the restart the stack is still known stranded.
    let stranded = || {
        let shown = run_controller(&rig.config, &["status", "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&shown.stdout).expect("status JSON");
        doc["stranded"].clone()
    };
    assert_eq!(stranded(), serde_json::json!([rig.apps[1]]));
    // Mended, and the daemon's start brings it back and forgets it.
    std::fs::remove_dir(&flag).expect("mend the app");
    rig.agent.set_due(DueMode::Never);
    let mut run = rig.spawn(&["run"]);
    run.wait_log("a stranded stack runs again");
    rig.wait_running(WAIT, "after the daemon's retry");
    Rig::stop(run);
    assert_eq!(stranded(), serde_json::json!([]));
    assert!(!rig.env.state_dir().join("stranded.json").exists());
}

/// Issue 19: what an operator removed stays removed. A stack a cycle stranded is taken down on
/// purpose (`docker compose down`): `recover`, which tries every stranded stack at once,
/// creates nothing, gives it up and says why (exit 1: it still needs a person). Once the
/// operator brings it up himself, the next `recover` sees each of its services run and lets
/// it go, starting nothing.
#[test]
fn a_stranded_stack_its_operator_took_down_is_given_up_never_recreated() {
    let rig = Rig::new("gvup", |c| c);
    let mut run = rig.spawn(&["run"]);
    run.wait_log("backup started");
    // The second app cannot write its running flag and dies at every start: stranded.
    let flag = rig.env.data_dir().join(&rig.apps[1]).join("running");
    std::fs::create_dir(&flag).expect("a directory where the app's flag goes");
    rig.agent.clear_faults();
    run.wait_log("cycle finished");
    Rig::stop(run);
    let gone = &rig.apps[1];
    docker(&["compose", "-p", gone, "down"]);
    assert!(containers(gone).is_empty(), "taken down by its operator");

    let tried = run_controller(&rig.config, &["recover"]);
    assert_eq!(tried.code, Some(1), "still stranded: {tried}");
    assert!(containers(gone).is_empty(), "nothing recreated: {tried}");
    let status = run_controller(&rig.config, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let why = doc["stranded_stacks"][0]["given_up"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("removed outside the controller"), "{status}");
    assert!(
        why.contains(&format!("felhom-controller forget {gone}")),
        "{status}"
    );
    let text = run_controller(&rig.config, &["status"]);
    assert_eq!(text.code, Some(1), "{text}");
    assert!(text.stdout.contains("no longer retried"), "{text}");

    // The operator brings it back (mended): the next look lets it go.
    std::fs::remove_dir(&flag).expect("mend the app");
    rig.env.up(gone);
    let ids: Vec<String> = containers(gone).into_iter().map(|c| c.id).collect();
    let again = run_controller(&rig.config, &["recover"]);
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stderr.contains("someone brought it back"), "{again}");
    let after: Vec<String> = containers(gone).into_iter().map(|c| c.id).collect();
    assert_eq!(after, ids, "the operator's containers, untouched");
    let status = run_controller(&rig.config, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(doc["stranded"], serde_json::json!([]), "{status}");
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
    Rig::stop(run);
}
