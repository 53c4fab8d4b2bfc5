//! `status --svg FILE` through the real binary: the newest cycle of a history written by the
//! marker crate's own store, drawn as a picture that is well-formed XML with one bar per
//! stack; and the two ways it cannot draw (no cycle yet, a file it cannot write), each an
//! error that says why. No agent and no engine are needed.

use chrono::{DateTime, TimeDelta, Utc};
use felhom_marker::{CycleRecord, HistoryStore, Outcome, StackRecord, StateDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_felhom-controller");

/// A config (no agent) and its state directory, made by the store as the daemon would.
struct World {
    dir: tempfile::TempDir,
    config: PathBuf,
    state: StateDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_path = dir.path().join("state");
        let state = StateDir::open(&state_path).expect("state dir");
        let config = dir.path().join("controller.toml");
        std::fs::write(
            &config,
            format!(
                "[stacks]\nroot = \"{}/stacks\"\n[quiesce]\nstate_dir = \"{}\"\n\
                 max_quiesce = \"30s\"\n[status]\nlisten = \"\"\n",
                dir.path().display(),
                state_path.display()
            ),
        )
        .expect("config");
        World { dir, config, state }
    }

    fn status(&self, args: &[&str], svg: &Path) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .arg("status")
            .args(args)
            .arg("--svg")
            .arg(svg)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
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

fn stack(name: &str, t0: DateTime<Utc>, times_ms: [Option<i64>; 3]) -> StackRecord {
    let at = |ms: Option<i64>| ms.map(|ms| t0 + TimeDelta::milliseconds(ms));
    let [stop, stopped, started] = times_ms;
    StackRecord {
        name: name.into(),
        services: vec!["app".into()],
        stop_started_at: at(stop),
        stopped_at: at(stopped),
        started_at: at(started),
        downtime_ms: stop
            .zip(started)
            .and_then(|(a, b)| u64::try_from(b - a).ok()),
    }
}

fn record(id: &str, t0: DateTime<Utc>, outcome: Outcome, stacks: Vec<StackRecord>) -> CycleRecord {
    CycleRecord {
        cycle_id: id.into(),
        started_at: t0,
        finished_at: t0 + TimeDelta::milliseconds(9_000),
        outcome,
        backup_id: Some(format!("b-{id}")),
        snapshot_at: Some(t0 + TimeDelta::milliseconds(1_500)),
        agent_phase: None,
        stacks,
        stranded: Vec::new(),
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
    let world = World::new();
    let t0 = Utc::now() - TimeDelta::hours(2);
    let older = record(
        "c-older",
        t0,
        Outcome::Done,
        vec![stack(
            "only-in-the-older",
            t0,
            [Some(0), Some(100), Some(900)],
        )],
    );
    world.state.append(&older).expect("append");
    let t1 = t0 + TimeDelta::hours(1);
    let mut newest = record(
        "c-newest",
        t1,
        Outcome::Done,
        vec![
            stack("notes", t1, [Some(50), Some(300), Some(2_100)]),
            // A name that would break a document that did not escape it.
            stack("<photos & co>", t1, [Some(60), Some(250), Some(2_300)]),
            stack("immich", t1, [Some(70), Some(400), None]),
        ],
    );
    newest.stranded = vec!["immich".into()];
    world.state.append(&newest).expect("append");

    let svg = world.dir.path().join("cycle.svg");
    let out = world.status(&[], &svg);
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
    let out = world.status(&["--json"], &svg);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON alone");
    assert!(svg.exists());
}

#[test]
fn status_svg_says_why_it_cannot_draw() {
    let world = World::new();
    let svg = world.dir.path().join("cycle.svg");
    let out = world.status(&[], &svg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the history holds no cycle yet"),
        "{}",
        text(&out)
    );
    assert!(!svg.exists());

    let t0 = Utc::now();
    let mut bounded = record("c-bounded", t0, Outcome::Bounded, Vec::new());
    bounded.finished_at = t0 + TimeDelta::milliseconds(30_200);
    world.state.append(&bounded).expect("append");
    let nowhere = world.dir.path().join("no-such-dir").join("cycle.svg");
    let out = world.status(&[], &nowhere);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("writing {}", nowhere.display())),
        "{}",
        text(&out)
    );

    // A cycle that stopped nothing still draws, with its bound.
    let out = world.status(&[], &svg);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let picture = std::fs::read_to_string(&svg).expect("written");
    let doc = roxmltree::Document::parse(&picture).expect("well-formed XML");
    assert_eq!(count_class(&doc, "down"), 0);
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.contains(&"no stack was stopped"), "{texts:?}");
    assert!(texts.contains(&"max_quiesce +30.0 s"), "{texts:?}");
}
