//! The state directory on a file system that refuses writes: read-only, and full. Saves fail
//! cleanly; the lock is still taken and a damaged marker or stranded list still salvaged, so
//! that a marker's stacks come back although it cannot be removed. Both are real tmpfs mounts,
//! because the tests run as root, and root writes through permission bits.

mod common;

use common::{full_marker, names_in, record};
use felhom_marker::{
    HistoryStore, LockError, MarkerError, MarkerStore, StateDir, StateLock, StrandedStore,
};
use felhom_testsupport::tmpfs::Tmpfs;
use std::path::Path;

fn assert_io_error_in(dir: &Path, result: Result<(), MarkerError>, action: &str) {
    match &result {
        Err(
            err @ MarkerError::Io {
                action: got,
                path,
                source,
            },
        ) => {
            assert_eq!(*got, action);
            assert!(
                path.starts_with(dir),
                "{} is in {}",
                path.display(),
                dir.display()
            );
            assert_cause_only_in_source(err, source);
        }
        other => panic!("expected an Io error while {action}, got {other:?}"),
    }
}

/// The error convention of the felhom crates: the message says what went wrong, and the OS
/// error is its `source()`, not also part of the message (a chain printer shows it once).
fn assert_cause_only_in_source(err: &MarkerError, cause: &std::io::Error) {
    let (shown, cause_text) = (err.to_string(), cause.to_string());
    assert!(
        !shown.contains(&cause_text),
        "{shown:?} repeats {cause_text:?}"
    );
    let source = std::error::Error::source(err).map(ToString::to_string);
    assert_eq!(source, Some(cause_text));
}

#[test]
fn on_a_read_only_file_system_writes_fail_and_the_marker_is_intact() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=1m,mode=0755");
    let dir = fs.path.join("state");
    let state = StateDir::open(&dir).expect("the state dir opens");
    let before = full_marker("cycle-before");
    state
        .save(&before)
        .expect("the marker saves while writable");
    state
        .append(&record("cycle-before"))
        .expect("the history appends while writable");

    fs.remount_read_only();

    let err = state
        .save(&full_marker("cycle-after"))
        .expect_err("a save on a read-only file system fails");
    assert!(
        err.to_string().contains(&*dir.to_string_lossy()),
        "the error names the path: {err}"
    );
    assert_io_error_in(&dir, Err(err), "creating the marker's temp file");
    assert_eq!(state.load().expect("the marker loads"), Some(before));

    match state.clear() {
        Err(err @ MarkerError::Stuck { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains(&*dir.join("marker.json").to_string_lossy())
                    && message.contains("cannot be removed"),
                "one clear error naming the marker: {message}"
            );
            if let MarkerError::Stuck { source, .. } = &err {
                assert_eq!(source.raw_os_error(), Some(30), "EROFS: {source}");
                assert_cause_only_in_source(&err, source);
            }
        }
        other => panic!("expected Stuck, got {other:?}"),
    }
    assert!(
        dir.join("marker.json").exists(),
        "a failed clear keeps the marker"
    );

    assert_io_error_in(
        &dir,
        state.append(&record("cycle-after")),
        "opening the history",
    );
    let history = state.recent(10).expect("the history reads");
    assert_eq!(history, vec![record("cycle-before")]);

    match StateDir::open(fs.path.join("other")) {
        Err(MarkerError::Io { action, path, .. }) => {
            assert_eq!(action, "creating the state directory");
            assert_eq!(path, fs.path.join("other"));
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
}

#[test]
fn on_a_full_file_system_a_save_fails_cleanly_and_the_marker_is_intact() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=64k,mode=0755");
    let dir = fs.path.join("state");
    let state = StateDir::open(&dir).expect("the state dir opens");
    let before = full_marker("cycle-before");
    state
        .save(&before)
        .expect("the marker saves while there is room");

    let filler_path = fs.fill();

    let after = full_marker("cycle-after");
    assert_io_error_in(&dir, state.save(&after), "writing the marker's temp file");
    assert_eq!(state.load().expect("the marker loads"), Some(before));
    assert_eq!(
        names_in(&dir),
        vec!["marker.json"],
        "the failed save left no temp file"
    );

    std::fs::remove_file(&filler_path).expect("the filler is removed");
    // The kernel may hand the filler's pages back to the tmpfs a moment after the unlink:
    // wait (bounded) for the room, then the save must succeed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut saved = state.save(&after);
    while saved.is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        saved = state.save(&after);
    }
    saved.expect("the marker saves once there is room");
    assert_eq!(state.load().expect("the marker loads"), Some(after));
}

#[test]
fn on_a_read_only_file_system_the_lock_is_still_taken_and_single_flight() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=1m,mode=0755");
    let with_file = StateDir::open(fs.path.join("with-lock-file")).expect("opens");
    drop(StateLock::acquire(&with_file).expect("the lock file is made"));
    let without_file = StateDir::open(fs.path.join("without-lock-file")).expect("opens");

    fs.remount_read_only();

    // Before: `LockError::Io` ("Read-only file system"), which the cycle took for a holder:
    // the marker's stacks were never started.
    for state in [&with_file, &without_file] {
        let held = StateLock::acquire(state)
            .unwrap_or_else(|e| panic!("{}: the lock is taken: {e}", state.path().display()));
        match StateLock::acquire(state) {
            Err(LockError::Held { .. }) => {}
            other => panic!("a second taker is refused as ever, got {other:?}"),
        }
        drop(held);
        drop(StateLock::acquire(state).expect("free again once dropped"));
    }
    assert!(
        !without_file.path().join("lock").exists(),
        "nothing was created"
    );
}

