//! The state directory and its files are not a way into the rest of the system: links planted
//! where a state file goes are refused, not followed, and a state directory that is a link or
//! no directory at all is refused with an error naming what was found and what is expected.
//! (A real directory of another mode or owner: `state_dir_modes.rs`.)

mod common;

use common::{full_marker, record};
use felhom_marker::{
    HistoryStore, LockError, MarkerError, MarkerStore, StateDir, StateLock, StrandedStore,
};
use std::os::unix::fs::symlink;
use std::path::Path;

/// A file outside the state directory that a planted link points at; it must never change.
fn victim(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("victim");
    std::fs::write(&path, b"precious\n").expect("the victim file is written");
    path
}

fn assert_untouched(victim: &Path) {
    assert_eq!(
        std::fs::read(victim).expect("the victim is still there"),
        b"precious\n",
        "the link's target was not written"
    );
}

fn state_in(tmp: &Path) -> (StateDir, std::path::PathBuf) {
    let dir = tmp.join("state");
    (StateDir::open(&dir).expect("the state dir opens"), dir)
}

#[test]
fn a_link_where_the_lock_goes_is_refused() {
    let tmp = common::private_dir();
    let (state, dir) = state_in(tmp.path());
    let target = victim(tmp.path());
    symlink(&target, dir.join("lock")).expect("the link is planted");

    match StateLock::acquire(&state) {
        Err(err @ LockError::Symlink { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains(&*dir.join("lock").to_string_lossy())
                    && message.contains("symbolic link"),
                "{message}"
            );
        }
        other => panic!("expected Symlink, got {other:?}"),
    }
    match StateLock::holder(&state) {
        Err(LockError::Symlink { path }) => assert_eq!(path, dir.join("lock")),
        other => panic!("expected Symlink from the probe, got {other:?}"),
    }
    assert_untouched(&target);
}

#[test]
fn a_dangling_link_where_the_lock_goes_creates_nothing() {
    let tmp = common::private_dir();
    let (state, dir) = state_in(tmp.path());
    let target = tmp.path().join("created-through-the-link");
    symlink(&target, dir.join("lock")).expect("the link is planted");
    assert!(matches!(
        StateLock::acquire(&state),
        Err(LockError::Symlink { .. })
    ));
    assert!(!target.exists(), "no file was created through the link");
}

#[test]
fn a_link_where_the_history_goes_is_refused_for_append_and_read() {
    let tmp = common::private_dir();
    let (state, dir) = state_in(tmp.path());
    let target = victim(tmp.path());
    symlink(&target, dir.join("history.jsonl")).expect("the link is planted");

    match state.append(&record("cycle-l")) {
        Err(MarkerError::Symlink { path, .. }) => assert_eq!(path, dir.join("history.jsonl")),
        other => panic!("expected Symlink, got {other:?}"),
    }
    match state.recent(5) {
        Err(MarkerError::Symlink { action, path }) => {
            assert_eq!(action, "reading the history");
            assert_eq!(path, dir.join("history.jsonl"));
        }
        other => panic!("expected Symlink, got {other:?}"),
    }
    assert_untouched(&target);
}

#[test]
fn a_link_where_the_marker_or_the_stranded_list_goes_is_not_read() {
    let tmp = common::private_dir();
    let (state, dir) = state_in(tmp.path());
    // A valid marker behind the link: following it would recover stacks someone else chose.
    let elsewhere = tmp.path().join("elsewhere.json");
    std::fs::write(
        &elsewhere,
        serde_json::to_vec(&full_marker("planted")).expect("serializes"),
    )
    .expect("written");
    symlink(&elsewhere, dir.join("marker.json")).expect("the link is planted");
    symlink(&elsewhere, dir.join("stranded.json")).expect("the link is planted");

    match state.load() {
        Err(err @ MarkerError::Symlink { .. }) => {
            assert!(err.to_string().contains("marker.json"), "{err}")
        }
        other => panic!("expected Symlink, got {other:?}"),
    }
    match state.stranded() {
        Err(MarkerError::Symlink { path, .. }) => assert_eq!(path, dir.join("stranded.json")),
        other => panic!("expected Symlink, got {other:?}"),
    }
    // A save replaces the link itself (rename), never writes through it.
    state.save(&full_marker("mine")).expect("the marker saves");
    assert!(!std::fs::symlink_metadata(dir.join("marker.json"))
        .expect("marker.json")
        .file_type()
        .is_symlink());
    assert_eq!(
        state.load().expect("loads").map(|m| m.cycle_id),
        Some("mine".to_owned())
    );
    let planted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&elsewhere).expect("still there")).expect("json");
    assert_eq!(
        planted["cycle_id"], "planted",
        "the link's target is unchanged"
    );
}

#[test]
fn a_state_dir_that_is_a_link_is_refused() {
    let tmp = common::private_dir();
    let real = common::private_subdir(tmp.path(), "real");
    let link = tmp.path().join("state");
    symlink(&real, &link).expect("the link is made");
    let err = StateDir::open(&link).expect_err("a linked state dir is refused");
    match &err {
        MarkerError::UnsafeStateDir { path, found, .. } => {
            assert_eq!(path, &link);
            assert_eq!(found, "a symbolic link");
        }
        other => panic!("expected UnsafeStateDir, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&*link.to_string_lossy()) && message.contains("not a symbolic link"),
        "the error names the path and what is expected: {message}"
    );
}

#[test]
fn a_file_where_the_state_dir_should_be_is_refused_naming_it() {
    let tmp = common::private_dir();
    let path = tmp.path().join("state");
    std::fs::write(&path, b"not a directory").expect("a file");
    let err = StateDir::open(&path).expect_err("a file is not a state dir");
    match &err {
        MarkerError::UnsafeStateDir { path: p, found, .. } => {
            assert_eq!(p, &path);
            assert_eq!(found, "not a directory");
        }
        other => panic!("expected UnsafeStateDir, got {other:?}"),
    }
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}
