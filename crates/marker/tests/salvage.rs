//! A marker that cannot be used as it is, on real files: it is moved aside, never deleted, and
//! the stacks it still names come back as a marker, so that their recovery cannot be skipped;
//! what could be read takes its place, so a crash mid-recovery finds them again. (Where it
//! cannot be moved: `filesystems.rs`.)

mod common;

use common::full_marker;
use felhom_marker::{
    MarkedStack, Marker, MarkerPhase, MarkerSalvage, MarkerStore, StateDir, Unreadable,
    FORMAT_VERSION,
};

/// Writes `bytes` as the marker, loads, and checks what every unusable marker must get: moved
/// aside with its bytes intact, a salvaged marker naming where, and that marker (without the
/// salvage's news) in the unusable one's place afterwards.
fn load_unusable(bytes: &[u8]) -> (Marker, MarkerSalvage) {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let marker_path = tmp.path().join("marker.json");
    std::fs::write(&marker_path, bytes).expect("the marker is written");

    let marker = state
        .load()
        .expect("an unusable marker loads as a salvage")
        .expect("a salvaged marker, never nothing");
    let salvage = marker
        .salvage
        .clone()
        .expect("the marker says it was salvaged");
    assert_eq!(salvage.moved.path, marker_path);
    let moved_to = salvage.moved.moved_to.as_ref().expect("moved aside");
    assert_eq!(
        moved_to.parent(),
        Some(tmp.path()),
        "moved within the state dir"
    );
    let moved_name = moved_to
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    assert!(moved_name.starts_with("marker.corrupt-2"), "{moved_name}");
    assert!(moved_name.ends_with('Z'), "a UTC time: {moved_name}");
    assert_eq!(
        std::fs::read(moved_to).expect("the moved marker exists"),
        bytes,
        "the moved marker keeps its bytes"
    );
    let message = salvage.to_string();
    assert!(
        message.contains(&*moved_to.to_string_lossy()),
        "the salvage names where the marker went: {message}"
    );
    let mut sound = marker.clone();
    sound.salvage = None;
    assert_eq!(
        state.load().expect("the next load works"),
        Some(sound),
        "what could be read is in marker.json now, as a sound marker"
    );
    (marker, salvage)
}

fn stack(name: &str, services: &[&str]) -> MarkedStack {
    MarkedStack::new(
        name,
        services.iter().map(|s| (*s).to_owned()).collect(),
        vec![],
    )
}

#[test]
fn a_truncated_marker_gives_back_the_stacks_before_the_cut() {
    let whole = serde_json::to_string_pretty(&full_marker("cycle-t")).expect("serializes");
    // Cut inside the second stack's entry, as a crash of the disk would.
    let cut = whole.find("\"immich\"").expect("the second stack") + 4;
    let (marker, salvage) = load_unusable(&whole.as_bytes()[..cut]);

    match &salvage.moved.reason {
        Unreadable::Corrupt { detail } => assert!(detail.contains("EOF"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        marker.stacks,
        vec![full_marker("cycle-t").stacks[0].clone()]
    );
    assert_eq!(salvage.unreadable_stacks, 1, "the cut-off entry is counted");
    // What the file still tells is kept: the recovery records the right cycle and can ask
    // the agent about its backup.
    assert_eq!(marker.cycle_id, "cycle-t");
    assert_eq!(marker.phase, MarkerPhase::BackingUp);
    assert_eq!(marker.backup_id.as_deref(), Some("backup-7f3a"));
    assert_eq!(marker.started_at, full_marker("cycle-t").started_at);
    assert_eq!(marker.version, FORMAT_VERSION);
}

#[test]
fn a_marker_of_a_future_version_gives_back_the_stacks_it_names() {
    let bytes = br#"{"version": 7, "cycle_id": "c-future", "stacks": [
        {"name": "wiki", "services": ["app", "db"], "priority": 3},
        {"name": "photos", "services": ["server"], "restart_attempts": 4}
    ], "new_field": {"x": 1}}"#;
    let (marker, salvage) = load_unusable(bytes);
    assert_eq!(
        salvage.moved.reason,
        Unreadable::UnknownVersion {
            version: 7,
            known: FORMAT_VERSION
        }
    );
    let mut photos = stack("photos", &["server"]);
    photos.restart_attempts = 4;
    assert_eq!(marker.stacks, vec![stack("wiki", &["app", "db"]), photos]);
    assert_eq!(salvage.unreadable_stacks, 0);
    assert_eq!(marker.cycle_id, "c-future");
    assert!(
        salvage.to_string().contains("format version 7"),
        "{salvage}"
    );
}

/// A stack's stop that may have begun is never read as not begun: an entry whose `stop_began`
/// does not read is taken as begun (the stack is started, never left down), and containers
/// that do not read leave the stack to be recovered by its services.
#[test]
fn a_damaged_stop_is_taken_as_begun() {
    let bytes = br#"{"version": 1, "cycle_id": "c-s", "stacks": [
        {"name": "wiki", "services": ["app"], "stop_began": "yes",
         "containers": [{"id": "a1", "name": "wiki-app-1", "service": "app"}]},
        {"name": "photos", "services": ["server"], "stop_began": false,
         "containers": [{"id": 7}]},
        {"name": "old", "services": ["web"]}
    ], "#;
    let (marker, _) = load_unusable(bytes);
    let wiki = &marker.stacks[0];
    assert!(wiki.stop_began, "{wiki:?}");
    assert_eq!(wiki.containers[0].id, "a1");
    let photos = &marker.stacks[1];
    assert!(
        !photos.stop_began && photos.containers.is_empty(),
        "{photos:?}"
    );
    assert_eq!(marker.stacks[2], stack("old", &["web"]));
}