#[test]
fn on_a_full_file_system_the_lock_is_taken_though_its_pid_cannot_be_written() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=64k,mode=0755");
    let state = StateDir::open(fs.path.join("state")).expect("opens");
    fs.fill();
    // Before: the pid's write failed with ENOSPC after the lock was had, and the lock was
    // given up as an I/O error.
    let _lock = StateLock::acquire(&state).expect("the lock is taken");
    assert!(matches!(
        StateLock::acquire(&state),
        Err(LockError::Held { .. })
    ));
}

#[test]
fn on_a_read_only_file_system_a_damaged_marker_is_salvaged_in_place() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=1m,mode=0755");
    let dir = fs.path.join("state");
    StateDir::open(&dir).expect("opens");
    let whole = serde_json::to_string_pretty(&full_marker("cycle-ro")).expect("serializes");
    // Cut inside the second stack's entry, as a crash of the disk would.
    let cut = &whole.as_bytes()[..whole.find("\"immich\"").expect("the second stack") + 4];
    std::fs::write(dir.join("marker.json"), cut).expect("the damaged marker");
    // And a temp file of a writer that died mid-save (pid 0 is never alive).
    std::fs::write(dir.join(".marker.json.tmp-0-1"), b"{").expect("a dead temp file");

    fs.remount_read_only();

    // Before: the open failed removing the temp file; and the load moved the marker before
    // salvaging it, so that on a read-only file system nothing was salvaged at all.
    let state = StateDir::open(&dir).expect("a read-only state dir opens");
    for load in 1..=2 {
        let marker = state
            .load()
            .expect("a damaged marker loads as a salvage")
            .expect("a marker");
        let names: Vec<&str> = marker.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["nextcloud"], "load {load}: the readable stack");
        assert_eq!(marker.cycle_id, "cycle-ro");
        let salvage = marker.salvage.expect("the salvage is told");
        assert_eq!(salvage.unreadable_stacks, 1);
        let why = salvage
            .moved
            .moved_to
            .clone()
            .expect_err("it cannot be moved");
        assert!(why.contains("Read-only file system"), "{why}");
        let message = salvage.to_string();
        assert!(
            message.contains("could not be moved aside") && message.contains("stays where it is"),
            "{message}"
        );
    }
    assert_eq!(
        std::fs::read(dir.join("marker.json")).expect("still there"),
        cut,
        "left as it was"
    );
    assert!(matches!(state.clear(), Err(MarkerError::Stuck { .. })));
}

#[test]
fn on_a_full_file_system_a_damaged_marker_is_salvaged_and_left_as_it_is() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=64k,mode=0755");
    let dir = fs.path.join("state");
    let state = StateDir::open(&dir).expect("opens");
    let bytes = br#"{"version": 9, "cycle_id": "c-new", "stacks": [{"name": "wiki", "services": ["app"]}]}"#;
    std::fs::write(dir.join("marker.json"), bytes).expect("a marker of a newer build");
    fs.fill();

    let marker = state.load().expect("loads").expect("a salvage");
    assert_eq!(marker.stacks.len(), 1);
    assert_eq!(marker.stacks[0].name, "wiki");
    let why = marker
        .salvage
        .expect("told")
        .moved
        .moved_to
        .expect_err("no room for a copy");
    assert!(why.contains("No space left on device"), "{why}");
    assert_eq!(
        std::fs::read(dir.join("marker.json")).expect("still there"),
        bytes
    );
    assert_eq!(names_in(&dir), ["marker.json"], "no copy or temp file left");
}

#[test]
fn on_a_read_only_file_system_a_damaged_stranded_list_is_salvaged_in_place() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=1m,mode=0755");
    let dir = fs.path.join("state");
    StateDir::open(&dir).expect("opens");
    let bytes = br#"{"version": 1, "stacks": [{"name": "wiki", "services": ["app"], "attempts": 7}, {"name": "pho"#;
    std::fs::write(dir.join("stranded.json"), bytes).expect("a cut stranded list");

    fs.remount_read_only();

    let state = StateDir::open(&dir).expect("opens");
    for read in 1..=2 {
        let list = state.stranded().expect("a damaged list still reads");
        assert_eq!(list.stacks.len(), 1, "read {read}");
        assert_eq!(list.stacks[0].name, "wiki");
        assert_eq!(list.stacks[0].attempts, 7);
        let moved = list.moved_aside.expect("the damage is told");
        let why = moved.moved_to.expect_err("it cannot be moved");
        assert!(why.contains("Read-only file system"), "{why}");
    }
    assert_eq!(
        std::fs::read(dir.join("stranded.json")).expect("still there"),
        bytes
    );
}
