//! The read-only view of a state directory on real files: it reads what the writer wrote, in
//! directories of any owner and mode, and never changes a thing — no directory created, no
//! temp file removed, no damaged file moved aside, no lock file made.

mod common;

use common::{full_marker, names_in, record};
use felhom_marker::{
    HistoryStore, MarkerError, MarkerStore, StateDir, StateLock, StateView, StrandedStack,
    StrandedStore, Unreadable,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn stranded(name: &str) -> StrandedStack {
    StrandedStack {
        name: name.into(),
        services: vec!["app".into()],
        cycle_id: "cycle-9".into(),
        since: chrono::Utc::now(),
        attempts: 5,
        last_error: "container app exited (1)".into(),
        given_up: None,
        containers: vec![],
    }
}

/// A state directory as its writer leaves it mid-cycle: a marker, two records, a stranded
/// stack, and the temp file of a writer that died mid-save (pid 0 is never alive).
fn written(parent: &Path) -> std::path::PathBuf {
    let dir = parent.join("state");
    let state = StateDir::open(&dir).expect("the writer opens it");
    state.save(&full_marker("cycle-7")).expect("saves");
    state.append(&record("cycle-5")).expect("appends");
    state.append(&record("cycle-6")).expect("appends");
    let _ = state.strand(&[stranded("wiki")]).expect("strands");
    std::fs::write(dir.join(".marker.json.tmp-0-3"), b"{\"half\": ").expect("a dead temp");
    dir
}

/// What `dir` holds and how it is set: names, and each entry's mode and size.
fn snapshot(dir: &Path) -> Vec<(String, u32, u64)> {
    let mut all = vec![(".".to_owned(), mode(dir), 0)];
    for name in names_in(dir) {
        let meta = std::fs::symlink_metadata(dir.join(&name)).expect("metadata");
        all.push((name, meta.mode() & 0o7777, meta.len()));
    }
    all
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").mode() & 0o7777
}

/// Reads everything the view offers and checks it against what [`written`] wrote.
fn read_all(view: &StateView) {
    let marker = view.marker().expect("reads").expect("a marker");
    assert_eq!(marker.marker, full_marker("cycle-7"));
    assert_eq!(marker.damaged, None);
    let history = view.history(10).expect("reads");
    let ids: Vec<&str> = history.iter().map(|r| r.cycle_id.as_str()).collect();
    assert_eq!(ids, ["cycle-5", "cycle-6"]);
    assert_eq!(view.history(1).expect("reads").len(), 1, "the last n only");
    let list = view.stranded().expect("reads");
    assert_eq!(list.stacks.len(), 1);
    assert_eq!(list.stacks[0].name, "wiki");
    assert_eq!(view.lock_holder().expect("probes"), None);
}

#[test]
fn a_view_reads_dirs_of_other_modes_and_changes_nothing() {
    let tmp = common::private_dir();
    for dir_mode in [0o750, 0o500, 0o755, 0o700] {
        let parent = tmp.path().join(format!("m{dir_mode:o}"));
        std::fs::create_dir(&parent).expect("mkdir");
        let dir = written(&parent);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode)).expect("chmod");
        let before = snapshot(&dir);
        let view = StateView::open(&dir).expect("the view opens it");
        assert_eq!(view.path(), dir);
        read_all(&view);
        assert_eq!(
            snapshot(&dir),
            before,
            "mode {dir_mode:o}: nothing created, removed or changed (the dead writer's temp \
             file stays, no lock file is made)"
        );
    }
}

#[test]
fn a_view_reads_a_dir_of_another_user() {
    let tmp = common::private_dir();
    let dir = written(tmp.path());
    let me = std::fs::metadata(&dir).expect("metadata").uid();
    let other = me + 4242;
    for entry in std::fs::read_dir(&dir).expect("lists") {
        std::os::unix::fs::chown(entry.expect("entry").path(), Some(other), Some(other))
            .expect("chown works (the tests run as root, as the controller does)");
    }
    std::os::unix::fs::chown(&dir, Some(other), Some(other)).expect("chown");
    let before = snapshot(&dir);
    let view = StateView::open(&dir).expect("the view opens it");
    read_all(&view);
    assert!(
        matches!(
            view.fit_for_new_cycles(),
            Err(MarkerError::UnsafeStateDir { .. })
        ),
        "another owner's directory is not fit for new cycles"
    );
    assert_eq!(snapshot(&dir), before);
    assert_eq!(std::fs::metadata(&dir).expect("metadata").uid(), other);
}

#[test]
fn a_missing_dir_is_seen_empty_and_not_created_and_a_file_or_link_is_refused() {
    let tmp = common::private_dir();
    let missing = tmp.path().join("missing");
    let view = StateView::open(&missing).expect("a state dir not made yet");
    assert_eq!(view.marker().expect("reads"), None);
    assert!(view.history(10).expect("reads").is_empty());
    assert_eq!(view.stranded().expect("reads"), Default::default());
    assert_eq!(view.lock_holder().expect("probes"), None);
    assert!(!missing.exists(), "never created");

    let file = tmp.path().join("file");
    std::fs::write(&file, b"not a directory").expect("a file");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(common::private_subdir(tmp.path(), "real"), &link).expect("link");
    for (path, found) in [(&file, "not a directory"), (&link, "a symbolic link")] {
        match StateView::open(path) {
            Err(MarkerError::UnsafeStateDir {
                path: p, found: f, ..
            }) => {
                assert_eq!(&p, path);
                assert_eq!(f, found);
            }
            other => panic!("expected UnsafeStateDir for {found}, got {other:?}"),
        }
    }
}