#[test]
fn only_valid_project_and_service_names_are_salvaged() {
    // A damaged file must not hand compose a name it would refuse, or worse.
    let bytes = br#"{"version": 1, "cycle_id": 5, "stacks": [
        {"name": "ok-1_a", "services": ["web.1", "DB"]},
        {"name": "Upper", "services": ["app"]},
        {"name": "-dash", "services": ["app"]},
        {"name": "a b", "services": ["app"]},
        {"name": "../etc", "services": ["app"]},
        {"name": "noservices"},
        {"name": "badservice", "services": ["ok", "$(reboot)"]},
        {"name": "ok-1_a", "services": ["again"]},
        "not an object",
        {"name": "last", "services": []}
    ]}"#;
    let (marker, salvage) = load_unusable(bytes);
    assert_eq!(
        marker.stacks,
        vec![stack("ok-1_a", &["web.1", "DB"]), stack("last", &[])]
    );
    assert_eq!(salvage.unreadable_stacks, 7);
    assert!(
        marker.cycle_id.starts_with("unknown (marker.corrupt-"),
        "a cycle id that is not a string is not used: {}",
        marker.cycle_id
    );
    assert!(salvage.to_string().contains("7 of its stack entries"));
}

#[test]
fn garbage_gives_a_salvage_without_stacks() {
    let (marker, salvage) = load_unusable(b"\x00\x01garbage \xff{[");
    assert!(marker.stacks.is_empty());
    assert_eq!(salvage.unreadable_stacks, 0);
    assert_eq!(marker.pid, 0);
    assert_eq!(marker.backup_id, None);
    assert!(matches!(salvage.moved.reason, Unreadable::Corrupt { .. }));
}

#[test]
fn an_empty_marker_gives_a_salvage_without_stacks() {
    let (marker, salvage) = load_unusable(b"");
    assert!(marker.stacks.is_empty());
    assert!(matches!(salvage.moved.reason, Unreadable::Corrupt { .. }));
    // The file's last write stands in for the start it does not say.
    let age = chrono::Utc::now() - marker.started_at;
    assert!(
        age.num_minutes().abs() < 10,
        "started_at {}",
        marker.started_at
    );
}

#[test]
fn a_marker_of_the_wrong_shape_keeps_its_stacks() {
    let mut value = serde_json::to_value(full_marker("cycle-s")).expect("a marker serializes");
    value.as_object_mut().expect("an object").remove("cycle_id");
    let bytes = serde_json::to_vec(&value).expect("JSON serializes");
    let (marker, salvage) = load_unusable(&bytes);
    match &salvage.moved.reason {
        Unreadable::Corrupt { detail } => assert!(detail.contains("cycle_id"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let names: Vec<&str> = marker.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nextcloud", "immich"]);
}

#[test]
fn a_marker_without_a_numeric_version_is_corrupt() {
    for bytes in [
        &br#"{"cycle_id": "c"}"#[..],
        br#"{"version": "1", "cycle_id": "c"}"#,
        br#"{"version": -1}"#,
        b"[1, 2]",
    ] {
        let (_, salvage) = load_unusable(bytes);
        match salvage.moved.reason {
            Unreadable::Corrupt { detail } => assert!(detail.contains("version"), "{detail}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_salvaged_marker_saved_again_is_a_marker_of_this_build() {
    // The recovery saves the marker as it goes (restart attempts): what it saves must load as
    // a plain marker, so that a crash mid-recovery still finds the salvaged stacks.
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    std::fs::write(
        tmp.path().join("marker.json"),
        br#"{"version": 9, "stacks": [{"name": "wiki", "services": ["app"]}]}"#,
    )
    .expect("the marker is written");
    let salvaged = state.load().expect("loads").expect("a salvaged marker");
    state.save(&salvaged).expect("the salvaged marker saves");
    let again = state.load().expect("loads").expect("the saved marker");
    assert_eq!(again.salvage, None, "a saved marker is no longer a salvage");
    assert_eq!(again.stacks, vec![stack("wiki", &["app"])]);
    assert_eq!(again.cycle_id, salvaged.cycle_id);
}

#[test]
fn two_unusable_markers_in_the_same_second_are_both_kept() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let mut moved = Vec::new();
    for bytes in [&b"first"[..], b"second", b"third"] {
        std::fs::write(tmp.path().join("marker.json"), bytes).expect("the marker is written");
        let marker = state.load().expect("loads").expect("a salvaged marker");
        let salvage = marker.salvage.expect("a salvage");
        moved.push((salvage.moved.moved_to.expect("moved aside"), bytes));
    }
    for (moved_to, bytes) in &moved {
        assert_eq!(&std::fs::read(moved_to).expect("kept"), bytes);
    }
    assert_ne!(moved[0].0, moved[1].0);
    assert_ne!(moved[1].0, moved[2].0);
    assert_ne!(moved[0].0, moved[2].0);
}
