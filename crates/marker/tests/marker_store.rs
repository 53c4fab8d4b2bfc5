//! The marker store on real files in temp dirs.

mod common;

use common::{full_marker, names_in};
use felhom_marker::{
    HistoryStore, MarkerError, MarkerPhase, MarkerStore, StateDir, StateLock, FORMAT_VERSION,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("the file exists")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_full_marker_round_trips_and_a_save_replaces_it() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let mut marker = full_marker("cycle-1");
    state.save(&marker).expect("the marker saves");
    assert_eq!(
        state.load().expect("the marker loads"),
        Some(marker.clone())
    );

    marker.phase = MarkerPhase::Resuming;
    marker.stacks[1].restart_attempts = 3;
    state.save(&marker).expect("the marker saves again");
    assert_eq!(
        state.load().expect("the marker loads"),
        Some(marker.clone())
    );

    // A fresh store on the same directory (the next process) reads the same marker.
    let again = StateDir::open(tmp.path()).expect("the state dir opens again");
    assert_eq!(again.load().expect("the marker loads"), Some(marker));
    assert_eq!(
        names_in(tmp.path()),
        vec!["marker.json"],
        "no temp file is left"
    );
}

#[test]
fn the_marker_is_written_in_the_documented_format() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    state
        .save(&full_marker("cycle-f"))
        .expect("the marker saves");
    let bytes = std::fs::read(tmp.path().join("marker.json")).expect("marker.json exists");
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("the marker is JSON");
    assert_eq!(value["version"], u64::from(FORMAT_VERSION));
    assert_eq!(value["cycle_id"], "cycle-f");
    assert_eq!(value["phase"], "backing_up");
    assert_eq!(value["backup_id"], "backup-7f3a");
    assert_eq!(value["pid"], std::process::id());
    assert_eq!(value["stacks"][0]["name"], "nextcloud");
    assert_eq!(value["stacks"][0]["services"][2], "app");
    assert_eq!(value["stacks"][0]["restart_attempts"], 2);
}

#[test]
fn a_new_state_dir_is_0700_and_its_files_0600() {
    let tmp = common::private_dir();
    let dir = tmp.path().join("var/lib/felhom-controller");
    let state = StateDir::open(&dir).expect("the state dir is created");
    assert_eq!(state.path(), dir);
    assert_eq!(mode(&dir), 0o700, "the state dir's mode");

    // The marker is the renamed temp file, so its mode is the one the temp file was created
    // with.
    state
        .save(&full_marker("cycle-m"))
        .expect("the marker saves");
    assert_eq!(mode(&dir.join("marker.json")), 0o600, "marker.json's mode");

    let record = common::record("cycle-m");
    state.append(&record).expect("the history appends");
    assert_eq!(
        mode(&dir.join("history.jsonl")),
        0o600,
        "history.jsonl's mode"
    );

    let _lock = StateLock::acquire(&state).expect("the lock is free");
    assert_eq!(mode(&dir.join("lock")), 0o600, "the lock's mode");
}

#[test]
fn an_existing_state_dir_is_kept_as_it_is() {
    let tmp = common::private_dir();
    let dir = common::private_subdir(tmp.path(), "state");
    std::fs::write(dir.join("notes.txt"), b"the operator's").expect("a foreign file");
    let first = StateDir::open(&dir).expect("the state dir opens");
    first
        .save(&full_marker("cycle-k"))
        .expect("the marker saves");

    let state = StateDir::open(&dir).expect("the state dir opens again");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        std::fs::read(dir.join("notes.txt")).expect("the foreign file is still there"),
        b"the operator's"
    );
    assert_eq!(
        state.load().expect("the marker loads"),
        Some(full_marker("cycle-k"))
    );
}

