//! The stranded stacks on real files: kept across processes until each runs again, written
//! durably and privately, and never lost silently when the file is damaged.

mod common;

use chrono::{TimeZone, Utc};
use common::names_in;
use felhom_marker::{StateDir, StrandedStack, StrandedStore, Unreadable};
use std::os::unix::fs::PermissionsExt;

fn stranded(name: &str, attempts: u32) -> StrandedStack {
    StrandedStack {
        name: name.into(),
        services: vec!["db".into(), "app".into()],
        cycle_id: "cycle-9".into(),
        since: Utc
            .with_ymd_and_hms(2026, 11, 30, 3, 0, 0)
            .single()
            .expect("a valid date"),
        attempts,
        last_error: "container app exited (1)".into(),
        given_up: None,
        containers: vec![],
    }
}

#[test]
fn without_a_file_nothing_is_stranded() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let list = state.stranded().expect("reads");
    assert!(list.stacks.is_empty());
    assert_eq!(list.moved_aside, None);
}

#[test]
fn stranded_stacks_are_kept_across_processes_until_each_runs() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let now = state
        .strand(&[stranded("wiki", 5), stranded("photos", 5)])
        .expect("strands");
    assert_eq!(now.stacks, vec![stranded("wiki", 5), stranded("photos", 5)]);

    let mode = std::fs::metadata(tmp.path().join("stranded.json"))
        .expect("stranded.json exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "stranded.json is private");

    // The next process (a restart) sees the same list.
    let next = StateDir::open(tmp.path()).expect("the state dir opens again");
    assert_eq!(
        next.stranded().expect("reads").stacks,
        vec![stranded("wiki", 5), stranded("photos", 5)]
    );

    // A later attempt replaces the entry of its name, in place; a new name is appended.
    let mut retried = stranded("wiki", 6);
    retried.last_error = "engine said no".into();
    let now = next
        .strand(&[retried.clone(), stranded("mail", 5)])
        .expect("strands again");
    assert_eq!(
        now.stacks,
        vec![retried.clone(), stranded("photos", 5), stranded("mail", 5)]
    );

    // A stack that runs again is removed; removing one that is not there is no error.
    let now = next.unstrand("photos").expect("unstrands");
    assert_eq!(now.stacks, vec![retried.clone(), stranded("mail", 5)]);
    let now = next.unstrand("photos").expect("unstrands nothing");
    assert_eq!(now.stacks, vec![retried, stranded("mail", 5)]);

    let _ = next.unstrand("wiki").expect("unstrands");
    let now = next.unstrand("mail").expect("unstrands");
    assert!(now.stacks.is_empty());
    assert!(
        names_in(tmp.path()).is_empty(),
        "no file and no temp file is left once nothing is stranded: {:?}",
        names_in(tmp.path())
    );
}

#[test]
fn the_file_is_in_the_documented_format() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let _ = state.strand(&[stranded("wiki", 5)]).expect("strands");
    let value: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("stranded.json")).expect("the file exists"),
    )
    .expect("JSON");
    assert_eq!(value["version"], 1);
    let entry = &value["stacks"][0];
    assert_eq!(entry["name"], "wiki");
    assert_eq!(entry["services"][1], "app");
    assert_eq!(entry["cycle_id"], "cycle-9");
    assert_eq!(entry["since"], "2026-11-30T03:00:00Z");
    assert_eq!(entry["attempts"], 5);
    assert_eq!(entry["last_error"], "container app exited (1)");
}

#[test]
fn a_truncated_stranded_list_is_moved_aside_and_its_readable_stacks_kept() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let _ = state
        .strand(&[stranded("wiki", 5), stranded("photos", 3)])
        .expect("strands");
    let path = tmp.path().join("stranded.json");
    let whole = std::fs::read(&path).expect("the file exists");
    let cut = &whole[..whole.len() - 30];
    std::fs::write(&path, cut).expect("the file is cut");

    let list = state.stranded().expect("a damaged list still reads");
    let moved = list.moved_aside.expect("the damage is reported");
    assert_eq!(moved.path, path);
    assert!(matches!(moved.reason, Unreadable::Corrupt { .. }));
    let moved_to = moved.moved_to.as_ref().expect("moved aside");
    assert_eq!(
        std::fs::read(moved_to).expect("the damaged file is kept"),
        cut
    );
    let name = moved_to
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("stranded.corrupt-2"), "{name}");
    assert_eq!(list.stacks, vec![stranded("wiki", 5)]);

    // What was salvaged was written back: the next read finds it, as a sound file.
    let again = state.stranded().expect("reads");
    assert_eq!(again.stacks, vec![stranded("wiki", 5)]);
    assert_eq!(again.moved_aside, None);
}

