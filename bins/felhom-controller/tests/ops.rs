//! The real binary as systemd and an operator's timer and monitoring see it: the sd_notify
//! protocol over a real datagram socket, `recover --if-stale`, `forget`, and `status`'s exit
//! status. The markers here name no stack, or name one while the engine is away (a
//! `DOCKER_HOST` nobody listens on), so no Docker engine is needed.

mod common;

use chrono::{DateTime, Utc};
use common::{http_get, wait_metric, Notifications, Running, HANG};
use felhom_marker::{
    MarkedStack, Marker, MarkerStore, StateDir, StateLock, StrandedStack, StrandedStore,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A temporary world: a config (no agent) with its state directory.
struct World {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl World {
    fn new(listen: &str) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        // The store makes it (0700), as the daemon would.
        StateDir::open(&state).expect("state dir");
        let config = dir.path().join("controller.toml");
        std::fs::write(
            &config,
            format!(
                "[stacks]\nroot = \"{}/stacks\"\n[quiesce]\nstate_dir = \"{}\"\n\
                 max_quiesce = \"30m\"\n[status]\nlisten = \"{listen}\"\n",
                dir.path().display(),
                state.display()
            ),
        )
        .expect("config");
        World { dir, config }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn marker(&self) -> PathBuf {
        self.state().join("marker.json")
    }

    /// A marker naming no stack, as a controller that died left it, started `started_at`.
    fn write_marker(&self, started_at: DateTime<Utc>) {
        let marker = serde_json::json!({
            "version": 1,
            "cycle_id": "c-left",
            "phase": "backing_up",
            "started_at": started_at.to_rfc3339(),
            "pid": 999_999,
            "backup_id": null,
            "stacks": []
        });
        std::fs::write(self.marker(), marker.to_string()).expect("marker");
    }

    fn history(&self) -> String {
        std::fs::read_to_string(self.state().join("history.jsonl")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        common::command(&self.config, args)
    }

    /// Adds `lines` to the config file (sections or keys at its end).
    fn add_config(&self, lines: &str) {
        let mut config = std::fs::read_to_string(&self.config).expect("config");
        config.push_str(lines);
        std::fs::write(&self.config, config).expect("config");
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn hours_ago(h: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(h)
}

#[test]
fn recover_if_stale_leaves_a_fresh_marker_alone() {
    let world = World::new("");
    world.write_marker(Utc::now());
    let out = world.run(&["recover", "--if-stale"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("not older than max_quiesce"),
        "{}",
        text(&out)
    );
    assert!(world.marker().exists(), "a fresh marker is a live cycle's");
    // No marker at all: nothing to do either.
    std::fs::remove_file(world.marker()).expect("remove");
    let out = world.run(&["recover", "--if-stale"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("no marker"), "{}", text(&out));
}

#[test]
fn recover_if_stale_recovers_a_stale_marker_nobody_holds() {
    let world = World::new("");
    world.write_marker(hours_ago(2));
    assert_recovered_if_stale(&world);
}

/// `recover --if-stale` brings the marker back: exit 0, marker gone, recorded.
fn assert_recovered_if_stale(world: &World) {
    assert_recovered_by(world, &["recover", "--if-stale"]);
}

/// The command `args` brings the marker back: exit 0, marker gone, recorded.
fn assert_recovered_by(world: &World, args: &[&str]) {
    let out = world.run(args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!world.marker().exists(), "{}", text(&out));
    assert!(
        world.history().contains("\"outcome\":\"recovered\""),
        "{}",
        text(&out)
    );
}

/// A terminal that hung up, or a redirection to a full disk, fails every write to stdout and
/// stderr: the commands still do their work and exit with their own status, never 101 (a
/// panic of `println!`), since a crash after a cycle or a recovery would lose its notices.
#[test]
fn a_command_whose_output_cannot_be_written_still_does_its_work_and_exits_cleanly() {
    let world = World::new("");
    world.write_marker(hours_ago(2));
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let run = |args: &[&str]| {
        let mut command = world.command(args);
        command.stdout(full()).stderr(full());
        command.status().expect("the binary runs")
    };
    // The marker is recovered although nothing can be printed.
    assert_eq!(run(&["recover"]).code(), Some(0), "recover");
    assert!(!world.marker().exists());
    assert!(world.history().contains("\"outcome\":\"recovered\""));
    // Nothing to recover, said to nobody: still 0.
    assert_eq!(run(&["recover"]).code(), Some(0), "recover again");
    assert_eq!(run(&["status"]).code(), Some(0), "status");
}

#[test]
fn recover_if_stale_leaves_a_held_marker_alone() {
    let world = World::new("");
    world.write_marker(hours_ago(2));
    let state = StateDir::open(world.state()).expect("state");
    // This test process holds the lock, as a live (if slow) daemon would.
    let lock = StateLock::acquire(&state).expect("lock");
    let out = world.run(&["recover", "--if-stale"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("held by pid"), "{}", text(&out));
    assert!(world.marker().exists(), "{}", text(&out));
    // The marker is held: `status` sees a live cycle, nothing for a person.
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    drop(lock);
    // Let go, it is stale and nobody's: `status` calls for a person.
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no live process holds"),
        "{}",
        text(&out)
    );
}

#[test]
fn status_exits_1_only_when_something_needs_a_person() {
    let world = World::new("");
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let state = StateDir::open(world.state()).expect("state");
    let list = state
        .strand(&[StrandedStack {
            name: "nextcloud".into(),
            services: vec!["app".into()],
            cycle_id: "c-1".into(),
            since: Utc::now(),
            attempts: 5,
            last_error: "no such image".into(),
            given_up: None,
            containers: vec![],
        }])
        .expect("strand");
    assert_eq!(list.stacks.len(), 1);
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nextcloud"), "{}", text(&out));
    let out = world.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["stranded"], serde_json::json!(["nextcloud"]), "{doc}");
    assert_eq!(doc["stranded_stacks"][0]["attempts"], 5, "{doc}");
    assert_eq!(
        doc["needs_attention"].as_array().map(Vec::len),
        Some(1),
        "{doc}"
    );
    let list = state.unstrand("nextcloud").expect("unstrand");
    assert!(list.stacks.is_empty());
    let out = world.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// SPEC §5 `status`, issue 18: a `killed` or `live` capture in the newest cycle needs a person
/// (exit 1, named in `needs_attention` with its verdict and container); every stack's verdict
/// is printed; an older cycle's dirty capture no longer calls for anyone.
#[test]
fn status_names_a_killed_or_live_capture_of_the_newest_cycle() {
    let world = World::new("");
    let t0 = hours_ago(3);
    let mut dirty = record(
        "c-dirty",
        t0,
        felhom_marker::Outcome::Done,
        vec![
            stack("nextcloud", t0, [Some(0), Some(900), Some(4_000)]),
            stack("immich", t0, [Some(0), Some(300), Some(3_000)]),
        ],
    );
    dirty.stacks[0].capture = felhom_marker::Capture::Killed;
    dirty.stacks[0].facts = vec![felhom_marker::ContainerFact {
        container: "nextcloud-db-1".into(),
        service: "db".into(),
        fact: felhom_marker::Fact::Killed,
        at: Some(t0 + chrono::TimeDelta::milliseconds(900)),
    }];
    append(&world, &dirty);
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("not app-consistent for nextcloud killed (nextcloud-db-1 killed)"),
        "{said}"
    );
    assert!(said.contains("KILLED nextcloud"), "{said}");
    for (stack, capture) in [("nextcloud", "killed"), ("immich", "clean")] {
        let line = said
            .lines()
            .find(|l| l.trim_start().starts_with(stack) && l.contains("capture"))
            .unwrap_or_else(|| panic!("no line for {stack}: {said}"));
        assert!(line.contains(&format!("capture {capture}")), "{line}");
    }
    let out = world.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let attention = doc["needs_attention"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(attention.len(), 1, "{doc}");
    assert!(
        attention[0]
            .as_str()
            .is_some_and(|a| a.contains("nextcloud killed")),
        "{doc}"
    );
    assert_eq!(doc["history"][0]["stacks"][0]["capture"], "killed", "{doc}");
    // A clean cycle since: nothing needs a person.
    let t1 = hours_ago(1);
    append(
        &world,
        &record(
            "c-clean",
            t1,
            felhom_marker::Outcome::Done,
            vec![stack("nextcloud", t1, [Some(0), Some(900), Some(4_000)])],
        ),
    );
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn spawn_run(world: &World, socket: &Path, watchdog_usec: Option<u64>) -> Running {
    let mut cmd = world.command(&["run"]);
    cmd.env("NOTIFY_SOCKET", socket);
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec.to_string());
    }
    Running::spawn(cmd)
}

/// SPEC §7: `READY=1` once the status listener is up and the loop runs — its first work, the
/// crash recovery, shown by `STATUS=` and `felhom_recovering` — even while an engine that is
/// away keeps that recovery waiting; `STOPPING=1` and `EXTEND_TIMEOUT_USEC` from the first
/// signal on, also during that recovery. No watchdog fed unasked.
#[test]
fn ready_comes_with_the_listener_while_the_recovery_waits_for_an_engine_away_at_boot() {
    let world = World::new("127.0.0.1:0");
    // A crashed cycle's marker naming a stack, and an engine that does not answer.
    let state = StateDir::open(world.state()).expect("state");
    let stacks = vec![MarkedStack::new("notes", vec!["app".into()], vec![])];
    state
        .save(&Marker::new("c-boot", hours_ago(1), stacks))
        .expect("marker");
    let mut sd = Notifications::bind();
    let mut cmd = world.command(&["run"]);
    cmd.env("NOTIFY_SOCKET", &sd.path).env(
        "DOCKER_HOST",
        format!("unix://{}/no-engine.sock", world.dir.path().display()),
    );
    let mut run = Running::spawn(cmd);
    let port = run.endpoint_port();
    let ready = sd.wait_for("READY=1", HANG);
    let recovering = sd.wait_for("STATUS=recovering", HANG);
    // The listener answers, and says the recovery runs and waits for the engine.
    wait_metric(port, "felhom_recovering 1");
    let metrics = wait_metric(port, "felhom_engine_reachable 0");
    let status = http_get(port, "/status").expect("/status answers");
    // No watchdog asked for: none fed, across more than one tick of the loop (10 s).
    let fed = sd.wait_for("WATCHDOG=1", Duration::from_secs(12));
    let alive = run.is_running();
    let (code, log) = run.stop();
    assert!(ready.is_some(), "no READY=1: {:?}\n{log}", sd.seen);
    assert!(recovering.is_some(), "no STATUS=recovering: {:?}", sd.seen);
    assert!(
        metrics.contains("felhom_marker_age_seconds 36"),
        "{metrics}"
    );
    assert!(status.contains("\"recovering\":true"), "{status}");
    assert!(
        fed.is_none(),
        "WATCHDOG=1 without WATCHDOG_USEC: {:?}",
        sd.seen
    );
    assert!(alive, "the daemon waits for the engine: {log}");
    assert!(
        sd.wait_for("STOPPING=1", HANG).is_some(),
        "no STOPPING=1 on a SIGTERM during the recovery: {:?}\n{log}",
        sd.seen
    );
    assert!(
        sd.wait_for("EXTEND_TIMEOUT_USEC=30000000", HANG).is_some(),
        "no EXTEND_TIMEOUT_USEC after STOPPING=1: {:?}",
        sd.seen
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(
        world.marker().exists(),
        "the engine never answered: the marker is kept for the next start: {log}"
    );
}

#[test]
fn the_watchdog_is_fed_by_the_loop_at_the_asked_interval() {
    let world = World::new("");
    let mut sd = Notifications::bind();
    // 20 s: fed every 10 s, which the loop's tick (at most 10 s apart) can keep.
    let child = spawn_run(&world, &sd.path.clone(), Some(20_000_000));
    let first = sd.wait_for("WATCHDOG=1", HANG);
    let second = sd.wait_for("WATCHDOG=1", HANG);
    let (code, stderr) = child.stop();
    let (Some(first), Some(second)) = (first, second) else {
        panic!("the watchdog was not fed twice: {:?}\n{stderr}", sd.seen);
    };
    let gap = second - first;
    // Not flooded (a burst of ticks feeds once per half interval), nor late past WATCHDOG_USEC.
    assert!(
        gap >= Duration::from_secs(4) && gap < Duration::from_secs(20),
        "WATCHDOG=1 {gap:?} apart: {:?}",
        sd.seen
    );
    assert!(!stderr.contains("raise WatchdogSec"), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn check_shows_the_notify_targets_without_their_secrets() {
    let world = World::new("");
    world.add_config(
        "[notify]\nwebhook = \"https://hooks.example.net/s3cr3t-hook?token=t0k3n\"\n\
         events = [\"failed\", \"done\"]\n",
    );
    let out = world.run(&["check"]);
    let all = text(&out);
    assert!(
        all.contains(
            "notify: webhook https://hooks.example.net/…, ntfy off, ping off; events: failed, done"
        ),
        "{all}"
    );
    assert!(!all.contains("s3cr3t") && !all.contains("t0k3n"), "{all}");
}

// `status --svg FILE`: the newest cycle of a history written by the marker crate's own store,
// drawn as a picture that is well-formed XML with one bar per stack; and the two ways it
// cannot draw (no cycle yet, a file it cannot write), each an error that says why.

fn append(world: &World, record: &felhom_marker::CycleRecord) {
    let state = StateDir::open(world.state()).expect("state");
    felhom_marker::HistoryStore::append(&state, record).expect("append");
}

fn status_svg(world: &World, args: &[&str], svg: &Path) -> Output {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    all.push("--svg");
    let svg = svg.to_str().expect("a UTF-8 temp path");
    all.push(svg);
    world.run(&all)
}

fn stack(name: &str, t0: DateTime<Utc>, times_ms: [Option<i64>; 3]) -> felhom_marker::StackRecord {
    let at = |ms: Option<i64>| ms.map(|ms| t0 + chrono::TimeDelta::milliseconds(ms));
    let [stop, stopped, started] = times_ms;
    felhom_marker::StackRecord {
        name: name.into(),
        services: vec!["app".into()],
        stop_started_at: at(stop),
        stopped_at: at(stopped),
        started_at: at(started),
        downtime_ms: stop
            .zip(started)
            .and_then(|(a, b)| u64::try_from(b - a).ok()),
        capture: felhom_marker::Capture::Clean,
        facts: Vec::new(),
        stop_order: 0,
        by_service: Vec::new(),
        label_errors: Vec::new(),
    }
}

fn record(
    id: &str,
    t0: DateTime<Utc>,
    outcome: felhom_marker::Outcome,
    stacks: Vec<felhom_marker::StackRecord>,
) -> felhom_marker::CycleRecord {
    felhom_marker::CycleRecord {
        cycle_id: id.into(),
        started_at: t0,
        finished_at: t0 + chrono::TimeDelta::milliseconds(9_000),
        outcome,
        backup_id: Some(format!("b-{id}")),
        snapshot_at: Some(t0 + chrono::TimeDelta::milliseconds(1_500)),
        agent_phase: None,
        stacks,
        stranded: Vec::new(),
        waiting_for_engine: Vec::new(),
        errors: Vec::new(),
    }
}

/// The elements whose `class` contains `class`.
fn count_class(doc: &roxmltree::Document<'_>, class: &str) -> usize {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|w| w == class))
        })
        .count()
}

#[test]
fn status_svg_draws_the_newest_cycle_of_the_history() {
    let world = World::new("");
    let t0 = Utc::now() - chrono::TimeDelta::hours(2);
    let older = record(
        "c-older",
        t0,
        felhom_marker::Outcome::Done,
        vec![stack(
            "only-in-the-older",
            t0,
            [Some(0), Some(100), Some(900)],
        )],
    );
    append(&world, &older);
    let t1 = t0 + chrono::TimeDelta::hours(1);
    let mut newest = record(
        "c-newest",
        t1,
        felhom_marker::Outcome::Done,
        vec![
            stack("notes", t1, [Some(50), Some(300), Some(2_100)]),
            // A name that would break a document that did not escape it.
            stack("<photos & co>", t1, [Some(60), Some(250), Some(2_300)]),
            stack("immich", t1, [Some(70), Some(400), None]),
        ],
    );
    newest.stranded = vec!["immich".into()];
    append(&world, &newest);

    let svg = world.dir.path().join("cycle.svg");
    let out = status_svg(&world, &[], &svg);
    // The state directory strands nothing, so nothing needs a person: exit 0.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("picture:  {} (cycle c-newest)", svg.display())),
        "{}",
        text(&out)
    );
    let picture = std::fs::read_to_string(&svg).expect("the picture was written");
    let doc = roxmltree::Document::parse(&picture).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // One bar per stack of the newest cycle, the stranded one marked as never back.
    assert_eq!(count_class(&doc, "down"), 3, "{picture}");
    assert_eq!(count_class(&doc, "stranded"), 1, "{picture}");
    assert_eq!(count_class(&doc, "mark"), 3, "{picture}");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for wanted in [
        "cycle c-newest: done",
        "<photos & co>",
        "never came back",
        "snapshot +1.50 s",
        "cycle ended: done +9.00 s",
        "2.05 s",
    ] {
        assert!(texts.contains(&wanted), "no {wanted:?} in {texts:?}");
    }
    assert!(!picture.contains("only-in-the-older"), "{picture}");

    // With --json the picture is written too, and stdout stays one JSON document.
    std::fs::remove_file(&svg).expect("remove");
    let out = status_svg(&world, &["--json"], &svg);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON alone");
    assert!(svg.exists());
}

#[test]
fn status_svg_says_why_it_cannot_draw() {
    let world = World::new("");
    let svg = world.dir.path().join("cycle.svg");
    let out = status_svg(&world, &[], &svg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the history holds no cycle yet"),
        "{}",
        text(&out)
    );
    assert!(!svg.exists());

    let t0 = Utc::now();
    let mut bounded = record("c-bounded", t0, felhom_marker::Outcome::Bounded, Vec::new());
    bounded.finished_at = t0 + chrono::TimeDelta::milliseconds(1_800_200);
    append(&world, &bounded);
    let nowhere = world.dir.path().join("no-such-dir").join("cycle.svg");
    let out = status_svg(&world, &[], &nowhere);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("writing {}", nowhere.display())),
        "{}",
        text(&out)
    );

    // A cycle that stopped nothing still draws, with its bound.
    let out = status_svg(&world, &[], &svg);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let picture = std::fs::read_to_string(&svg).expect("written");
    let doc = roxmltree::Document::parse(&picture).expect("well-formed XML");
    assert_eq!(count_class(&doc, "down"), 0);
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.contains(&"no stack was stopped"), "{texts:?}");
    assert!(texts.contains(&"max_quiesce +1800 s"), "{texts:?}");
}

/// `recover --if-stale` ages a marker by the wall clock; a clock set back since the marker
/// was written makes it look younger than it is, or dated in the future. A marker that no
/// live process holds is a dead process's whatever its date (the lock dies with its
/// holder): one from the future is recovered, not left for the clock to catch up.
#[test]
fn recover_if_stale_recovers_a_marker_from_the_future_that_nobody_holds() {
    let world = World::new("");
    world.write_marker(Utc::now() + chrono::Duration::hours(2));
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ahead of this clock"), "{}", text(&out));
    assert_recovered_if_stale(&world);
}

fn stranded(name: &str) -> StrandedStack {
    StrandedStack {
        name: name.into(),
        services: vec!["app".into()],
        cycle_id: "c-1".into(),
        since: Utc::now(),
        attempts: 5,
        last_error: "no such image".into(),
        given_up: None,
        containers: vec![],
    }
}

/// SPEC §5 `forget <stack>`: a stranded stack taken down on purpose leaves the state, under
/// the cycle lock (it waits while a cycle or a recovery holds it); a stack that is not
/// stranded is exit 1, and changes nothing.
#[test]
fn forget_drops_a_stranded_stack_under_the_lock_and_refuses_one_that_is_not() {
    let world = World::new("");
    let state = StateDir::open(world.state()).expect("state");
    let _ = state
        .strand(&[stranded("nextcloud"), stranded("wiki")])
        .expect("strand");
    // A recovery (here: this test) holds the lock: `forget` waits for it.
    let lock = StateLock::acquire(&state).expect("lock");
    let mut forget = Running::spawn(world.command(&["forget", "nextcloud"]));
    forget.wait_line("waiting for the cycle lock");
    assert_eq!(state.stranded().expect("reads").stacks.len(), 2);
    drop(lock);
    let (code, log) = forget.finish();
    assert_eq!(code, Some(0), "{log}");
    let left: Vec<String> = state
        .stranded()
        .expect("reads")
        .stacks
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(left, ["wiki"]);
    let out = world.run(&["forget", "nextcloud"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("nextcloud is not stranded"),
        "{}",
        text(&out)
    );
    let out = world.run(&["forget", "wiki"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Nothing is stranded any more: nothing needs a person.
    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A gap between cycles below the floor (`MIN_CYCLE_GAP`, 5 min) is not what the controller
/// does: `check` and the daemon's start say so, naming the key.
#[test]
fn a_cycle_gap_below_the_floor_is_said_by_check_and_at_the_daemons_start() {
    let world = World::new("");
    let mut check = world.command(&["check"]);
    check
        .env("FELHOM_QUIESCE__MIN_CYCLE_INTERVAL", "1m")
        .env("FELHOM_QUIESCE__FAILURE_COOLDOWN", "2m");
    let out = check.output().expect("check runs");
    let all = text(&out);
    for key in [
        "quiesce.min_cycle_interval = 1m",
        "quiesce.failure_cooldown = 2m",
    ] {
        assert!(
            all.contains(&format!("note: {key} is below the floor of 5m")),
            "{all}"
        );
    }
    let (mut sd, mut run) = common::daemon(
        &world.config,
        &[("FELHOM_QUIESCE__MIN_CYCLE_INTERVAL", "1m")],
    );
    run.wait_line("quiesce.min_cycle_interval = 1m is below the floor of 5m");
    assert!(sd.wait_for("READY=1", HANG).is_some(), "{:?}", sd.seen);
    let (code, log) = run.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        !log.contains("quiesce.failure_cooldown"),
        "at the floor already: {log}"
    );
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Before (issue 19): `recover` and `run` refused a state directory of any mode but 0700
/// (`… of mode 0770; expected …`) and exited, the marker's apps down; the daemon
/// crash-looped.
#[test]
fn a_state_dir_others_may_write_is_recovered_and_refusing_cycles_is_shown() {
    let world = World::new("127.0.0.1:0");
    world.write_marker(Utc::now());
    let state = world.state();
    chmod(&state, 0o770);

    assert_recovered_by(&world, &["recover"]);

    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("no new cycle starts")
            && said.contains(&*state.to_string_lossy())
            && said.contains("of mode 0770 (writable by its group)"),
        "{said}"
    );

    // The daemon stays up, says it once, and sees the fix without a restart.
    let (_sd, mut running) = common::daemon(&world.config, &[]);
    let port = running.endpoint_port();
    wait_metric(port, "felhom_cycles_refused 1");
    running.wait_line("no new cycle starts until the state directory is fixed");
    chmod(&state, 0o700);
    wait_metric(port, "felhom_cycles_refused 0");
    assert!(running.is_running(), "{}", running.text());
    let (code, log) = running.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// Before (issue 19): the lock probe's error was taken for a live holder (`held by pid
/// unknown (…)`) and the timer's `recover --if-stale` exited 0 every five minutes, the
/// marker's apps down.
#[test]
fn recover_if_stale_fails_loudly_when_the_lock_cannot_be_opened() {
    let world = World::new("");
    world.write_marker(hours_ago(2));
    let elsewhere = world.dir.path().join("elsewhere");
    std::fs::write(&elsewhere, b"").expect("a file");
    std::os::unix::fs::symlink(&elsewhere, world.state().join("lock")).expect("a planted link");

    let out = world.run(&["recover", "--if-stale"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("the cycle lock cannot be taken") && said.contains("symbolic link"),
        "{said}"
    );
    assert!(world.marker().exists());

    let out = world.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("who holds the lock cannot be told"),
        "{}",
        text(&out)
    );
}