#[test]
fn leftover_temp_files_are_removed_on_open_and_never_read() {
    let tmp = common::private_dir();
    let dir = tmp.path();
    let marker = serde_json::to_vec(&full_marker("cycle-t")).expect("a marker serializes");
    // Pids above the kernel's maximum (2^22) never run: these writers are gone.
    let dead = [
        ".marker.json.tmp-99999999-0",
        ".marker.json.tmp-99999999-1",
        ".marker.json.tmp-garbage",
        ".history.jsonl.tmp-99999999-4",
        ".stranded.json.tmp-99999999-5",
    ];
    for name in dead {
        std::fs::write(dir.join(name), &marker).expect("a leftover temp file");
    }
    // A writer that is alive (this process) may be mid-save: its temp file is its own.
    let alive = format!(".marker.json.tmp-{}-4000000000", std::process::id());
    std::fs::write(dir.join(&alive), &marker).expect("a live temp file");
    std::fs::write(dir.join("notes.txt"), b"kept").expect("a foreign file");

    let state = StateDir::open(dir).expect("the state dir opens");
    assert_eq!(names_in(dir), vec![alive, "notes.txt".to_owned()]);
    assert_eq!(
        state.load().expect("no marker"),
        None,
        "a temp file is not a marker"
    );
}

#[test]
fn temp_names_of_a_predecessor_with_the_same_pid_are_skipped() {
    // After a crash and a restart, a process can get its predecessor's pid back; the temp
    // names its predecessor left must not make its saves fail.
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let pid = std::process::id();
    // More than this test binary's saves put together, so the counter is among them.
    let leftovers: Vec<String> = (0..300)
        .map(|n| format!(".marker.json.tmp-{pid}-{n}"))
        .collect();
    for name in &leftovers {
        std::fs::write(tmp.path().join(name), b"{").expect("a leftover temp file");
    }
    state
        .save(&full_marker("cycle-p"))
        .expect("the marker saves");
    assert_eq!(
        state.load().expect("the marker loads"),
        Some(full_marker("cycle-p"))
    );
    let mut expected = leftovers;
    expected.push("marker.json".to_owned());
    expected.sort();
    assert_eq!(names_in(tmp.path()), expected);
}

#[test]
fn clear_without_a_marker_is_ok() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    state.clear().expect("clearing nothing works");
    state.clear().expect("clearing nothing twice works");
    assert_eq!(state.load().expect("no marker"), None);
}

#[test]
fn clear_removes_the_marker_for_the_next_process_too() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    state
        .save(&full_marker("cycle-c"))
        .expect("the marker saves");
    state.clear().expect("the marker clears");
    assert!(
        !tmp.path().join("marker.json").exists(),
        "marker.json is gone"
    );
    assert_eq!(state.load().expect("no marker"), None);
    let next = StateDir::open(tmp.path()).expect("the state dir opens again");
    assert_eq!(next.load().expect("no marker"), None);
}

#[test]
fn an_unreadable_marker_is_an_io_error_and_stays_where_it_is() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let marker_path = tmp.path().join("marker.json");
    std::fs::create_dir(&marker_path).expect("a directory in the marker's place");
    std::fs::write(marker_path.join("x"), b"x").expect("a file inside it");

    match state.load() {
        Err(MarkerError::Io { action, path, .. }) => {
            assert_eq!(action, "reading the marker");
            assert_eq!(path, marker_path);
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert!(
        marker_path.is_dir(),
        "an unreadable marker is not moved aside"
    );

    // A save cannot rename over it: the error names the marker, and the temp file is gone.
    match state.save(&full_marker("cycle-u")) {
        Err(MarkerError::Io { action, path, .. }) => {
            assert_eq!(action, "replacing the marker");
            assert_eq!(path, marker_path);
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert_eq!(
        names_in(tmp.path()),
        vec!["marker.json"],
        "no temp file is left"
    );

    match state.clear() {
        Err(MarkerError::Stuck { path, .. }) => assert_eq!(path, marker_path),
        other => panic!("expected Stuck, got {other:?}"),
    }
}