#[test]
fn an_empty_state_dir_has_no_marker_history_stranded_stack_or_holder() {
    let tmp = common::private_dir();
    let view = StateView::open(tmp.path()).expect("opens");
    assert_eq!(view.marker().expect("reads"), None);
    assert!(view.history(10).expect("reads").is_empty());
    assert_eq!(view.stranded().expect("reads"), Default::default());
    assert_eq!(view.lock_holder().expect("probes"), None);
    assert!(
        names_in(tmp.path()).is_empty(),
        "the probe made no lock file"
    );
}

#[test]
fn a_damaged_marker_is_read_as_a_load_salvages_it_and_left_in_place() {
    let tmp = common::private_dir();
    let view = StateView::open(tmp.path()).expect("opens");
    let path = tmp.path().join("marker.json");
    let cut = br#"{"version": 1, "cycle_id": "c-9", "phase": "backing_up", "started_at": "2026-11-26T19:10:00Z", "pid": 4, "stacks": [{"name": "wiki", "services": ["db", "app"]}, {"name": "BAD!", "services": ["x"]}, {"name": "pho"#;
    let newer =
        br#"{"version": 7, "cycle_id": "c-10", "stacks": [{"name": "wiki", "services": ["app"]}]}"#;
    for (bytes, unreadable) in [(&cut[..], 2), (&newer[..], 0)] {
        std::fs::write(&path, bytes).expect("written");
        let seen = view.marker().expect("reads").expect("a marker");
        let names: Vec<&str> = seen.marker.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["wiki"]);
        assert_eq!(seen.unreadable_stacks, unreadable);
        assert_eq!(seen.marker.salvage, None, "nothing was moved");
        match (&seen.damaged, bytes == &newer[..]) {
            (Some(Unreadable::UnknownVersion { version: 7, .. }), true) => {}
            (Some(Unreadable::Corrupt { .. }), false) => {
                assert_eq!(seen.marker.cycle_id, "c-9");
                assert_eq!(seen.marker.pid, 4);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(std::fs::read(&path).expect("still there"), bytes);
        assert_eq!(names_in(tmp.path()), ["marker.json"], "nothing moved aside");
    }

    // The writer's own load then salvages it as usual: the view left it for that.
    let state = StateDir::open(tmp.path()).expect("opens");
    let loaded = state.load().expect("loads").expect("salvaged");
    assert!(loaded.salvage.is_some());
}

#[test]
fn a_damaged_stranded_list_is_read_and_left_in_place() {
    let tmp = common::private_dir();
    let view = StateView::open(tmp.path()).expect("opens");
    let path = tmp.path().join("stranded.json");
    let damaged = br#"{"version": 1, "stacks": [{"name": "wiki", "services": ["app"]}, {"na"#;
    std::fs::write(&path, damaged).expect("written");
    let list = view.stranded().expect("reads");
    assert!(matches!(list.damaged, Some(Unreadable::Corrupt { .. })));
    let names: Vec<&str> = list.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["wiki"]);
    assert_eq!(std::fs::read(&path).expect("still there"), damaged);
    assert_eq!(names_in(tmp.path()), ["stranded.json"]);
}

#[test]
fn the_view_names_the_live_holder_of_the_lock() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("opens");
    let view = StateView::open(tmp.path()).expect("opens");
    let lock = StateLock::acquire(&state).expect("taken");
    assert_eq!(
        view.lock_holder().expect("probes"),
        Some(std::process::id().to_string())
    );
    // The probe took nothing: the holder still holds it, and once it lets go it is free.
    assert!(StateLock::acquire(&state).is_err(), "still held");
    drop(lock);
    assert_eq!(view.lock_holder().expect("probes"), None);
    let _again = StateLock::acquire(&state).expect("free after the probes");
}

#[test]
fn a_link_planted_in_the_dir_is_refused_not_followed() {
    let tmp = common::private_dir();
    let elsewhere = tmp.path().join("elsewhere.json");
    std::fs::write(
        &elsewhere,
        serde_json::to_vec(&full_marker("planted")).expect("serializes"),
    )
    .expect("written");
    let dir = common::private_subdir(tmp.path(), "state");
    for name in ["marker.json", "history.jsonl", "stranded.json", "lock"] {
        std::os::unix::fs::symlink(&elsewhere, dir.join(name)).expect("planted");
    }
    let view = StateView::open(&dir).expect("opens");
    assert!(matches!(view.marker(), Err(MarkerError::Symlink { .. })));
    assert!(matches!(view.history(3), Err(MarkerError::Symlink { .. })));
    assert!(matches!(view.stranded(), Err(MarkerError::Symlink { .. })));
    assert!(matches!(
        view.lock_holder(),
        Err(felhom_marker::LockError::Symlink { .. })
    ));
}