#[test]
fn a_stranded_list_of_another_version_keeps_its_stacks_with_stand_ins() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("stranded.json");
    std::fs::write(
        &path,
        br#"{"version": 2, "stacks": [
            {"name": "wiki", "services": ["app"], "attempts": 9, "tags": ["x"]},
            {"name": "BAD NAME", "services": ["app"]}
        ]}"#,
    )
    .expect("written");

    let list = state.stranded().expect("reads");
    let moved = list.moved_aside.expect("the version is reported");
    assert_eq!(
        moved.reason,
        Unreadable::UnknownVersion {
            version: 2,
            known: 1
        }
    );
    assert!(moved.to_string().contains("format version 2"), "{moved}");
    assert_eq!(list.stacks.len(), 1);
    let wiki = &list.stacks[0];
    assert_eq!(wiki.name, "wiki");
    assert_eq!(wiki.services, ["app"]);
    assert_eq!(wiki.attempts, 9);
    assert_eq!(wiki.cycle_id, "unknown");
    assert!(wiki.last_error.contains("salvaged"), "{}", wiki.last_error);
}

#[test]
fn a_change_to_a_damaged_list_reports_the_damage_and_keeps_what_was_readable() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    std::fs::write(
        tmp.path().join("stranded.json"),
        br#"{"stacks": [{"name": "wiki", "services": ["app"]}], "#,
    )
    .expect("written");
    let list = state.strand(&[stranded("photos", 5)]).expect("strands");
    assert!(list.moved_aside.is_some(), "the damage is not swallowed");
    let names: Vec<&str> = list.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["wiki", "photos"]);
    let again = state.stranded().expect("reads");
    assert_eq!(again.stacks, list.stacks);
}

#[test]
fn garbage_and_an_empty_file_are_moved_aside_with_nothing_salvaged() {
    for bytes in [&b""[..], b"\xff\xfe garbage"] {
        let tmp = common::private_dir();
        let state = StateDir::open(tmp.path()).expect("the state dir opens");
        std::fs::write(tmp.path().join("stranded.json"), bytes).expect("written");
        let list = state.stranded().expect("reads");
        assert!(list.stacks.is_empty());
        let moved = list.moved_aside.expect("reported");
        let moved_to = moved.moved_to.expect("moved aside");
        assert_eq!(std::fs::read(moved_to).expect("kept"), bytes);
        assert!(
            !tmp.path().join("stranded.json").exists(),
            "an empty salvage leaves no file"
        );
    }
}

#[test]
fn a_forgotten_stack_leaves_the_list_for_good_and_only_a_stranded_one_can_be() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let _ = state
        .strand(&[stranded("wiki", 5), stranded("photos", 5)])
        .expect("strands");
    let forgotten = state.forget("wiki").expect("forgets");
    assert_eq!(forgotten, Some(stranded("wiki", 5)));
    // Another process (the daemon's next retry) reads the list without it.
    let next = StateDir::open(tmp.path()).expect("the state dir opens again");
    assert_eq!(
        next.stranded().expect("reads").stacks,
        vec![stranded("photos", 5)]
    );
    // Not stranded (any more): nothing to forget, nothing changed.
    assert_eq!(next.forget("wiki").expect("reads"), None);
    assert_eq!(next.forget("mail").expect("reads"), None);
    assert_eq!(
        next.forget("photos").expect("forgets"),
        Some(stranded("photos", 5))
    );
    assert!(
        !tmp.path().join("stranded.json").exists(),
        "an empty list is no file"
    );
}

/// `given_up` (issue 19) is kept across processes; a list written before it (no such key)
/// reads as not given up, and a list without any given-up stack is written as before.
#[test]
fn a_given_up_stack_is_kept_and_a_list_from_before_reads_as_not_given_up() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let list = state.strand(&[stranded("wiki", 5)]).expect("strands");
    assert_eq!(list.moved_aside, None);
    let text = std::fs::read_to_string(tmp.path().join("stranded.json")).expect("written");
    assert!(!text.contains("given_up"), "not written when unset: {text}");
    let mut given_up = stranded("photos", 6);
    given_up.given_up = Some("its containers were removed".into());
    let list = state.strand(&[given_up.clone()]).expect("strands");
    assert_eq!(list.moved_aside, None);
    let next = StateDir::open(tmp.path()).expect("the state dir opens again");
    assert_eq!(
        next.stranded().expect("reads").stacks,
        vec![stranded("wiki", 5), given_up]
    );
}
