//! The cycle history on real files.

mod common;

use common::{names_in, record};
use felhom_marker::{HistoryStore, StateDir, HISTORY_LIMIT};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

fn ids(records: &[felhom_marker::CycleRecord]) -> Vec<String> {
    records.iter().map(|r| r.cycle_id.clone()).collect()
}

fn append_raw(path: &std::path::Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("the history opens")
        .write_all(bytes)
        .expect("raw bytes are appended");
}

#[test]
fn an_absent_history_is_empty() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    assert!(state.recent(10).expect("the history reads").is_empty());
}

#[test]
fn recent_returns_the_last_records_oldest_first() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    for id in ["c1", "c2", "c3", "c4"] {
        state.append(&record(id)).expect("a record appends");
    }
    assert_eq!(ids(&state.recent(2).expect("reads")), vec!["c3", "c4"]);
    assert_eq!(
        ids(&state.recent(100).expect("reads")),
        vec!["c1", "c2", "c3", "c4"]
    );
    assert!(state.recent(0).expect("reads").is_empty());
    assert_eq!(state.recent(1).expect("reads"), vec![record("c4")]);
}

#[test]
fn the_history_keeps_the_last_records_up_to_its_bound() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let total = HISTORY_LIMIT + 5;
    for i in 0..total {
        state
            .append(&record(&format!("c{i:03}")))
            .expect("a record appends");
    }
    let all = state.recent(usize::MAX).expect("the history reads");
    assert_eq!(all.len(), HISTORY_LIMIT);
    let expected: Vec<String> = (total - HISTORY_LIMIT..total)
        .map(|i| format!("c{i:03}"))
        .collect();
    assert_eq!(ids(&all), expected, "the oldest five were dropped");

    let path = tmp.path().join("history.jsonl");
    let text = std::fs::read_to_string(&path).expect("the history is text");
    assert_eq!(
        text.lines().count(),
        HISTORY_LIMIT,
        "the file itself is bounded"
    );
    let mode = std::fs::metadata(&path)
        .expect("the history exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the rewritten history's mode");
    assert_eq!(
        names_in(tmp.path()),
        vec!["history.jsonl"],
        "no temp file is left"
    );
}

#[test]
fn lines_that_do_not_parse_are_skipped() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    state.append(&record("c1")).expect("a record appends");
    append_raw(&path, b"{\"cycle_id\": 42}\nnot json at all\n\xff\xfe\n\n");
    state.append(&record("c2")).expect("a record appends");
    assert_eq!(ids(&state.recent(10).expect("reads")), vec!["c1", "c2"]);
}

#[test]
fn a_record_cut_by_a_crash_does_not_swallow_the_next_one() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    state.append(&record("c1")).expect("a record appends");
    // What a crash mid-append leaves: half a line, no newline.
    append_raw(&path, br#"{"cycle_id": "c-cut", "started_at": "2026-"#);
    state.append(&record("c2")).expect("a record appends");
    assert_eq!(ids(&state.recent(10).expect("reads")), vec!["c1", "c2"]);
}

#[test]
fn the_bound_counts_unparsable_lines_and_keeps_the_newest() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    state.append(&record("oldest")).expect("a record appends");
    let garbage = "garbage\n".repeat(HISTORY_LIMIT - 1);
    append_raw(&path, garbage.as_bytes());
    state.append(&record("newest")).expect("a record appends");
    let text = std::fs::read_to_string(&path).expect("the history is text");
    assert_eq!(text.lines().count(), HISTORY_LIMIT);
    assert_eq!(ids(&state.recent(10).expect("reads")), vec!["newest"]);
}
